#pragma once
// The state behind a weave::Server handle: listening sockets, their accept watches, the
// connections they made (for close_clients and wait_closed), and the futures waiting for the end.

#include <memory>
#include <unordered_set>
#include <vector>

#include "io/backend.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/transports.hpp"

namespace weave::detail {

class SocketTransport;

struct ServerState : std::enable_shared_from_this<ServerState> {
  struct Acceptor final : io::ReadyListener {
    ServerState* server = nullptr;
    int fd = -1;
    void on_ready() noexcept override { server->accept_ready(fd); }
  };

  ServerState(EventLoop& l, ProtocolFactory f, std::vector<Socket> s, int backlog);
  ~ServerState();

  void start_serving();
  void stop_serving() noexcept;
  void close();
  void accept_ready(int fd) noexcept;
  void attach(SocketTransport* t) { clients.insert(t); }
  void detach(SocketTransport* t) noexcept;
  /// asyncio's _wakeup: once closed and without clients, the wait_closed() waiters go.
  void maybe_wake_closed() noexcept;
  /// The loop is closing: stop listening and never touch the loop again.
  void detach_from_loop() noexcept;

  EventLoop& loop;
  ProtocolFactory factory;
  std::vector<Socket> sockets;
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  int backlog;
  bool serving = false;
  bool closed = false;
  bool detached = false;
  std::unordered_set<SocketTransport*> clients;
  std::vector<Future<void>> closed_waiters;
  std::optional<Future<void>> serving_forever;
  std::shared_ptr<ServerState> self;   ///< alive while listening or while clients remain
  std::optional<TimerHandle> backoff;  ///< accept paused after EMFILE
};

}  // namespace weave::detail
