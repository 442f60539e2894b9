// Pool: asyncpg's connection pool. A semaphore of max_size slots bounds the connections handed
// out; a slot comes back only once its connection was reset (or closed, when it is broken), so
// a waiter never receives a connection that is still being cleaned.
#include <deque>
#include <exception>
#include <utility>
#include <vector>

#include "state.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/timeouts.hpp"

namespace weave::pg {

namespace detail {
struct PoolState {
  PoolState(std::string d, PoolOptions o)
      : dsn(std::move(d)), options(std::move(o)), slots(static_cast<int>(options.max_size)) {}

  struct Idle {
    Connection conn;
    Clock::time_point since;
  };

  Coro<PoolConnection> acquire(std::shared_ptr<PoolState> self);
  Coro<void> give_back(Connection conn);
  void discard(Connection& conn) noexcept {
    conn.terminate();
    --open;
  }
  bool stale(const Idle& idle) const {
    const auto life = options.max_inactive_connection_lifetime;
    return life > Clock::duration::zero() && Clock::now() - idle.since > life;
  }

  std::string dsn;
  PoolOptions options;
  Semaphore slots;
  std::deque<Idle> idle;
  std::vector<std::weak_ptr<ConnectionState>> all;  ///< for terminate()
  std::size_t open = 0;
  bool closing = false;
};

Coro<PoolConnection> PoolState::acquire(std::shared_ptr<PoolState> self) {
  if (closing) throw InterfaceError("the pool is closing");
  co_await slots.acquire();
  try {
    if (closing) throw InterfaceError("the pool is closing");
    while (!idle.empty()) {
      Idle next = std::move(idle.back());
      idle.pop_back();
      if (next.conn.is_closed() || stale(next)) {
        discard(next.conn);
        continue;
      }
      co_return PoolConnection(self, std::move(next.conn));
    }
    ++open;
    try {
      Connection conn = co_await connect(dsn, options.connect);
      std::erase_if(all, [](const auto& w) { return w.expired(); });
      all.push_back(conn.state());
      co_return PoolConnection(self, std::move(conn));
    } catch (...) {
      --open;
      throw;
    }
  } catch (...) {  // CancelledError too: the slot goes back
    slots.release();
    throw;
  }
}

Coro<void> PoolState::give_back(Connection conn) {
  bool keep = !closing && !conn.is_closed() && conn.state()->queries < options.max_queries;
  if (keep) {
    // asyncpg's reset: end the transaction, drop session state, listeners and advisory locks.
    conn.state()->listeners.clear();
    conn.state()->transaction_depth = 0;
    const std::string reset = std::string(conn.is_in_transaction() ? "ROLLBACK; " : "") +
                              "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL";
    try {
      co_await conn.execute(reset);
      --conn.state()->queries;  // max_queries counts the users' statements only
    } catch (...) {
      keep = false;
    }
  }
  if (keep && !closing) {
    idle.push_back({std::move(conn), Clock::now()});
  } else {
    discard(conn);
  }
  slots.release();
}
}  // namespace detail

// ---- PoolConnection ----------------------------------------------------------------------------

namespace {
/// Gives a connection back from a destructor: the reset runs as a task of its own.
void give_back_later(std::shared_ptr<detail::PoolState> pool, Connection conn) noexcept {
  try {
    EventLoop& loop = get_running_loop();
    auto back = [](std::shared_ptr<detail::PoolState> p, Connection c) -> Coro<void> {
      co_await p->give_back(std::move(c));
    };
    loop.create_task(back(std::move(pool), std::move(conn)), "pg pool release");
  } catch (...) {  // no loop any more: the connection just closes
    conn.terminate();
    if (pool) {
      --pool->open;
      pool->slots.release();
    }
  }
}
}  // namespace

PoolConnection& PoolConnection::operator=(PoolConnection&& o) noexcept {
  if (this != &o) {
    if (pool_) give_back_later(std::move(pool_), std::move(conn_));
    pool_ = std::move(o.pool_);
    conn_ = std::move(o.conn_);
  }
  return *this;
}

PoolConnection::~PoolConnection() {
  if (pool_) give_back_later(std::move(pool_), std::move(conn_));
}

Coro<void> PoolConnection::release() {
  if (!pool_) co_return;
  std::shared_ptr<detail::PoolState> pool = std::move(pool_);
  co_await pool->give_back(std::move(conn_));
}

// ---- Pool --------------------------------------------------------------------------------------

Coro<Pool> create_pool(std::string dsn, PoolOptions options) {
  if (options.max_size == 0) throw ValueError("max_size must be at least 1");
  if (options.min_size > options.max_size) throw ValueError("min_size must not exceed max_size");
  auto state = std::make_shared<detail::PoolState>(std::move(dsn), options);
  std::vector<PoolConnection> first;
  for (std::size_t i = 0; i < options.min_size; ++i) {
    first.push_back(co_await state->acquire(state));
  }
  for (auto& held : first) co_await held.release();
  co_return Pool(std::move(state));
}

Coro<PoolConnection> Pool::acquire(std::optional<Clock::duration> timeout) {
  if (!state_) throw InterfaceError("the pool is closed");
  std::optional<Clock::duration> limit = timeout ? timeout : state_->options.timeout;
  if (limit) co_return co_await weave::timeout(*limit, state_->acquire(state_));
  co_return co_await state_->acquire(state_);
}

Coro<std::vector<Row>> Pool::run_fetch(Query q, Params p) {
  PoolConnection held = co_await acquire();
  std::vector<Row> rows = co_await held->fetch_params(std::move(q), std::move(p));
  co_await held.release();
  co_return rows;
}

Coro<std::optional<Row>> Pool::run_fetchrow(Query q, Params p) {
  PoolConnection held = co_await acquire();
  std::optional<Row> row = co_await held->fetchrow_params(std::move(q), std::move(p));
  co_await held.release();
  co_return row;
}

Coro<std::string> Pool::run_execute(Query q, Params p, bool simple) {
  PoolConnection held = co_await acquire();
  std::string tag = co_await held->execute_params(std::move(q), std::move(p), simple);
  co_await held.release();
  co_return tag;
}

Coro<void> Pool::close() {
  if (!state_) co_return;
  state_->closing = true;
  // Every slot back means every connection is back.
  for (std::size_t i = 0; i < state_->options.max_size; ++i) co_await state_->slots.acquire();
  for (auto& idle : state_->idle) state_->discard(idle.conn);
  state_->idle.clear();
  for (std::size_t i = 0; i < state_->options.max_size; ++i) state_->slots.release();
}

void Pool::terminate() noexcept {
  if (!state_) return;
  state_->closing = true;
  for (auto& idle : state_->idle) state_->discard(idle.conn);
  state_->idle.clear();
  for (auto& weak : state_->all) {
    if (auto s = weak.lock()) s->finish();
  }
}

std::size_t Pool::get_size() const noexcept {
  return state_ ? state_->open : 0;
}
std::size_t Pool::get_idle_size() const noexcept {
  return state_ ? state_->idle.size() : 0;
}

}  // namespace weave::pg
