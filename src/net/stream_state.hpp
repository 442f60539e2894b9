#pragma once
// The state of one stream connection, shared by its StreamReader and StreamWriter handles and
// seen (weakly) by its protocol, as asyncio's StreamReader + StreamReaderProtocol +
// FlowControlMixin. Ownership has no cycle: handles -> state -> transport -> protocol, and the
// protocol holds the state only weakly once the handles exist.

#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "weave/locks.hpp"
#include "weave/streams.hpp"

namespace weave::detail {

struct StreamState {
  explicit StreamState(std::size_t reader_limit) : limit(reader_limit) {}

  // ---- reader side (asyncio.StreamReader) ----
  std::size_t size() const noexcept { return buffer.size() - offset; }
  std::string_view data() const noexcept { return std::string_view(buffer).substr(offset); }
  /// Removes and returns the first `n` buffered bytes.
  std::string take(std::size_t n);
  /// Removes the first `n` buffered bytes.
  void drop(std::size_t n) noexcept;
  void feed_data(std::string_view bytes);
  void feed_eof() noexcept;
  void set_exception(std::exception_ptr e) noexcept;
  void maybe_resume_transport() noexcept;
  /// Waits until data, EOF or an error arrives; `site` is the reader call's caller. Errors:
  /// RuntimeError when another coroutine is already waiting on this reader.
  Coro<void> wait_for_data(const char* what, CallSite site);

  std::string buffer;
  std::size_t offset = 0;  ///< buffered bytes start here
  std::size_t limit;
  bool eof = false;
  bool waiting = false;
  std::exception_ptr error;
  Event data_ready;

  // ---- writer side and flow control ----
  std::shared_ptr<Transport> transport;
  std::weak_ptr<Protocol> protocol;  ///< the StreamProtocol feeding us (start_tls moves it)
  bool server_side = false;          ///< made by start_server (start_tls's side)
  bool reading_paused = false;       ///< we paused the transport: the buffer is over 2 * limit
  bool writing_paused = false;       ///< the transport paused us: drain() waits
  bool lost = false;
  std::exception_ptr lost_error;
  Event drain_ready;  ///< set while writing is not paused
  Event closed;
};

/// Closes the connection when the last reader or writer handle goes.
struct StreamLife {
  explicit StreamLife(std::shared_ptr<StreamState> s) noexcept : state(std::move(s)) {}
  StreamLife(const StreamLife&) = delete;
  StreamLife& operator=(const StreamLife&) = delete;
  ~StreamLife();
  std::shared_ptr<StreamState> state;
};

/// asyncio.StreamReaderProtocol.
class StreamProtocol final : public Protocol {
 public:
  StreamProtocol(std::shared_ptr<StreamState> state, ClientConnected client_connected)
      : pending_(state), state_(state), client_connected_(std::move(client_connected)) {}

  void connection_made(Transport& transport) override;
  void data_received(std::string_view data) override;
  bool eof_received() override;
  void connection_lost(std::exception_ptr exc) override;
  void pause_writing() override;
  void resume_writing() override;

 private:
  std::shared_ptr<StreamState> pending_;  ///< strong until the handles exist
  std::weak_ptr<StreamState> state_;
  ClientConnected client_connected_;
};

}  // namespace weave::detail
