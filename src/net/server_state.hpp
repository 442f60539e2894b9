#pragma once
// The state behind a weave::Server handle: listening sockets, their accept watches, the
// connections they made (for close_clients and wait_closed), and the futures waiting for the end.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "io/backend.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/transports.hpp"

namespace weave::detail {

class SocketTransport;

/// The file a Unix server bound, identified by device and inode: the path alone cannot tell our
/// socket from one that replaced it.
struct SocketFile {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
};

struct ServerState : std::enable_shared_from_this<ServerState> {
  /// One listening socket: accepts natively (io_uring) or on readiness (epoll).
  struct Acceptor final : io::ReadyListener, io::AcceptListener {
    ServerState* server = nullptr;
    int fd = -1;
    bool native = false;
    void on_ready() noexcept override { server->accept_ready(fd); }
    void on_accepted(int conn) noexcept override { server->connection_accepted(conn); }
    void on_accept_error(int error) noexcept override { server->accept_failed(error); }
  };

  ServerState(EventLoop& l, ProtocolFactory f, std::vector<Socket> s, int backlog);
  ~ServerState();

  void start_serving();
  void stop_serving() noexcept;
  /// Also removes the socket file, even after the loop has closed, as asyncio's Server.close()
  /// does.
  void close();
  void accept_ready(int fd) noexcept;
  void connection_accepted(int conn) noexcept;
  /// Reports the error and, for a lack of resources, pauses accepting for a while.
  void accept_failed(int error) noexcept;
  void attach(SocketTransport* t) { clients.insert(t); }
  void detach(SocketTransport* t) noexcept;
  /// asyncio's _wakeup: once closed and without clients, the wait_closed() waiters go.
  void maybe_wake_closed() noexcept;
  /// The loop is closing: stop listening and never touch the loop again. The socket file stays,
  /// as asyncio leaves it: only close() removes it.
  void detach_from_loop() noexcept;
  /// asyncio 3.13's cleanup_socket: unlinks the file if it is still the socket we bound; once.
  void remove_socket_file() noexcept;

  EventLoop& loop;
  ProtocolFactory factory;
  /// Puts a layer (TLS) between each accepted transport and the factory's protocol: returns
  /// the protocol the transport talks to. Empty for plain connections.
  std::function<std::shared_ptr<Protocol>(std::shared_ptr<Protocol>)> wrap;
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
  std::optional<SocketFile> socket_file;
};

}  // namespace weave::detail
