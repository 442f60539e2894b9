#pragma once
// One client connection: a Protocol that feeds what the server sends to llhttp (response mode),
// keeps the response head and the body bytes not read yet, and wakes the one task waiting for
// them. Reading from the server pauses while `read_bufsize` body bytes wait, so a large body is
// never whole in memory.

#include <llhttp.h>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "weave/http.hpp"
#include "weave/weave.hpp"

namespace weave::http::detail {

/// The deadlines of one wait for the server: the request's total one and sock_read's.
struct ReadLimits {
  std::optional<Clock::time_point> total{};
  std::optional<Clock::duration> sock_read{};
};

/// The status line and headers of a final response.
struct ResponseHead {
  int status = 0;
  std::string reason;
  int major = 1;
  int minor = 1;
  Headers headers;
};

class ClientConnection : public Protocol {
 public:
  ClientConnection(std::string key, std::size_t read_bufsize);
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  void connection_made(Transport& transport) override;
  void data_received(std::string_view data) override;
  bool eof_received() override;
  void connection_lost(std::exception_ptr exc) override;
  void pause_writing() override { write_paused_ = true; }
  void resume_writing() override;

  /// The transport create_connection returned (connection_made may come later, as in asyncio).
  void attach(std::shared_ptr<Transport> transport) {
    if (!transport_ && !lost_) transport_ = std::move(transport);
  }
  /// Starts a request/response exchange: the parser waits for a new response.
  void begin(bool head_request);
  void write(std::string_view data);
  /// Waits while the transport's buffer is over its high-water mark.
  Coro<void> drain(const ReadLimits& limits);
  /// Waits for the final (non-1xx) response head. Errors: what broke the connection,
  /// SocketTimeoutError, TimeoutError.
  Coro<void> wait_head(const ReadLimits& limits);
  ResponseHead& head() noexcept { return head_; }

  /// Body bytes received and not taken yet (moved out); reading resumes once taken.
  std::string take_body();
  bool body_buffered() const noexcept { return !body_.empty(); }
  bool message_complete() const noexcept { return complete_; }
  std::exception_ptr error() const noexcept { return error_; }
  /// Waits until body bytes arrive, the message ends or the connection breaks.
  Coro<void> wait_body(const ReadLimits& limits);

  /// The response ended, both sides keep the connection, and nothing came after it.
  bool reusable() const noexcept;
  /// Usable for a new request: open, and silent since its last response.
  bool alive() const noexcept;
  /// The server closed the connection before sending any byte of the response (a stale pooled
  /// connection), so that an idempotent request may be sent again.
  bool closed_before_response() const noexcept { return lost_or_eof_ && !response_started_; }

  /// Back in the pool: bytes from the server now make the connection unusable.
  void make_idle() noexcept { phase_ = Phase::idle; }
  void close();
  void abort();
  /// Waits (at most `limit`) until connection_lost ran.
  Coro<void> wait_closed(Clock::duration limit);
  bool lost() const noexcept { return lost_; }

  const std::string& key() const noexcept { return key_; }
  Clock::time_point idle_since{};
  /// Still counted in the pool's limits.
  bool counted = false;

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_status(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t n);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  void fail(std::exception_ptr error);
  void flow_control();
  Coro<void> wait(const ReadLimits& limits);

  std::string key_;
  std::size_t read_bufsize_;
  std::shared_ptr<Transport> transport_;
  llhttp_t parser_{};
  ResponseHead head_;
  std::string field_;
  std::string value_;
  std::string body_;
  std::exception_ptr error_;
  Event wake_;
  Event closed_;
  enum class Phase { idle, waiting, done } phase_ = Phase::idle;
  bool head_request_ = false;
  bool informational_ = false;
  bool head_done_ = false;
  bool complete_ = false;
  bool keep_alive_ = false;
  bool trailing_data_ = false;
  bool response_started_ = false;
  bool lost_or_eof_ = false;
  bool lost_ = false;
  bool write_paused_ = false;
  bool reading_paused_ = false;
  bool timed_out_ = false;
};

}  // namespace weave::http::detail
