// weave::pg::Pool against a real server: shortcuts and reuse, max_size acquirers plus one that
// times out, cancelled acquires that leak nothing, the reset on release, broken connections
// replaced, close() waiting for connections in use, terminate(), and a server killed mid-query
// (a private cluster of its own) from which the pool recovers once the server is back.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "support/pg.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;
namespace pg = weave::pg;

namespace {

class PgPool : public weave_test::PgTest {};

pg::PoolOptions sized(std::size_t min, std::size_t max) {
  pg::PoolOptions o;
  o.min_size = min;
  o.max_size = max;
  return o;
}

weave::Coro<void> shortcuts(std::string dsn) {
  pg::Pool pool = co_await pg::create_pool(dsn, sized(2, 4));
  EXPECT_EQ(pool.get_size(), 2u);
  EXPECT_EQ(pool.get_idle_size(), 2u);
  EXPECT_EQ(co_await pool.fetchval<int>("select $1::int", 5), 5);
  EXPECT_EQ(co_await pool.execute("select 1"), "SELECT 1");
  auto rows = co_await pool.fetch("select generate_series(1, 3) as n");
  EXPECT_EQ(rows.size(), 3u);
  auto row = co_await pool.fetchrow("select 'x' as s");
  EXPECT_EQ(row->get<std::string>("s"), "x");
  {
    auto held = co_await pool.acquire();
    EXPECT_EQ(co_await held->fetchval<int>("select 7"), 7);
    EXPECT_EQ(pool.get_idle_size(), 1u);
  }  // released at scope end, reset in the background
  co_await weave_test::until([&] { return pool.get_idle_size() == 2; });
  EXPECT_EQ(pool.get_size(), 2u);  // reused, none opened
  co_await pool.close();
  EXPECT_EQ(pool.get_size(), 0u);
  EXPECT_THROW(co_await pool.acquire(), pg::InterfaceError);
}

TEST_F(PgPool, ShortcutsReuseTheConnections) {
  run_bounded(shortcuts(dsn()));
}

weave::Coro<void> saturated(std::string dsn) {
  pg::Pool pool = co_await pg::create_pool(dsn, sized(0, 3));
  std::vector<pg::PoolConnection> held;
  for (int i = 0; i < 3; ++i) held.push_back(co_await pool.acquire());
  EXPECT_EQ(pool.get_size(), 3u);
  const auto t0 = weave::Clock::now();
  EXPECT_THROW(co_await pool.acquire(100ms), weave::TimeoutError);
  EXPECT_GE(weave::Clock::now() - t0, 100ms);
  // A waiter gets the first connection given back.
  auto waiter = weave::create_task(pool.acquire(5s));
  co_await weave::sleep(10ms);
  EXPECT_FALSE(waiter.done());
  const int pid = held.front()->get_server_pid();
  co_await held.front().release();
  pg::PoolConnection next = co_await waiter;
  EXPECT_EQ(next->get_server_pid(), pid);
  EXPECT_EQ(pool.get_size(), 3u);
  co_await next.release();
  for (auto& h : held) co_await h.release();
  co_await pool.close();
}

TEST_F(PgPool, MaxSizeAcquirersPlusOneThatTimesOut) {
  run_bounded(saturated(dsn()));
}

weave::Coro<void> cancelled_acquires(std::string dsn) {
  pg::Pool pool = co_await pg::create_pool(dsn, sized(0, 1));
  // Cancelled while connecting: the slot comes back, no connection stays open.
  auto connecting = weave::create_task(pool.acquire());
  co_await weave::sleep(0s);
  connecting.cancel();
  EXPECT_THROW(co_await connecting, weave::CancelledError);
  EXPECT_EQ(pool.get_size(), 0u);
  // Cancelled while waiting for a busy pool.
  pg::PoolConnection held = co_await pool.acquire(1s);
  auto waiting = weave::create_task(pool.acquire());
  co_await weave::sleep(10ms);
  waiting.cancel();
  EXPECT_THROW(co_await waiting, weave::CancelledError);
  co_await held.release();
  pg::PoolConnection again = co_await pool.acquire(1s);  // the slot was not lost
  EXPECT_EQ(pool.get_size(), 1u);
  co_await again.release();
  co_await pool.close();
}

TEST_F(PgPool, ACancelledAcquireNeverLeaksAConnection) {
  run_bounded(cancelled_acquires(dsn()));
}

weave::Coro<void> reset_on_release(std::string dsn) {
  pg::Pool pool = co_await pg::create_pool(dsn, sized(1, 1));
  int pid = 0;
  {
    auto held = co_await pool.acquire();
    pid = held->get_server_pid();
    co_await held->execute("set application_name = 'dirty'");
    co_await held->execute("select pg_advisory_lock(42)");
    co_await held->add_listener("chan", [](const pg::Notification&) {});
    co_await held->execute("begin");
    co_await held.release();
  }
  auto held = co_await pool.acquire();
  EXPECT_EQ(held->get_server_pid(), pid);
  EXPECT_FALSE(held->is_in_transaction());
  EXPECT_EQ(co_await held->fetchval<std::string>("show application_name"), "");
  EXPECT_EQ(co_await held->fetchval<std::int64_t>(
                "select count(*) from pg_locks where locktype = 'advisory' and pid = $1", pid),
            0);
  EXPECT_EQ(co_await held->fetchval<std::int64_t>("select count(*) from pg_listening_channels()"),
            0);
  co_await held.release();
  co_await pool.close();
}

TEST_F(PgPool, ReleaseResetsTheSession) {
  run_bounded(reset_on_release(dsn()));
}

weave::Coro<void> broken_replaced(std::string dsn) {
  pg::Pool pool = co_await pg::create_pool(dsn, sized(1, 1));
  pg::Connection admin = co_await pg::connect(dsn);
  auto held = co_await pool.acquire();
  const int pid = held->get_server_pid();
  co_await admin.execute("select pg_terminate_backend($1)", pid);
  co_await weave_test::until([&] { return held->is_closed(); });
  co_await held.release();
  EXPECT_EQ(pool.get_size(), 0u);  // a dead connection is dropped, never handed out again
  auto fresh = co_await pool.acquire();
  EXPECT_NE(fresh->get_server_pid(), pid);
  EXPECT_EQ(co_await fresh->fetchval<int>("select 1"), 1);
  co_await fresh.release();
  // max_queries: a connection that served its quota is replaced on release.
  pg::PoolOptions quota = sized(1, 1);
  quota.max_queries = 2;
  pg::Pool small = co_await pg::create_pool(dsn, quota);
  const int first = co_await small.fetchval<int>("select pg_backend_pid()");
  EXPECT_EQ(co_await small.fetchval<int>("select pg_backend_pid()"), first);
  EXPECT_NE(co_await small.fetchval<int>("select pg_backend_pid()"), first);
  co_await small.close();
  co_await admin.close();
  co_await pool.close();
}

TEST_F(PgPool, ABrokenConnectionIsReplaced) {
  run_bounded(broken_replaced(dsn()));
}

weave::Coro<void> close_and_terminate(std::string dsn) {
  pg::Pool pool = co_await pg::create_pool(dsn, sized(1, 2));
  auto held = co_await pool.acquire();
  auto closing = weave::create_task(pool.close());
  co_await weave::sleep(50ms);
  EXPECT_FALSE(closing.done());  // waits for the connection in use
  EXPECT_EQ(co_await held->fetchval<int>("select 1"), 1);
  co_await held.release();
  co_await closing;
  EXPECT_EQ(pool.get_size(), 0u);

  pg::Pool other = co_await pg::create_pool(dsn, sized(1, 2));
  auto busy = co_await other.acquire();
  other.terminate();  // does not wait
  EXPECT_THROW(co_await busy->fetchval<int>("select 1"), pg::ConnectionDoesNotExistError);
  co_await busy.release();
  EXPECT_EQ(other.get_size(), 0u);
}

TEST_F(PgPool, CloseWaitsForConnectionsInUseTerminateDoesNot) {
  run_bounded(close_and_terminate(dsn()));
}

// ---- a server that dies ------------------------------------------------------------------------

/// A private cluster (the shared one must stay up for the other suites), stopped in any case.
struct PrivateCluster {
  std::string script =
      std::getenv("WEAVE_PG_CLUSTER_SCRIPT") ? std::getenv("WEAVE_PG_CLUSTER_SCRIPT") : "";
  std::string state = weave_test::pg_cluster_dir() + "-private-" + std::to_string(::getpid());
  ~PrivateCluster() {
    (void)run("stop");
    std::error_code ec;
    std::filesystem::remove_all(state, ec);
  }
  int run(const std::string& what) const {
    return std::system((script + " " + what + " " + state + " >/dev/null 2>&1").c_str());
  }
  std::string dsn() const { return weave_test::read_text_file(state + "/dsn"); }
};

weave::Coro<void> server_killed(const PrivateCluster& cluster) {
  pg::PoolOptions opts = sized(2, 2);
  opts.connect.timeout = 2s;
  pg::Pool pool = co_await pg::create_pool(cluster.dsn(), opts);
  auto sleeping = weave::create_task(pool.execute("select pg_sleep(10)"));
  co_await weave::sleep(100ms);
  EXPECT_EQ(cluster.run("kill"), 0);
  try {
    co_await sleeping;
    ADD_FAILURE() << "the query survived its server";
  } catch (const pg::ConnectionDoesNotExistError& e) {
    EXPECT_NE(std::string(e.what()).find("connection"), std::string::npos) << e.what();
  }
  // Down: a connection not yet seen dead fails as lost, a new one cannot be opened.
  EXPECT_THROW(co_await pool.fetchval<int>("select 1"), pg::InterfaceError);
  EXPECT_EQ(cluster.run("restart"), 0);
  EXPECT_EQ(co_await pool.fetchval<int>("select 41 + 1"), 42);
  std::vector<weave::Coro<int>> both;
  for (int i = 0; i < 2; ++i) both.push_back(pool.fetchval<int>("select 1"));
  EXPECT_EQ((co_await weave::gather(std::move(both))).size(), 2u);
  co_await pool.close();
}

TEST_F(PgPool, AServerKilledMidQueryFailsItAndThePoolRecovers) {
  PrivateCluster cluster;
  ASSERT_FALSE(cluster.script.empty()) << "WEAVE_PG_CLUSTER_SCRIPT is not set: run through ctest";
  ASSERT_EQ(cluster.run("start"), 0);
  ASSERT_FALSE(cluster.dsn().empty()) << weave_test::read_text_file(cluster.state + "/error");
  run_bounded(server_killed(cluster), std::chrono::seconds(60));
}

}  // namespace
