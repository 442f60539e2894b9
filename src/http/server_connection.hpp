#pragma once
// One HTTP/1.1 connection of a server: a Protocol that parses what arrives and queues the
// requests, and one task that answers them in order. Pipelined requests are parsed ahead; their
// responses collect in one buffer that goes out in one write when the queue runs dry (or, when a
// handler waits, at the next loop iteration), as the peers that batch do.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "request_parser.hpp"
#include "weave/http.hpp"
#include "weave/locks.hpp"
#include "weave/loop.hpp"
#include "weave/transports.hpp"

namespace weave::http::detail {

struct AppState {
  Router router;
  ServerOptions options;
};

struct ServerCore;

class ServerConnection final : public Protocol,
                               public RequestParser::Sink,
                               public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(std::shared_ptr<ServerCore> core, std::shared_ptr<AppState> app);
  ~ServerConnection() override;

  // Protocol
  void connection_made(Transport& transport) override;
  void data_received(std::string_view data) override;
  bool eof_received() override;
  void connection_lost(std::exception_ptr exc) override;
  void pause_writing() override;
  void resume_writing() override;

  // RequestParser::Sink
  RequestHead& begin_request() override;
  void head_complete() override;
  void body(std::string_view data) override;
  void request_complete() override;

  // What Request, BodyReader and StreamResponse call; they act on the request being answered.
  enum class ReadMode { kUpTo, kAny, kWhole };
  Coro<std::string> read_body(std::ptrdiff_t n, ReadMode mode);
  bool body_at_eof() const noexcept;
  std::string remote() const;
  Coro<void> prepare(StreamResponse& response, Request& request);
  Coro<void> write_body(StreamResponse& response, std::string data, bool last);
  Coro<void> drain();

  /// Server::close(): closes at once when idle, else after the response being made.
  void shut_down();
  void abort();

 private:
  struct Pending {
    explicit Pending(ServerConnection* c) : request(c) {}
    Request request;
    std::string body;         // received, not read yet
    std::uint64_t taken = 0;  // bytes of body read so far
    bool complete = false;    // the whole body has arrived
    bool answered = false;    // the head of its response went out
    bool continue_sent = false;
    int error_status = 0;  // a request that failed to parse: answered with this, then close
    std::string error_reason;
    bool in_queue = false;
    bool in_handler = false;
    int body_error = 0;  // the body broke the framing while its handler ran
    Pending* next = nullptr;
  };

  Coro<void> serve(std::shared_ptr<ServerConnection> self);
  Coro<void> answer(Pending& p);
  Coro<void> wait_for_body();
  Coro<void> wait_writable();
  void respond(Pending& p, Response& response);
  void respond_error(Pending& p, int status, std::string_view body, const Headers* headers,
                     std::string_view reason = {});
  void write_head(Pending& p, const StreamResponse& r, std::string_view content_type,
                  std::optional<std::uint64_t> length, bool chunked);
  bool must_close_after(const Pending& p) const noexcept;
  void flush();
  void close_transport();
  void close_after_answers();
  void schedule_flush();
  void wake();
  void update_reading();
  void arm_timer(Clock::duration d);
  void on_timer();
  Pending* acquire_pending();
  void enqueue(Pending* p);
  void queue_error(int status, std::string reason);
  void release_front();

  std::shared_ptr<ServerCore> core_;
  std::shared_ptr<AppState> app_;
  const ServerOptions& options_;
  RequestParser parser_;
  std::shared_ptr<Transport> transport_;
  Pending* front_ = nullptr;  // the request being answered, then the ones queued behind it
  Pending* back_ = nullptr;
  Pending* parsing_ = nullptr;  // the request the parser is filling
  Pending* free_ = nullptr;     // answered requests kept for their buffers' capacity
  std::size_t queued_ = 0;
  std::string out_;
  Event wake_;      // serve(): a request arrived, or the connection ended
  Event body_;      // read_body(): more of the body arrived
  Event writable_;  // drain(): the transport's buffer went below its low-water mark
  TimerHandle timer_;
  Clock::time_point deadline_{};
  Clock::time_point armed_for_{};
  // kLingering: the last answer and a FIN went out; what the client still sends is discarded.
  enum class Phase { kIdle, kHead, kBusy, kLingering } phase_ = Phase::kIdle;
  bool timer_armed_ = false;
  bool write_paused_ = false;
  bool reading_paused_ = false;
  bool whole_read_ = false;  // a read() wants the body up to client_max_size
  bool lost_ = false;
  bool eof_ = false;
  bool closing_ = false;  // no request after the current one
  bool errored_ = false;  // a bad request is queued: nothing after it is read
  bool flush_scheduled_ = false;
  bool serving_ = false;
};

/// What a Server handle shares with its connections.
struct ServerCore {
  std::shared_ptr<AppState> app;
  weave::Server listener;
  std::unordered_set<ServerConnection*> connections;
  std::uint16_t port = 0;
  bool closing = false;
  bool closed = false;  // every connection ended after close()
  Event all_closed;
  TimerHandle shutdown_timer;
  void add(ServerConnection* c) { connections.insert(c); }
  /// Calls `fn` on each connection open now; `fn` may close them (the set is copied first).
  template <class F>
  void each_connection(F fn) {
    std::vector<ServerConnection*> open(connections.begin(), connections.end());
    for (ServerConnection* c : open) fn(*c);
  }
  void remove(ServerConnection* c);
  /// The factory's reference: dropped at close(), so that a closed server's listener (which
  /// keeps its factory) no longer keeps the core alive.
  struct Anchor {
    std::shared_ptr<ServerCore> core;
  };
  std::shared_ptr<Anchor> anchor;
};

}  // namespace weave::http::detail
