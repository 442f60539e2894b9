#pragma once
// The session's state: its options and its connection pool. A connection is counted in the
// limits from the moment it is being made until it is closed; idle ones wait per origin, newest
// first. Tasks waiting for room queue FIFO; each change of room wakes the first that can go on.

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client_connection.hpp"
#include "weave/http.hpp"

namespace weave::http::detail {

/// A connection handed to one request: `reused` when it came from the pool.
struct Lease {
  std::shared_ptr<ClientConnection> connection;
  bool reused = false;
};

struct ClientSessionState : std::enable_shared_from_this<ClientSessionState> {
  explicit ClientSessionState(ClientSessionOptions o) : opts(std::move(o)) {}

  /// A connection to `url`'s origin: an idle one, else a new one once the limits allow.
  /// Errors: ConnectionTimeoutError when `deadline` passes first, RuntimeError once closed, and
  /// create_connection's errors.
  Coro<Lease> acquire(const URL& url, std::optional<Clock::time_point> deadline);
  /// Takes back a connection: pooled when `reusable` (and the session is open), else closed.
  void release(const std::shared_ptr<ClientConnection>& conn, bool reusable) noexcept;
  /// Closes every idle connection and waits until they are closed.
  Coro<void> close();
  /// Aborts every idle connection (the destructor of an unclosed session).
  void abort_idle() noexcept;

  std::size_t idle_count() const noexcept;

  ClientSessionOptions opts;
  bool closed = false;
  std::size_t open_total = 0;

 private:
  struct Waiter {
    std::string key;
    Event ready;
  };

  std::shared_ptr<ClientConnection> pop_idle(const std::string& key);
  bool has_room(const std::string& key) const;
  bool close_other_idle(const std::string& key);
  void forget(ClientConnection& conn) noexcept;
  void wake(const std::string* idle_key) noexcept;
  Coro<Lease> connect(const URL& url, std::string key, std::optional<Clock::time_point> deadline);
  Coro<void> wait_for_room(Waiter& waiter, std::optional<Clock::time_point> deadline,
                           const std::string& origin);
  const SSLContext& ssl_context();

  std::map<std::string, std::vector<std::shared_ptr<ClientConnection>>> idle_;
  std::map<std::string, std::size_t> open_per_host_;
  std::list<Waiter*> waiters_;
  std::optional<SSLContext> ssl_;
};

}  // namespace weave::http::detail
