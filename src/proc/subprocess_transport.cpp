// loop.subprocess_exec / subprocess_shell: asyncio's BaseSubprocessTransport over a Process and
// pipe transports (the stream transports of src/net in their pipe modes).
//
// Order of the protocol's calls, as in asyncio's base_subprocess.py: connection_made (queued
// after the pipes' own start, before any data); pipe_data_received while output comes;
// pipe_connection_lost(fd) as each pipe closes; process_exited (queued when the loop reaps the
// child); connection_lost(nullptr) once the child exited and every pipe is closed.
//
// Lifetime: the transport keeps itself alive through its child's `owner_ref` until
// connection_lost has run (or the loop closes); the pipe protocols only hold weak references,
// so no cycle outlives it. A Linux pipe gives its writer no sign that the reader left unless it
// writes, so the stdin pipe is closed when the child exits (asyncio's write-pipe transport
// learns the same from the fd turning readable).

#include <signal.h>

#include <memory>
#include <mutex>
#include <utility>

#include "core/loop_impl.hpp"
#include "net/pipes.hpp"
#include "net/socket_transport.hpp"
#include "proc/child_watcher.hpp"
#include "proc/spawn.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

namespace {

class ProcessTransport;

/// The Protocol of one pipe transport: forwards to the SubprocessProtocol with the fd number.
class PipeProtocol final : public Protocol {
 public:
  PipeProtocol(std::weak_ptr<ProcessTransport> owner, int fd) : owner_(std::move(owner)), fd_(fd) {}
  void data_received(std::string_view data) override;
  bool eof_received() override { return false; }
  void connection_lost(std::exception_ptr exc) override;
  void pause_writing() override;
  void resume_writing() override;

 private:
  std::weak_ptr<ProcessTransport> owner_;
  int fd_;
};

class ProcessTransport final : public SubprocessTransport,
                               public std::enable_shared_from_this<ProcessTransport> {
 public:
  ProcessTransport(EventLoop& loop, Process process, std::shared_ptr<SubprocessProtocol> protocol)
      : loop_(loop), process_(std::move(process)), protocol_(std::move(protocol)) {}

  /// Takes the pipe ends over, hooks the child's exit and queues connection_made.
  void connect(SpawnedChild& child, ChildState& state) {
    for (int fd = 0; fd < 3; ++fd) {
      const int pipe_fd = std::exchange(child.pipes[static_cast<std::size_t>(fd)], -1);
      if (pipe_fd < 0) continue;
      if (fd == 0) ignore_sigpipe();
      auto protocol = std::make_shared<PipeProtocol>(weak_from_this(), fd);
      auto kind = fd == 0 ? SocketTransport::Kind::WritePipe : SocketTransport::Kind::ReadPipe;
      auto& pipe = pipes_[static_cast<std::size_t>(fd)];
      pipe =
          std::make_shared<SocketTransport>(loop_, Socket::adopt(pipe_fd), protocol, nullptr, kind);
      pipe->start();
      open_[static_cast<std::size_t>(fd)] = true;
    }
    state.on_exit = [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->on_exit();
    };
    state.owner_ref = shared_from_this();
    state_ = &state;
    loop_.call_soon([self = shared_from_this()] { self->protocol_->connection_made(*self); });
  }

  int get_pid() const noexcept override { return process_.pid(); }
  std::optional<int> get_returncode() const noexcept override { return process_.returncode(); }
  Transport* get_pipe_transport(int fd) const noexcept override {
    return fd >= 0 && fd < 3 ? pipes_[static_cast<std::size_t>(fd)].get() : nullptr;
  }
  void send_signal(int sig) override { process_.send_signal(sig); }
  void terminate() override { process_.terminate(); }
  void kill() override { process_.kill(); }
  bool is_closing() const noexcept override { return closed_; }

  void close() override {
    if (closed_) return;
    closed_ = true;
    for (auto& pipe : pipes_) {
      if (pipe) pipe->close();
    }
    if (!process_.returncode()) process_.kill();
  }

  void pipe_data_received(int fd, std::string_view data) {
    protocol_->pipe_data_received(fd, data);
  }
  void pipe_lost(int fd, std::exception_ptr exc) {
    open_[static_cast<std::size_t>(fd)] = false;
    protocol_->pipe_connection_lost(fd, exc);
    try_finish();
  }
  SubprocessProtocol& protocol() noexcept { return *protocol_; }

 private:
  /// The loop reaped the child (called from the backend's poll: defer to a callback).
  void on_exit() {
    loop_.call_soon([self = shared_from_this()] {
      if (self->pipes_[0] && !self->pipes_[0]->is_closing()) self->pipes_[0]->close();
      self->exited_ = true;
      self->protocol_->process_exited();
      self->try_finish();
    });
  }

  void try_finish() {
    if (finished_ || !exited_) return;
    for (bool open : open_) {
      if (open) return;
    }
    finished_ = true;
    loop_.call_soon([self = shared_from_this()] {
      struct Release {
        ChildState* state;
        ~Release() { release_owner(*state); }  // `self` keeps the transport until we return
      } release{self->state_};
      self->protocol_->connection_lost(nullptr);
    });
  }

  EventLoop& loop_;
  Process process_;
  std::shared_ptr<SubprocessProtocol> protocol_;
  std::array<std::shared_ptr<SocketTransport>, 3> pipes_;
  std::array<bool, 3> open_{false, false, false};  ///< pipe not yet lost
  ChildState* state_ = nullptr;                    ///< the child's state, kept alive by process_
  bool closed_ = false;                            ///< close() was called
  bool exited_ = false;                            ///< process_exited has run
  bool finished_ = false;                          ///< connection_lost is queued or ran
};

void PipeProtocol::data_received(std::string_view data) {
  if (auto owner = owner_.lock()) owner->pipe_data_received(fd_, data);
}
void PipeProtocol::connection_lost(std::exception_ptr exc) {
  if (auto owner = owner_.lock()) owner->pipe_lost(fd_, exc);
}
void PipeProtocol::pause_writing() {
  if (auto owner = owner_.lock()) owner->protocol().pause_writing();
}
void PipeProtocol::resume_writing() {
  if (auto owner = owner_.lock()) owner->protocol().resume_writing();
}

struct ConnectRequest {
  SubprocessProtocolFactory factory;
  std::vector<std::string> argv;
  SubprocessOptions opts;
};

// The request travels by unique_ptr: see spawn_when_awaited in subprocess.cpp.
Coro<SubprocessConnection> connect_subprocess(EventLoop& loop,
                                              std::unique_ptr<ConnectRequest> request) {
  SpawnedChild child = spawn_child(loop, std::move(request->argv), request->opts);
  std::shared_ptr<SubprocessProtocol> protocol = request->factory();
  std::shared_ptr<ChildState> state = child.process.state();
  auto transport = std::make_shared<ProcessTransport>(loop, child.process, protocol);
  transport->connect(child, *state);
  co_return SubprocessConnection{transport, protocol};
}

SubprocessOptions all_pipes() {
  SubprocessOptions opts;
  opts.stdin_ = PIPE;
  opts.stdout_ = PIPE;
  opts.stderr_ = PIPE;
  return opts;
}

}  // namespace

}  // namespace weave::detail

namespace weave {

Coro<SubprocessConnection> EventLoop::subprocess_exec(SubprocessProtocolFactory factory,
                                                      std::string program, ProcessArgs args,
                                                      SubprocessOptions opts) {
  std::vector<std::string> argv = std::move(args).values();
  argv.insert(argv.begin(), std::move(program));
  return detail::connect_subprocess(
      *this, std::make_unique<detail::ConnectRequest>(
                 detail::ConnectRequest{std::move(factory), std::move(argv), std::move(opts)}));
}

Coro<SubprocessConnection> EventLoop::subprocess_exec(SubprocessProtocolFactory factory,
                                                      std::string program, ProcessArgs args) {
  return subprocess_exec(std::move(factory), std::move(program), std::move(args),
                         detail::all_pipes());
}

Coro<SubprocessConnection> EventLoop::subprocess_shell(SubprocessProtocolFactory factory,
                                                       std::string cmd, SubprocessOptions opts) {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(cmd)};
  return detail::connect_subprocess(
      *this, std::make_unique<detail::ConnectRequest>(
                 detail::ConnectRequest{std::move(factory), std::move(argv), std::move(opts)}));
}

Coro<SubprocessConnection> EventLoop::subprocess_shell(SubprocessProtocolFactory factory,
                                                       std::string cmd) {
  return subprocess_shell(std::move(factory), std::move(cmd), detail::all_pipes());
}

}  // namespace weave
