// The connection pool of a ClientSession.
#include "client_pool.hpp"

#include <algorithm>
#include <utility>

namespace weave::http::detail {

std::size_t ClientSessionState::idle_count() const noexcept {
  std::size_t n = 0;
  for (const auto& [key, conns] : idle_) n += conns.size();
  return n;
}

std::shared_ptr<ClientConnection> ClientSessionState::pop_idle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  std::vector<std::shared_ptr<ClientConnection>>& conns = it->second;
  const Clock::time_point now = Clock::now();
  while (!conns.empty()) {
    std::shared_ptr<ClientConnection> c = std::move(conns.back());
    conns.pop_back();
    if (c->alive() && now - c->idle_since < opts.connector.keepalive_timeout) {
      if (conns.empty()) idle_.erase(it);
      return c;
    }
    c->abort();
    forget(*c);
  }
  idle_.erase(it);
  return nullptr;
}

bool ClientSessionState::has_room(const std::string& key) const {
  const TCPConnector& c = opts.connector;
  if (c.limit != 0 && open_total >= c.limit) return false;
  if (c.limit_per_host != 0) {
    auto it = open_per_host_.find(key);
    if (it != open_per_host_.end() && it->second >= c.limit_per_host) return false;
  }
  return true;
}

bool ClientSessionState::close_other_idle(const std::string& key) {
  // At the total limit, an idle connection to another origin gives way (the oldest one).
  std::shared_ptr<ClientConnection> oldest;
  std::string oldest_key;
  for (auto& [k, conns] : idle_) {
    if (k == key || conns.empty()) continue;
    if (!oldest || conns.front()->idle_since < oldest->idle_since) {
      oldest = conns.front();
      oldest_key = k;
    }
  }
  if (!oldest) return false;
  auto& conns = idle_[oldest_key];
  conns.erase(conns.begin());
  if (conns.empty()) idle_.erase(oldest_key);
  oldest->close();
  forget(*oldest);
  return true;
}

void ClientSessionState::forget(ClientConnection& conn) noexcept {
  if (!conn.counted) return;
  conn.counted = false;
  --open_total;
  auto it = open_per_host_.find(conn.key());
  if (it != open_per_host_.end() && --it->second == 0) open_per_host_.erase(it);
  wake(nullptr);
}

void ClientSessionState::wake(const std::string* idle_key) noexcept {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    Waiter* w = *it;
    bool other_idle = false;
    for (const auto& [k, conns] : idle_) other_idle = other_idle || (k != w->key && !conns.empty());
    const bool can_go =
        (idle_key != nullptr && *idle_key == w->key) || has_room(w->key) || other_idle;
    if (can_go) {
      waiters_.erase(it);
      w->ready.set();
      return;
    }
  }
}

const SSLContext& ClientSessionState::ssl_context() {
  if (!ssl_) ssl_ = opts.connector.ssl ? *opts.connector.ssl : SSLContext::client();
  return *ssl_;
}

Coro<void> ClientSessionState::wait_for_room(Waiter& waiter,
                                             std::optional<Clock::time_point> deadline,
                                             const std::string& origin) {
  waiters_.push_back(&waiter);
  bool woken = false;
  try {
    if (deadline) {
      auto waiting = [&waiter]() -> Coro<void> { co_await waiter.ready.wait(); };
      auto bounded = weave::timeout_at(*deadline, waiting());
      co_await std::move(bounded);
    } else {
      co_await waiter.ready.wait();
    }
    woken = true;
  } catch (const TimeoutError&) {
    waiters_.remove(&waiter);
    if (waiter.ready.is_set()) wake(nullptr);  // the wake-up it got goes to the next one
    throw ConnectionTimeoutError("Connection timeout to host " + origin +
                                 " (waiting for a free connection in the pool)");
  } catch (...) {
    waiters_.remove(&waiter);
    if (waiter.ready.is_set()) wake(nullptr);
    throw;
  }
  (void)woken;
}

Coro<Lease> ClientSessionState::acquire(const URL& url, std::optional<Clock::time_point> deadline) {
  std::string key = url.origin();
  for (;;) {
    if (closed) throw RuntimeError("Session is closed");
    if (!opts.connector.force_close) {
      if (std::shared_ptr<ClientConnection> c = pop_idle(key)) co_return Lease{std::move(c), true};
    }
    if (has_room(key)) co_return co_await connect(url, std::move(key), deadline);
    if (opts.connector.limit != 0 && open_total >= opts.connector.limit && close_other_idle(key) &&
        has_room(key)) {
      continue;
    }
    Waiter waiter{key, {}};
    co_await wait_for_room(waiter, deadline, key);
  }
}

Coro<Lease> ClientSessionState::connect(const URL& url, std::string key,
                                        std::optional<Clock::time_point> deadline) {
  auto conn = std::make_shared<ClientConnection>(key, opts.read_bufsize);
  conn->counted = true;
  ++open_total;
  ++open_per_host_[key];
  ConnectionOptions co;
  if (url.is_https()) co.ssl = ssl_context();
  auto factory = [conn]() -> std::shared_ptr<Protocol> { return conn; };
  EventLoop& loop = get_running_loop();
  try {
    Connection made;
    if (deadline) {
      auto connecting = loop.create_connection(factory, url.host, url.port, co);
      auto bounded = weave::timeout_at(*deadline, std::move(connecting));
      made = co_await std::move(bounded);
    } else {
      made = co_await loop.create_connection(factory, url.host, url.port, co);
    }
    conn->attach(std::move(made.transport));
  } catch (const TimeoutError&) {
    forget(*conn);
    throw ConnectionTimeoutError("Connection timeout to host " + key);
  } catch (...) {
    forget(*conn);
    throw;
  }
  co_return Lease{std::move(conn), false};
}

void ClientSessionState::release(const std::shared_ptr<ClientConnection>& conn,
                                 bool reusable) noexcept {
  if (reusable && !closed && !opts.connector.force_close) {
    conn->make_idle();
    conn->idle_since = Clock::now();
    try {
      idle_[conn->key()].push_back(conn);
      wake(&conn->key());
      return;
    } catch (...) {
    }
  }
  conn->abort();
  forget(*conn);
}

Coro<void> ClientSessionState::close() {
  closed = true;
  std::vector<std::shared_ptr<ClientConnection>> closing;
  for (auto& [key, conns] : idle_) {
    for (auto& c : conns) closing.push_back(std::move(c));
  }
  idle_.clear();
  for (auto& c : closing) {
    c->close();
    forget(*c);
  }
  for (auto& c : closing) co_await c->wait_closed(std::chrono::seconds(1));
  // Tasks waiting for room learn that the session is closed.
  while (!waiters_.empty()) {
    Waiter* w = waiters_.front();
    waiters_.pop_front();
    w->ready.set();
  }
}

void ClientSessionState::abort_idle() noexcept {
  closed = true;
  for (auto& [key, conns] : idle_) {
    for (auto& c : conns) {
      c->abort();
      forget(*c);
    }
  }
  idle_.clear();
}

}  // namespace weave::http::detail
