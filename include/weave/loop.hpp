#pragma once
/// \file loop.hpp
/// EventLoop: asyncio's event loop, one per thread. It owns the ready queue (FIFO), the timers,
/// the thread-safe entry queue and the I/O backend (io_uring or epoll, chosen at run time).
///
/// Scheduling order is asyncio's: callbacks run FIFO; a callback scheduled while the ready queue
/// is being run waits for the next iteration; timers fire in deadline order, ties in scheduling
/// order. Only call_soon_threadsafe may be called from another thread.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/detail/small_function.hpp"
#include "weave/sockets.hpp"
#include "weave/subprocess.hpp"
#include "weave/trace.hpp"
#include "weave/transports.hpp"

namespace weave {

class EventLoop;
template <class T>
class Future;
template <class T>
class Task;

class Context;
struct TaskOptions;
struct FrameCallGraphEntry;

namespace concurrent {
class Executor;
}  // namespace concurrent

/// asyncio's task factory: create_task calls it with the loop and the options of the task it is
/// about to start, which it may change (name, context, eager_start). See eager_task_factory.
using TaskFactory = std::function<void(EventLoop&, TaskOptions&)>;

namespace detail {
class LoopImpl;
struct HandleNode;
class EntryQueue;

/// A thread-safe reference to a loop's call_soon_threadsafe queue that stays valid after the loop
/// is closed or destroyed; posting through it then fails instead of touching the dead loop.
using LoopLink = std::shared_ptr<EntryQueue>;
LoopLink loop_link(EventLoop& loop);
/// call_soon_threadsafe through a link, from any thread. Returns false when the loop is closed:
/// `fn` is then destroyed in the calling thread, so it must not own loop-bound objects.
bool post_to_loop(const LoopLink& link, SmallFunction fn);
/// The loop's default executor, created on first use. Errors: RuntimeError once
/// shutdown_default_executor() was called.
concurrent::Executor& default_executor(EventLoop& loop);
}  // namespace detail

/// Identifies one add_done_callback registration, for remove_done_callback.
using CallbackId = std::uintptr_t;

/// A type-erased, cheap, copyable handle to any Task (asyncio's Task object, whatever its result).
/// It keeps the task's state readable after the task finished and after its loop stopped.
class TaskRef {
 public:
  TaskRef() noexcept = default;
  explicit TaskRef(detail::TaskCore* core) noexcept : core_(core) {
    if (core_ != nullptr) ++core_->refs;
  }
  TaskRef(const TaskRef& o) noexcept : TaskRef(o.core_) {}
  TaskRef(TaskRef&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  TaskRef& operator=(TaskRef o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~TaskRef() {
    if (core_ != nullptr) detail::task_release(core_);
  }
  static TaskRef from_core(detail::FutureCore* core) noexcept {
    return TaskRef(static_cast<detail::TaskCore*>(core));
  }

  bool done() const noexcept { return core_->done(); }
  bool cancelled() const noexcept { return core_->cancelled(); }
  /// Asks the task to cancel: its current await raises CancelledError(msg). False if done, or
  /// if its loop was destroyed first (it can never run again).
  bool cancel(std::string_view msg = {}) { return detail::task_cancel(core_, msg); }
  /// Pending cancellation requests (asyncio's cancelling()).
  int cancelling() const noexcept;
  /// Withdraws one cancellation request; returns the remaining count.
  int uncancel() noexcept;
  std::string get_name() const;
  void set_name(std::string name);
  /// The exception the task ended with (nullptr if none). Throws CancelledError if cancelled,
  /// InvalidStateError if not done.
  std::exception_ptr exception() const;
  /// Rethrows the task's exception, or returns. Throws InvalidStateError if not done.
  void result() const;
  /// `fn(TaskRef)` is scheduled with call_soon when the task is done (at once if it is).
  CallbackId add_done_callback(std::function<void(TaskRef)> fn);
  std::size_t remove_done_callback(CallbackId id);
  /// asyncio's Task.get_stack(): the suspended coroutine frames, oldest first (graph.hpp); empty
  /// when the task is done.
  std::vector<FrameCallGraphEntry> get_stack() const;
  /// asyncio's Task.print_stack(): "Stack for <Task ...> (most recent call last):" and a
  /// `  File "...", line N, in f` line per frame (graph.hpp).
  void print_stack(std::FILE* file = stderr) const;
  EventLoop& get_loop() const noexcept { return *core_->loop(); }

  explicit operator bool() const noexcept { return core_ != nullptr; }
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.core_ == b.core_; }
  detail::TaskCore* core() const noexcept { return core_; }

  struct Awaiter;
  /// Waits for the task; rethrows its exception. Cancelling the awaiting task cancels this one.
  Awaiter operator co_await() const noexcept;

 private:
  detail::TaskCore* core_ = nullptr;
};

/// asyncio's exception-handler context dict, as a struct.
struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;  ///< may be null
  std::optional<TaskRef> task;   ///< the task concerned, if any
};
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

/// A callback scheduled with call_soon; cancel() before it runs and it never runs.
/// A Handle must not be used after its loop is destroyed.
class Handle {
 public:
  Handle() noexcept = default;
  Handle(detail::HandleNode* node, std::uint32_t generation) noexcept
      : node_(node), generation_(generation) {}
  void cancel() noexcept;
  bool cancelled() const noexcept;

 protected:
  detail::HandleNode* node_ = nullptr;
  std::uint32_t generation_ = 0;
  bool cancelled_ = false;
};

/// A callback scheduled with call_later/call_at.
class TimerHandle : public Handle {
 public:
  TimerHandle() noexcept = default;
  TimerHandle(detail::HandleNode* node, std::uint32_t generation, Clock::time_point when) noexcept
      : Handle(node, generation), when_(when) {}
  Clock::time_point when() const noexcept { return when_; }

 private:
  Clock::time_point when_{};
};

/// What EventLoop::shutdown_default_executor() returns. Awaited, the loop keeps running while
/// the executor's threads finish, as asyncio's coroutine does:
///   co_await loop.shutdown_default_executor();
/// Used as a plain statement (as run() and Runner::close() do, outside the loop), it blocks the
/// calling thread until they have.
class ExecutorShutdown {
 public:
  explicit ExecutorShutdown(EventLoop& loop) noexcept : loop_(&loop) {}
  ExecutorShutdown(ExecutorShutdown&& o) noexcept
      : loop_(std::exchange(o.loop_, nullptr)), coro_(std::move(o.coro_)) {}
  ExecutorShutdown& operator=(ExecutorShutdown&&) = delete;
  /// Blocks until the shutdown is over, unless the object was awaited.
  ~ExecutorShutdown();

  /// Cancellation: the wait is abandoned, not the shutdown; the joining thread finishes on its
  /// own and is joined when the loop is closed.
  Coro<void>::Awaiter operator co_await() &;
  Coro<void>::Awaiter operator co_await() && { return operator co_await(); }

 private:
  EventLoop* loop_;  ///< null once awaited or moved from
  Coro<void> coro_;  ///< the awaited shutdown
};

class EventLoop {
 public:
  /// A new loop on the backend that WEAVE_BACKEND names (epoll|uring), or the best available.
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Runs until the awaitable (Coro, Task or Future) is done; returns its result or rethrows.
  template <class A>
  auto run_until_complete(A&& awaitable);
  /// Runs until stop() is called.
  void run_forever();
  /// Stops run_forever() after the current iteration.
  void stop() noexcept;
  /// Closes the loop: pending callbacks are dropped, the backend is released. Not while running.
  void close();
  bool is_running() const noexcept;
  bool is_closed() const noexcept;
  /// The loop's clock (asyncio's loop.time()).
  Clock::time_point time() const noexcept { return Clock::now(); }

  Handle call_soon(detail::SmallFunction fn);
  TimerHandle call_later(Clock::duration delay, detail::SmallFunction fn);
  TimerHandle call_at(Clock::time_point when, detail::SmallFunction fn);
  /// The one member safe from any thread; wakes the loop at once if it is blocked in its poller.
  /// Callbacks posted from one thread run in the order they were posted. Takes any callable,
  /// move-only ones included. Errors: RuntimeError once the loop is closed.
  void call_soon_threadsafe(detail::SmallFunction fn);
  // Without a context, a callback runs in a copy of the caller's context; with one, in that
  // context itself (asyncio's `context=`).
  Handle call_soon(detail::SmallFunction fn, const Context& context);
  TimerHandle call_later(Clock::duration delay, detail::SmallFunction fn, const Context& context);
  TimerHandle call_at(Clock::time_point when, detail::SmallFunction fn, const Context& context);
  void call_soon_threadsafe(detail::SmallFunction fn, const Context& context);

  /// `site` is the caller's line, which debug mode's reports name (leave it defaulted).
  template <class T>
  Task<T> create_task(Coro<T> coro, detail::CallSite site = detail::CallSite::here());
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name,
                      detail::CallSite site = detail::CallSite::here());
  template <class T>
  Task<T> create_task(Coro<T> coro, TaskOptions options,
                      detail::CallSite site = detail::CallSite::here());
  /// asyncio's loop.set_task_factory; nullptr (or an empty function) resets it.
  void set_task_factory(TaskFactory factory);
  /// The factory set, or an empty function (it tests false) when none is.
  const TaskFactory& get_task_factory() const noexcept;
  template <class T = void>
  Future<T> create_future();

  void set_exception_handler(ExceptionHandler handler);
  ExceptionHandler get_exception_handler() const;
  void call_exception_handler(const ExceptionContext& context) noexcept;
  void default_exception_handler(const ExceptionContext& context) noexcept;

  /// Debug mode: thread checks on non-thread-safe calls and slow-callback reports.
  void set_debug(bool enabled) noexcept;
  bool get_debug() const noexcept;
  /// In debug mode, a callback or task step that runs longer than this is reported (when it
  /// ends, and by the stall watchdog while it still blocks).
  Clock::duration slow_callback_duration = std::chrono::milliseconds(100);
  /// Task statistics (weave/trace.hpp): per task busy/scheduled/idle time, steps, wake-ups; per
  /// loop iterations, ready-queue depth, loop lag. Off by default.
  void set_stats(bool enabled) noexcept;
  /// The figures gathered since set_stats(true); `enabled` is false when statistics are off.
  LoopStats stats() const;

  /// asyncio's loop.run_in_executor: submits `fn(args...)` to `executor` (nullptr: the default
  /// executor, a concurrent::ThreadPoolExecutor created on first use) and returns a Future of
  /// this loop that completes, through call_soon_threadsafe, when the call does. Arguments are
  /// copied or moved into the call. A ProcessPoolExecutor takes a plain function pointer.
  /// Cancellation: cancelling the returned Future (or the task awaiting it) cancels the call if
  /// it has not started; a call already running finishes and its result is dropped.
  /// Errors: the call's exception, with its type (RemoteError from a process pool);
  /// RuntimeError for the default executor after shutdown_default_executor(); what submit()
  /// throws (RuntimeError after the executor's shutdown, BrokenExecutor).
  template <class Fn, class... Args>
  auto run_in_executor(std::nullptr_t, Fn&& fn, Args&&... args);
  template <class Ex, class Fn, class... Args>
  auto run_in_executor(Ex* executor, Fn&& fn, Args&&... args);

  /// asyncio's loop.set_default_executor: run_in_executor(nullptr, ...) and to_thread() use
  /// `executor` from now on, and shutdown_default_executor() shuts it down. By reference or
  /// pointer the loop borrows it (it must outlive the loop or be replaced first); by smart
  /// pointer the loop shares or takes ownership.
  void set_default_executor(concurrent::Executor& executor);
  void set_default_executor(concurrent::Executor* executor);
  void set_default_executor(std::shared_ptr<concurrent::Executor> executor);
  template <class E>
  void set_default_executor(std::unique_ptr<E> executor) {
    set_default_executor(std::shared_ptr<concurrent::Executor>(std::move(executor)));
  }

  /// asyncio's loop.shutdown_default_executor: no new work is accepted by the default executor
  /// (run_in_executor(nullptr, ...) and to_thread() raise RuntimeError from now on), the work
  /// already submitted finishes and the executor's threads are joined. Awaitable, or blocking
  /// when used as a statement (see ExecutorShutdown); run() and Runner call it before closing.
  /// Safe to call when no default executor was started, and more than once.
  ExecutorShutdown shutdown_default_executor() { return ExecutorShutdown(*this); }

  /// asyncio's loop.shutdown_asyncgens: closes (aclose) every AsyncGenerator first iterated on
  /// this loop that is neither finished nor destroyed, one after the other; an exception from a
  /// close goes to the exception handler. run() and Runner call it after cancelling the leftover
  /// tasks.
  Coro<void> shutdown_asyncgens();

  // ---- I/O readiness and the low-level socket API (asyncio's add_reader and loop.sock_*) ----
  // The fds are the caller's: non-blocking, and closed only after their callbacks are removed
  // and no sock_* call on them is pending. `site`, in each sock_* call: the caller's line, which
  // call graphs and weave ps show while the task waits in it; leave it defaulted.

  /// Calls `fn` once per iteration while `fd` is readable, until remove_reader(fd); replaces an
  /// earlier reader of `fd`. Errors: std::system_error when the backend refuses the fd (epoll
  /// refuses regular files); RuntimeError on a closed loop.
  void add_reader(int fd, std::function<void()> fn);
  /// True when a reader was registered.
  bool remove_reader(int fd);
  void add_writer(int fd, std::function<void()> fn);
  bool remove_writer(int fd);

  /// Up to `nbytes` from the socket; empty at end of stream. Errors: std::system_error
  /// (ECONNRESET, ...). Cancellation: the wait is withdrawn, nothing was read.
  Coro<std::string> sock_recv(int fd, std::size_t nbytes,
                              detail::CallSite site = detail::CallSite::here());
  /// Reads into `buffer`; returns the count (0 at end of stream).
  Coro<std::size_t> sock_recv_into(int fd, std::span<char> buffer,
                                   detail::CallSite site = detail::CallSite::here());
  /// Sends all of `data`, which must stay alive until the call completes. Errors:
  /// std::system_error (EPIPE, ECONNRESET, ...). Cancellation: part of `data` may have been sent.
  Coro<void> sock_sendall(int fd, std::string_view data,
                          detail::CallSite site = detail::CallSite::here());
  /// A connection from the listening socket `fd` (non-blocking, close-on-exec) and its peer.
  Coro<std::pair<Socket, SocketAddress>> sock_accept(
      int fd, detail::CallSite site = detail::CallSite::here());
  /// Connects `fd` to `address`. Errors: std::system_error (ECONNREFUSED, ...).
  Coro<void> sock_connect(int fd, SocketAddress address,
                          detail::CallSite site = detail::CallSite::here());
  // The same with the Socket itself, as asyncio passes the socket object; it must outlive the
  // call.
  Coro<std::string> sock_recv(const Socket& sock, std::size_t nbytes,
                              detail::CallSite site = detail::CallSite::here()) {
    return sock_recv(sock.fd(), nbytes, site);
  }
  Coro<std::size_t> sock_recv_into(const Socket& sock, std::span<char> buffer,
                                   detail::CallSite site = detail::CallSite::here()) {
    return sock_recv_into(sock.fd(), buffer, site);
  }
  Coro<void> sock_sendall(const Socket& sock, std::string_view data,
                          detail::CallSite site = detail::CallSite::here()) {
    return sock_sendall(sock.fd(), data, site);
  }
  Coro<std::pair<Socket, SocketAddress>> sock_accept(
      const Socket& sock, detail::CallSite site = detail::CallSite::here()) {
    return sock_accept(sock.fd(), site);
  }
  Coro<void> sock_connect(const Socket& sock, SocketAddress address,
                          detail::CallSite site = detail::CallSite::here()) {
    return sock_connect(sock.fd(), address, site);
  }

  // ---- datagrams, sendfile and names of the low-level API (asyncio 3.11+ sock_recvfrom, ...) ----

  /// asyncio's loop.sock_recvfrom: one datagram of at most `bufsize` bytes (longer ones are
  /// truncated, as recvfrom(2) does) and its sender. Errors: std::system_error. Cancellation:
  /// the wait is withdrawn, nothing was read.
  Coro<std::pair<std::string, SocketAddress>> sock_recvfrom(
      int fd, std::size_t bufsize, detail::CallSite site = detail::CallSite::here());
  /// asyncio's loop.sock_recvfrom_into: the datagram into `buffer`; its length (at most the
  /// buffer's) and its sender.
  Coro<std::pair<std::size_t, SocketAddress>> sock_recvfrom_into(
      int fd, std::span<char> buffer, detail::CallSite site = detail::CallSite::here());
  /// asyncio's loop.sock_sendto: sends `data` as one datagram to `address`; returns the count
  /// sent. Errors: std::system_error (EMSGSIZE, ...).
  Coro<std::size_t> sock_sendto(int fd, std::string_view data, SocketAddress address,
                                detail::CallSite site = detail::CallSite::here());
  /// asyncio's loop.sock_sendfile: sends `count` bytes (nullopt: to the end) of the open file
  /// `file` from `offset` over the connected stream socket `fd`, with sendfile(2) (zero-copy)
  /// when the file allows it, and otherwise (not a regular file, or the kernel refuses) with
  /// reads and sends when `fallback` is true. Returns the count sent; the file's position is
  /// left at offset + that count, as asyncio does. Errors: SendfileNotAvailableError when
  /// sendfile(2) cannot be used and `fallback` is false; std::system_error (EPIPE,
  /// ECONNRESET, ...) from the socket or the file. Cancellation: part of the file may have
  /// been sent; the file's position is then unspecified.
  Coro<std::size_t> sock_sendfile(int fd, int file, std::uint64_t offset = 0,
                                  std::optional<std::size_t> count = std::nullopt,
                                  bool fallback = true,
                                  detail::CallSite site = detail::CallSite::here());
  /// asyncio's loop.sendfile: sends `count` bytes (nullopt: to the end) of the open file `file`
  /// from `offset` over `transport`. A plain TCP or Unix socket transport flushes its buffer,
  /// then sends with sock_sendfile (zero-copy); its reading is paused and write() raises
  /// RuntimeError meanwhile. Other transports (TLS), and files sendfile(2) refuses, take the
  /// fallback when `fallback` is true: blocks of 256 KiB read in the default executor and
  /// written, paced by the transport's flow control. Returns the count sent; the file's
  /// position is left at offset + that count. Errors: SendfileNotAvailableError when zero-copy
  /// cannot be used and `fallback` is false; RuntimeError when the transport is closing or of
  /// a kind sendfile does not know; std::system_error (EPIPE when the connection is lost,
  /// ECONNRESET, ...). Cancellation: part of the file may have been sent.
  Coro<std::size_t> sendfile(Transport& transport, int file, std::uint64_t offset = 0,
                             std::optional<std::size_t> count = std::nullopt, bool fallback = true);
  /// asyncio's loop.getnameinfo: ::getnameinfo (NI_* `flags`) run in the default executor;
  /// returns (host, service). Errors: std::system_error in gai_category().
  Coro<std::pair<std::string, std::string>> getnameinfo(SocketAddress address, int flags = 0);

  // ---- servers and connections over sockets the caller made (asyncio's sock=) ----

  /// asyncio's create_server(sock=...): serves on `sock`, a bound SOCK_STREAM socket (listen()
  /// is called with opts.backlog; one already listening is fine). Errors: ValueError when it is
  /// not a stream socket; std::system_error from listen.
  Coro<Server> create_server(ProtocolFactory factory, Socket sock, ServerOptions opts = {});
  /// asyncio's create_connection(sock=...): a transport over `sock`, connected already.
  /// opts.ssl and server_hostname apply; local_addr must be empty (ValueError).
  Coro<Connection> create_connection(ProtocolFactory factory, Socket sock,
                                     ConnectionOptions opts = {});
  /// asyncio's loop.connect_accepted_socket: a transport over `sock`, a connection accepted
  /// outside the loop (e.g. by sock_accept), as a server's own connections get.
  Coro<Connection> connect_accepted_socket(ProtocolFactory factory, Socket sock);

  // ---- pipes (asyncio's connect_read_pipe / connect_write_pipe) ----

  /// asyncio's loop.connect_read_pipe: a read transport over `fd`, the read end of a pipe or a
  /// FIFO (a socket or a character device work too), made non-blocking and owned by the
  /// transport from then on. Returns once the protocol's connection_made has run. The protocol
  /// gets data_received, then at EOF (every writer gone) eof_received and connection_lost(null),
  /// whatever eof_received returns; pause_reading/resume_reading work as on sockets; write()
  /// raises RuntimeError. get_extra_info("pipe") is the fd. Errors (the fd stays the caller's):
  /// ValueError when `fd` is a regular file or a directory; std::system_error.
  Coro<Connection> connect_read_pipe(ProtocolFactory factory, int fd);
  /// asyncio's loop.connect_write_pipe: a write transport over `fd`, the write end of a pipe or
  /// a FIFO, with the socket transport's buffering and flow control (pause_writing past the
  /// high-water mark, resume_writing at the low one). write_eof() and close() close the fd once
  /// the buffer is flushed, which the reader sees as EOF. A reader going away ends it: lost with
  /// null when nothing is buffered, else std::system_error(EPIPE) (SIGPIPE is ignored unless a
  /// handler is installed), as asyncio's. Errors: as connect_read_pipe.
  Coro<Connection> connect_write_pipe(ProtocolFactory factory, int fd);

  // ---- signals (asyncio's add_signal_handler) ----

  /// Runs `fn` as a callback on this loop each time the process receives `sig` (signals that
  /// arrive together may be coalesced, as the kernel does). Replaces an earlier handler of `sig`.
  /// The signal is blocked in the loop's thread and read from a signalfd; a copy delivered to
  /// another thread is forwarded to this one. Like asyncio, only the main thread's loop may
  /// handle signals. Children started by create_subprocess_* get an empty signal mask.
  /// Errors: ValueError for an invalid signal number; RuntimeError for SIGKILL/SIGSTOP, off the
  /// main thread, or on a closed loop.
  void add_signal_handler(int sig, std::function<void()> fn);
  /// Removes the handler of `sig` and puts back the disposition and signal mask that
  /// add_signal_handler found; a delivery still pending is dropped. False when `sig` had no
  /// handler. close() removes every handler. Errors: ValueError for an invalid signal number.
  bool remove_signal_handler(int sig);

  // ---- names, connections and servers (asyncio's getaddrinfo, create_connection, ...) ----

  /// asyncio's loop.getaddrinfo: ::getaddrinfo run in the default executor. Errors:
  /// std::system_error in gai_category() (a DNS failure, e.g. EAI_NONAME).
  Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::uint16_t port,
                                          int family = AF_UNSPEC, int type = 0, int protocol = 0,
                                          int flags = 0);
  /// Connects to `host`:`port` (each resolved address in turn, or raced as Happy Eyeballs with
  /// opts.happy_eyeballs_delay) and starts a transport with the protocol `factory` makes.
  /// Errors: std::system_error (ECONNREFUSED, DNS failure, ...); ExceptionGroup with
  /// opts.all_errors. Cancellation: every connect attempt is withdrawn and its socket closed.
  Coro<Connection> create_connection(ProtocolFactory factory, std::string host, std::uint16_t port,
                                     ConnectionOptions opts = {});
  Coro<Connection> create_unix_connection(ProtocolFactory factory, std::string path,
                                          ConnectionOptions opts = {});
  /// Listens on `host`:`port` (every address of `host`; all interfaces when empty; port 0 picks
  /// a free port) and makes a protocol per accepted connection.
  Coro<Server> create_server(ProtocolFactory factory, std::string host, std::uint16_t port,
                             ServerOptions opts = {});
  /// asyncio's create_server with a sequence of hosts: one listening socket per address of each
  /// host (an address given twice is listened on once), all in one Server. Pass a named vector:
  /// a braced list of two string literals also reads as a std::string. Errors: ValueError when
  /// `hosts` is empty; as above (the sockets made so far are closed).
  Coro<Server> create_server(ProtocolFactory factory, std::vector<std::string> hosts,
                             std::uint16_t port, ServerOptions opts = {});
  /// The same on the Unix socket `path` (a stale socket file there is replaced); close()
  /// removes the file unless opts.cleanup_socket is false.
  Coro<Server> create_unix_server(ProtocolFactory factory, std::string path,
                                  ServerOptions opts = {});
  /// asyncio's loop.create_datagram_endpoint: a UDP socket bound to `local_addr` and/or
  /// connected to `remote_addr` (each resolved, then paired by family as asyncio does), with the
  /// protocol `factory` makes. Returns after connection_made. Errors: ValueError without any
  /// address and family, or when no family has both addresses; std::system_error (EADDRINUSE,
  /// DNS failure, ...) from the first family tried. Cancellation: the transport is closed.
  Coro<DatagramEndpoint> create_datagram_endpoint(DatagramProtocolFactory factory,
                                                  DatagramEndpointOptions opts = {});
  /// The same over an existing SOCK_DGRAM socket, bound or connected already (asyncio's `sock`).
  /// Errors: ValueError when `sock` is not a datagram socket.
  Coro<DatagramEndpoint> create_datagram_endpoint(DatagramProtocolFactory factory, Socket sock);
  /// asyncio's loop.start_tls: upgrades a live connection to TLS. `protocol` (usually the
  /// transport's own) is moved on top of the TLS layer; its connection_made is not called
  /// again. Returns the new transport once the handshake is done; the old one must not be
  /// used any more. `server_hostname` (client side) names the peer for SNI and the certificate
  /// check. Errors: as ConnectionOptions::ssl; the connection is closed on failure.
  /// Cancellation: the connection is closed.
  Coro<std::shared_ptr<Transport>> start_tls(
      std::shared_ptr<Transport> transport, std::shared_ptr<Protocol> protocol, SSLContext context,
      bool server_side = false, std::string server_hostname = {},
      std::optional<Clock::duration> ssl_handshake_timeout = std::nullopt,
      std::optional<Clock::duration> ssl_shutdown_timeout = std::nullopt);

  // ---- child processes, callback layer (asyncio's loop.subprocess_exec) ----

  /// Starts `program` with `args` (as create_subprocess_exec) and connects the protocol
  /// `factory` makes to it. Without options, stdin, stdout and stderr are all PIPEs (asyncio's
  /// defaults for this call). Errors: as create_subprocess_exec.
  Coro<SubprocessConnection> subprocess_exec(SubprocessProtocolFactory factory, std::string program,
                                             ProcessArgs args, SubprocessOptions opts);
  Coro<SubprocessConnection> subprocess_exec(SubprocessProtocolFactory factory, std::string program,
                                             ProcessArgs args);
  /// `/bin/sh -c cmd`, as subprocess_exec.
  Coro<SubprocessConnection> subprocess_shell(SubprocessProtocolFactory factory, std::string cmd,
                                              SubprocessOptions opts);
  Coro<SubprocessConnection> subprocess_shell(SubprocessProtocolFactory factory, std::string cmd);

  /// "epoll" or "io_uring".
  const char* backend_name() const noexcept;
  detail::LoopImpl& impl() noexcept { return *impl_; }

 private:
  /// RuntimeError unless this loop could start running now (not closed, no loop running).
  void check_runnable() const;
  void run_until_done(detail::FutureCore* f);
  template <class T>
  Task<T> create_task_named(Coro<T> coro, std::string* name, detail::CallSite site);
  std::unique_ptr<detail::LoopImpl> impl_;
};

/// The loop running in this thread; throws RuntimeError when none is.
EventLoop& get_running_loop();

}  // namespace weave
