// asyncio.streams in C++: the reader's buffer and its read family, the writer's drain, and
// the open_connection / start_server glue. The read algorithms follow CPython's line by line
// (readuntil's offset scan, readline's handling of LimitOverrunError), so that the same input
// gives the same results and the same errors.

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <signal.h>

#include <mutex>

#include "core/loop_impl.hpp"
#include "net/pipes.hpp"
#include "net/socket_transport.hpp"
#include "net/stream_state.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::detail {

// ---- StreamState --------------------------------------------------------------------------------

std::string StreamState::take(std::size_t n) {
  n = std::min(n, size());
  std::string out(buffer.data() + offset, n);
  drop(n);
  return out;
}

void StreamState::drop(std::size_t n) noexcept {
  offset += std::min(n, size());
  if (offset == buffer.size()) {
    buffer.clear();
    offset = 0;
  }
  maybe_resume_transport();
}

void StreamState::feed_data(std::string_view bytes) {
  if (eof) throw RuntimeError("feed_data after feed_eof");
  if (bytes.empty()) return;
  if (offset > 0 && offset >= buffer.size() / 2) {
    buffer.erase(0, offset);  // reclaim the consumed front before growing
    offset = 0;
  }
  buffer.append(bytes);
  data_ready.set();
  if (transport && !reading_paused && size() > 2 * limit) {
    transport->pause_reading();
    reading_paused = true;
  }
}

void StreamState::feed_eof() noexcept {
  eof = true;
  data_ready.set();
}

void StreamState::set_exception(std::exception_ptr e) noexcept {
  error = e;
  data_ready.set();
}

void StreamState::maybe_resume_transport() noexcept {
  if (reading_paused && size() <= limit && transport) {
    reading_paused = false;
    transport->resume_reading();
  }
}

namespace {
/// The stream's fd, for a trace's I/O wait (-1 when its transport has none).
int stream_fd(const StreamState& s) {
  if (!s.transport) return -1;
  const ExtraInfo info = s.transport->get_extra_info("socket");
  const int* fd = std::any_cast<int>(&info);
  return fd != nullptr ? *fd : -1;
}

/// Starts `w` when the running loop records a trace.
void trace_stream_wait(dbg::IoWaitTrace& w, const char* op, const StreamState& s) {
  LoopImpl* l = running_impl();
  if (l != nullptr && (l->hooks & dbg::kTrace) != 0) [[unlikely]]
    dbg::trace_io_begin(w, op, stream_fd(s));
}
}  // namespace

Coro<void> StreamState::wait_for_data(const char* what, CallSite site) {
  if (waiting) {
    throw RuntimeError(std::string(what) +
                       "() called while another coroutine is already waiting for incoming data");
  }
  // A paused transport with nothing buffered would never wake us (asyncio's deadlock guard).
  if (reading_paused && transport) {
    reading_paused = false;
    transport->resume_reading();
  }
  waiting = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{waiting};
  data_ready.clear();
  dbg::IoWaitTrace trace;
  trace_stream_wait(trace, what, *this);
  co_await data_ready.wait(site);
}

StreamLife::~StreamLife() {
  if (state->transport && !state->transport->is_closing()) {
    try {
      state->transport->close();
    } catch (...) {
      // The loop is closed: the transport was detached from it and closed already.
    }
  }
}

// ---- StreamProtocol -----------------------------------------------------------------------------

namespace {
Coro<void> run_client(ClientConnected callback, StreamReader reader, StreamWriter writer) {
  // `callback` is a copy in this frame: a coroutine lambda's captures live as long as it runs.
  std::exception_ptr failure;
  try {
    co_await callback(reader, writer);
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    get_running_loop().call_exception_handler(
        {"Unhandled exception in client_connected_cb", failure, current_task()});
    writer.close();
  }
}
}  // namespace

void StreamProtocol::connection_made(Transport& transport) {
  auto state = state_.lock();
  if (!state) {
    transport.close();  // every handle is gone already
    return;
  }
  state->transport = transport.shared_from_this();
  if (client_connected_) {
    auto life = std::make_shared<StreamLife>(state);
    StreamReader reader(state, life);
    StreamWriter writer(state, life);
    create_task(run_client(client_connected_, std::move(reader), std::move(writer)));
  }
  pending_.reset();
}

void StreamProtocol::data_received(std::string_view data) {
  if (auto state = state_.lock()) state->feed_data(data);
}

bool StreamProtocol::eof_received() {
  if (auto state = state_.lock()) state->feed_eof();
  return true;  // keep the transport open: the writer may still answer (half-close)
}

void StreamProtocol::connection_lost(std::exception_ptr exc) {
  pending_.reset();
  auto state = state_.lock();
  if (!state) return;
  if (exc) {
    state->set_exception(exc);
  } else {
    state->feed_eof();
  }
  state->lost = true;
  state->lost_error = exc;
  state->drain_ready.set();
  state->closed.set();
}

void StreamProtocol::pause_writing() {
  if (auto state = state_.lock()) {
    state->writing_paused = true;
    state->drain_ready.clear();
  }
}

void StreamProtocol::resume_writing() {
  if (auto state = state_.lock()) {
    state->writing_paused = false;
    state->drain_ready.set();
  }
}

void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      ::signal(SIGPIPE, SIG_IGN);
    }
  });
}

namespace {
std::pair<std::shared_ptr<StreamState>, std::shared_ptr<StreamLife>> pipe_stream(
    EventLoop& loop, int fd, std::size_t limit, SocketTransport::Kind kind) {
  if (kind == SocketTransport::Kind::WritePipe) ignore_sigpipe();
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    const int err = errno;
    ::close(fd);
    throw os_error(err, "fcntl(O_NONBLOCK)");
  }
  auto state = std::make_shared<StreamState>(limit);
  auto protocol = std::make_shared<StreamProtocol>(state, nullptr);
  auto transport =
      std::make_shared<SocketTransport>(loop, Socket::adopt(fd), protocol, nullptr, kind);
  transport->start();
  state->transport = transport;
  return {state, std::make_shared<StreamLife>(state)};
}
}  // namespace

StreamReader pipe_reader(EventLoop& loop, int fd, std::size_t limit) {
  auto [state, life] = pipe_stream(loop, fd, limit, SocketTransport::Kind::ReadPipe);
  return StreamReader(state, life);
}

StreamWriter pipe_writer(EventLoop& loop, int fd) {
  auto [state, life] = pipe_stream(loop, fd, 64 * 1024, SocketTransport::Kind::WritePipe);
  return StreamWriter(state, life);
}

}  // namespace weave::detail

namespace weave {

using detail::StreamState;

// ---- StreamReader ------------------------------------------------------------------------------

StreamReader::StreamReader(std::size_t limit)
    : state_(std::make_shared<StreamState>(limit)),
      life_(std::make_shared<detail::StreamLife>(state_)) {
  if (limit == 0) throw ValueError("Limit cannot be <= 0");
}

StreamReader::StreamReader(std::shared_ptr<StreamState> state,
                           std::shared_ptr<detail::StreamLife> life) noexcept
    : state_(std::move(state)), life_(std::move(life)) {}

bool StreamReader::at_eof() const noexcept {
  return state_->eof && state_->size() == 0;
}
void StreamReader::feed_data(std::string_view data) {
  state_->feed_data(data);
}
void StreamReader::feed_eof() {
  state_->feed_eof();
}
void StreamReader::set_exception(std::exception_ptr exc) {
  state_->set_exception(exc);
}
std::exception_ptr StreamReader::exception() const noexcept {
  return state_->error;
}

Coro<std::string> StreamReader::read(std::ptrdiff_t n, detail::CallSite site) {
  auto s = state_;  // the handle may be moved from while we wait
  if (s->error) std::rethrow_exception(s->error);
  if (n == 0) co_return std::string();
  if (n < 0) {
    // Everything until EOF, gathered in limit-sized blocks as asyncio does.
    std::string all;
    for (;;) {
      std::string block = co_await read(static_cast<std::ptrdiff_t>(s->limit), site);
      if (block.empty()) break;
      all += block;
    }
    co_return all;
  }
  if (s->size() == 0 && !s->eof) co_await s->wait_for_data("read", site);
  if (s->error && s->size() == 0) std::rethrow_exception(s->error);
  co_return s->take(static_cast<std::size_t>(n));
}

Coro<std::size_t> StreamReader::read_into(std::span<char> buffer, detail::CallSite site) {
  auto s = state_;
  if (s->error) std::rethrow_exception(s->error);
  if (buffer.empty()) co_return 0;
  if (s->size() == 0 && !s->eof) co_await s->wait_for_data("read_into", site);
  if (s->error && s->size() == 0) std::rethrow_exception(s->error);
  const std::size_t n = std::min(buffer.size(), s->size());
  std::memcpy(buffer.data(), s->buffer.data() + s->offset, n);
  s->drop(n);
  co_return n;
}

Coro<std::string> StreamReader::readexactly(std::size_t n, detail::CallSite site) {
  auto s = state_;
  if (s->error) std::rethrow_exception(s->error);
  if (n == 0) co_return std::string();
  while (s->size() < n) {
    if (s->eof) throw IncompleteReadError(s->take(s->size()), n);
    co_await s->wait_for_data("readexactly", site);
    if (s->error) std::rethrow_exception(s->error);
  }
  co_return s->take(n);
}

Coro<std::string> StreamReader::readuntil(std::vector<std::string> separators,
                                          detail::CallSite site) {
  auto s = state_;
  if (separators.empty()) throw ValueError("Separator should contain at least one element");
  // The shortest first, so that of the matches ending at one place the shortest wins.
  std::stable_sort(separators.begin(), separators.end(),
                   [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
  const std::size_t min_seplen = separators.front().size();
  const std::size_t max_seplen = separators.back().size();
  if (min_seplen == 0) throw ValueError("Separator should be at least one-byte string");
  if (s->error) std::rethrow_exception(s->error);
  std::size_t offset = 0;
  std::size_t match_start = 0;
  std::size_t match_end = std::string_view::npos;
  for (;;) {
    const std::string_view data = s->data();
    if (data.size() >= offset + min_seplen) {
      for (const std::string& sep : separators) {
        const std::size_t isep = data.find(sep, offset);
        if (isep != std::string_view::npos && isep + sep.size() < match_end) {
          match_end = isep + sep.size();
          match_start = isep;
        }
      }
      if (match_end != std::string_view::npos) break;
      offset = data.size() + 1 > max_seplen ? data.size() + 1 - max_seplen : 0;
      if (offset > s->limit) {
        throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
      }
    }
    if (s->eof) throw IncompleteReadError(s->take(s->size()), 0);
    co_await s->wait_for_data("readuntil", site);
    if (s->error) std::rethrow_exception(s->error);
  }
  if (match_start > s->limit) {
    throw LimitOverrunError("Separator is found, but chunk is longer than limit", match_start);
  }
  co_return s->take(match_end);
}

Coro<std::string> StreamReader::readuntil(std::string separator, detail::CallSite site) {
  auto s = state_;
  const std::size_t seplen = separator.size();
  if (seplen == 0) throw ValueError("Separator should be at least one-byte string");
  if (s->error) std::rethrow_exception(s->error);
  // `offset` is where the separator may start in the data that is not yet searched.
  std::size_t offset = 0;
  std::size_t isep;
  for (;;) {
    const std::string_view data = s->data();
    if (data.size() >= offset + seplen) {
      isep = data.find(separator, offset);
      if (isep != std::string_view::npos) break;
      offset = data.size() + 1 - seplen;
      if (offset > s->limit) {
        throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
      }
    }
    if (s->eof) throw IncompleteReadError(s->take(s->size()), 0);
    co_await s->wait_for_data("readuntil", site);
    if (s->error) std::rethrow_exception(s->error);
  }
  if (isep > s->limit) {
    throw LimitOverrunError("Separator is found, but chunk is longer than limit", isep);
  }
  co_return s->take(isep + seplen);
}

namespace {
AsyncGenerator<std::string> reader_lines(StreamReader reader, detail::CallSite site) {
  for (;;) {
    std::string line = co_await reader.readline(site);
    if (line.empty()) co_return;
    co_yield std::move(line);
  }
}
}  // namespace

AsyncGenerator<std::string> StreamReader::lines(detail::CallSite site) {
  return reader_lines(*this, site);
}

Coro<std::string> StreamReader::readline(detail::CallSite site) {
  auto s = state_;
  std::string line;
  std::optional<std::string> overrun;
  try {
    line = co_await readuntil("\n", site);
  } catch (const IncompleteReadError& e) {
    line = e.partial;
  } catch (const LimitOverrunError& e) {
    // Drop the over-long line (and its separator, when it is there) so that reading can go on.
    const bool separator_follows = s->data().substr(e.consumed, 1) == "\n";
    s->drop(separator_follows ? e.consumed + 1 : s->size());
    overrun = e.what();
  }
  if (overrun) throw ValueError(*overrun);
  co_return line;
}

// ---- StreamWriter
// --------------------------------------------------------------------------------

StreamWriter::StreamWriter(std::shared_ptr<StreamState> state,
                           std::shared_ptr<detail::StreamLife> life) noexcept
    : state_(std::move(state)), life_(std::move(life)) {}

void StreamWriter::write(std::string_view data) {
  state_->transport->write(data);
}
void StreamWriter::writelines(const std::vector<std::string>& lines) {
  state_->transport->writelines(lines);
}
bool StreamWriter::can_write_eof() const noexcept {
  return state_->transport->can_write_eof();
}
void StreamWriter::write_eof() {
  state_->transport->write_eof();
}
void StreamWriter::close() {
  state_->transport->close();
}
bool StreamWriter::is_closing() const noexcept {
  return state_->transport->is_closing();
}
ExtraInfo StreamWriter::get_extra_info(std::string_view name) const {
  return state_->transport->get_extra_info(name);
}
Transport& StreamWriter::transport() const noexcept {
  return *state_->transport;
}

Coro<void> StreamWriter::drain(detail::CallSite site) {
  auto s = state_;
  if (s->error) std::rethrow_exception(s->error);
  if (s->transport->is_closing()) {
    // Let connection_lost run first, so that the loss is reported below (asyncio yields too).
    co_await sleep(std::chrono::seconds(0), site);
  }
  if (s->lost) {
    if (s->lost_error) std::rethrow_exception(s->lost_error);
    throw os_error(ECONNRESET, "Connection lost");
  }
  while (s->writing_paused && !s->lost) {
    detail::dbg::IoWaitTrace trace;
    detail::trace_stream_wait(trace, "drain", *s);
    co_await s->drain_ready.wait(site);
  }
  // As asyncio's _drain_helper: a waiting drain ends with the loss's error, or normally when
  // the connection closed cleanly.
  if (s->lost_error) std::rethrow_exception(s->lost_error);
}

Coro<void> StreamWriter::start_tls(SSLContext context, std::string server_hostname,
                                   std::optional<Clock::duration> ssl_handshake_timeout,
                                   std::optional<Clock::duration> ssl_shutdown_timeout) {
  auto s = state_;
  co_await drain(detail::CallSite::none());  // the TLS handshake's caller is not known here
  std::shared_ptr<Protocol> protocol = s->protocol.lock();
  if (!protocol || s->lost) throw RuntimeError("start_tls: the connection is closed");
  std::shared_ptr<Transport> upgraded = co_await get_running_loop().start_tls(
      s->transport, protocol, std::move(context), s->server_side, std::move(server_hostname),
      ssl_handshake_timeout, ssl_shutdown_timeout);
  s->transport = std::move(upgraded);
  s->reading_paused = false;  // the TLS transport starts reading; the old one reads for it
}

Coro<void> StreamWriter::wait_closed(detail::CallSite site) {
  auto s = state_;
  if (!s->lost) co_await s->closed.wait(site);
  if (s->lost_error) std::rethrow_exception(s->lost_error);
}

// ---- open_connection / start_server ------------------------------------------------------------

namespace {

ConnectionOptions connection_options(const StreamOptions& opts) {
  ConnectionOptions c;
  c.local_addr = opts.local_addr;
  c.ssl = opts.ssl;
  c.server_hostname = opts.server_hostname;
  c.ssl_handshake_timeout = opts.ssl_handshake_timeout;
  c.ssl_shutdown_timeout = opts.ssl_shutdown_timeout;
  c.happy_eyeballs_delay = opts.happy_eyeballs_delay;
  c.interleave = opts.interleave;
  c.all_errors = opts.all_errors;
  return c;
}

ServerOptions server_options(const StreamOptions& opts) {
  ServerOptions o;
  o.backlog = opts.backlog;
  o.reuse_address = opts.reuse_address;
  o.reuse_port = opts.reuse_port;
  o.start_serving = opts.start_serving;
  o.cleanup_socket = opts.cleanup_socket;
  o.keep_alive = opts.keep_alive;
  o.ssl = opts.ssl;
  o.ssl_handshake_timeout = opts.ssl_handshake_timeout;
  o.ssl_shutdown_timeout = opts.ssl_shutdown_timeout;
  return o;
}

std::pair<StreamReader, StreamWriter> handles(const std::shared_ptr<StreamState>& state,
                                              const Connection& c) {
  state->transport = c.transport;
  auto life = std::make_shared<detail::StreamLife>(state);
  return {StreamReader(state, life), StreamWriter(state, life)};
}

ProtocolFactory stream_factory(std::size_t limit, std::shared_ptr<StreamState>* made,
                               ClientConnected callback) {
  return [limit, made, callback = std::move(callback)]() -> std::shared_ptr<Protocol> {
    auto state = std::make_shared<StreamState>(limit);
    if (made != nullptr) *made = state;
    auto protocol = std::make_shared<detail::StreamProtocol>(state, callback);
    state->protocol = protocol;
    state->server_side = static_cast<bool>(callback);
    return protocol;
  };
}

}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, std::uint16_t port,
                                                            StreamOptions opts) {
  std::shared_ptr<StreamState> state;
  Connection c = co_await get_running_loop().create_connection(
      stream_factory(opts.limit, &state, nullptr), std::move(host), port, connection_options(opts));
  co_return handles(state, c);
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 StreamOptions opts) {
  std::shared_ptr<StreamState> state;
  Connection c = co_await get_running_loop().create_unix_connection(
      stream_factory(opts.limit, &state, nullptr), std::move(path), connection_options(opts));
  co_return handles(state, c);
}

Coro<Server> start_server(ClientConnected client_connected, std::string host, std::uint16_t port,
                          StreamOptions opts) {
  if (!client_connected) throw ValueError("start_server: empty client_connected callback");
  co_return co_await get_running_loop().create_server(
      stream_factory(opts.limit, nullptr, std::move(client_connected)), std::move(host), port,
      server_options(opts));
}

Coro<Server> start_unix_server(ClientConnected client_connected, std::string path,
                               StreamOptions opts) {
  if (!client_connected) throw ValueError("start_unix_server: empty client_connected callback");
  co_return co_await get_running_loop().create_unix_server(
      stream_factory(opts.limit, nullptr, std::move(client_connected)), std::move(path),
      server_options(opts));
}

Coro<Server> start_server(ClientConnected client_connected, std::vector<std::string> hosts,
                          std::uint16_t port, StreamOptions opts) {
  if (!client_connected) throw ValueError("start_server: empty client_connected callback");
  co_return co_await get_running_loop().create_server(
      stream_factory(opts.limit, nullptr, std::move(client_connected)), std::move(hosts), port,
      server_options(opts));
}

Coro<std::pair<StreamReader, StreamWriter>> open_connection(Socket sock, StreamOptions opts) {
  std::shared_ptr<StreamState> state;
  Connection c = co_await get_running_loop().create_connection(
      stream_factory(opts.limit, &state, nullptr), std::move(sock), connection_options(opts));
  co_return handles(state, c);
}

Coro<Server> start_server(ClientConnected client_connected, Socket sock, StreamOptions opts) {
  if (!client_connected) throw ValueError("start_server: empty client_connected callback");
  co_return co_await get_running_loop().create_server(
      stream_factory(opts.limit, nullptr, std::move(client_connected)), std::move(sock),
      server_options(opts));
}

}  // namespace weave
