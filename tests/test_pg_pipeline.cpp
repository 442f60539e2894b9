// weave::pg's statements by name and in pipelines against a real server: the prepared-statement
// cache (prepared once, LRU eviction, re-prepared after ALTER TABLE), prepare(), and statements
// in flight together on one connection sharing one pipeline (errors, cancellation, a lost
// connection).

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/pg.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;
namespace pg = weave::pg;

namespace {
class PgPipeline : public weave_test::PgTest {};

double ms_since(weave::Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
}
}  // namespace

namespace {

// ---- prepared statements -----------------------------------------------------------------------

weave::Coro<std::int64_t> prepared_count(pg::Connection& c, std::string statement) {
  co_return co_await c.fetchval<std::int64_t>(
      "select count(*) from pg_prepared_statements where statement = $1", statement);
}

weave::Coro<void> statement_cache(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(co_await c.fetchval<int>("select $1::int + 1", i), i + 1);
  EXPECT_EQ(co_await prepared_count(c, "select $1::int + 1"), 1);  // prepared once, run thrice
  // A table changed under a cached statement: prepared afresh, as asyncpg does.
  co_await c.execute("create temp table sc(a int)");
  co_await c.execute("insert into sc values (1)");
  EXPECT_EQ((co_await c.fetch("select * from sc")).at(0).size(), 1u);
  co_await c.execute("alter table sc add column b int");
  EXPECT_EQ((co_await c.fetch("select * from sc")).at(0).size(), 2u);
  co_await c.close();

  // The least recently used statement goes first.
  pg::ConnectOptions small;
  small.statement_cache_size = 3;
  pg::Connection d = co_await pg::connect(dsn, small);
  for (int i = 0; i < 5; ++i) {
    const std::string sql = "select " + std::to_string(i) + " + $1::int";
    EXPECT_EQ(co_await d.fetchval<int>(sql, 1), i + 1);
  }
  // This statement evicts "select 2 ..."; 3 and 4 stay, with itself.
  EXPECT_EQ(co_await d.fetchval<std::int64_t>("select count(*) from pg_prepared_statements"), 3);
  EXPECT_EQ(co_await prepared_count(d, "select 4 + $1::int"), 1);
  co_await d.close();

  // Without a cache nothing stays prepared.
  pg::ConnectOptions none;
  none.statement_cache_size = 0;
  pg::Connection e = co_await pg::connect(dsn, none);
  EXPECT_EQ(co_await e.fetchval<int>("select $1::int", 9), 9);
  EXPECT_EQ(co_await e.fetchval<std::int64_t>("select count(*) from pg_prepared_statements"), 0);
  co_await e.close();
}

TEST_F(PgPipeline, TheStatementCacheKeepsTheMostRecentStatements) {
  run_bounded(statement_cache(dsn()));
}

weave::Coro<void> explicit_prepare(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  pg::PreparedStatement add = co_await c.prepare("select $1::int8 + $2::int8 as sum");
  EXPECT_EQ(co_await add.fetchval<std::int64_t>(1, 2), 3);
  auto row = co_await add.fetchrow(std::int64_t{40}, 2);
  EXPECT_EQ(row->get<std::int64_t>("sum"), 42);
  EXPECT_EQ(co_await add.execute(0, 0), "SELECT 1");
  EXPECT_EQ(add.get_query(), "select $1::int8 + $2::int8 as sum");
  try {
    co_await add.fetch(1, "x");
    ADD_FAILURE() << "bad parameter accepted";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "22P02");
  }
  EXPECT_THROW(co_await c.prepare("selec 1"), pg::PostgresError);
  EXPECT_EQ((co_await add.fetch(5, 5)).at(0).get<int>(0), 10);
  co_await c.close();
}

TEST_F(PgPipeline, PrepareRunsAStatementByName) {
  run_bounded(explicit_prepare(dsn()));
}

}  // namespace

namespace {

// ---- statements in flight together on one connection (one pipeline) ---------------------------

weave::Coro<void> shared_pipeline(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  // An error stays its own statement's: the ones before and after it answer.
  std::vector<weave::Coro<int>> calls;
  for (int i = 0; i < 30; ++i) calls.push_back(c.fetchval<int>("select 60 / $1::int", i % 10));
  auto outcomes = co_await weave::gather_settled(std::move(calls));
  for (int i = 0; i < 30; ++i) {
    const auto& o = outcomes[static_cast<std::size_t>(i)];
    if (i % 10 == 0) {
      EXPECT_FALSE(o.has_value());
      try {
        std::rethrow_exception(o.error());
      } catch (const pg::PostgresError& e) {
        EXPECT_EQ(e.sqlstate(), "22012");  // division by zero
      }
    } else {
      EXPECT_TRUE(o.has_value());
      if (o.has_value()) {
        EXPECT_EQ(o.value(), 60 / (i % 10));
      }
    }
  }
  // One of three cancelled: the other two answer, in order.
  auto slow = weave::create_task(c.fetchval<std::string>("select pg_sleep(0.1)::text"));
  auto middle = weave::create_task(c.fetchval<int>("select 2"));
  auto last = weave::create_task(c.fetchval<int>("select 3"));
  co_await weave::sleep(20ms);
  middle.cancel();
  EXPECT_THROW(co_await middle, weave::CancelledError);
  EXPECT_EQ(co_await slow, "");
  EXPECT_EQ(co_await last, 3);
  // A lone statement in the pipeline is cancelled on the server.
  auto sleeping = weave::create_task(c.fetch("select pg_sleep(10)"));
  co_await weave::sleep(50ms);
  const auto t0 = weave::Clock::now();
  sleeping.cancel();
  EXPECT_THROW(co_await sleeping, weave::CancelledError);
  EXPECT_LT(ms_since(t0), 100.0);
  EXPECT_EQ(co_await c.fetchval<int>("select $1::int", 8), 8);
  // COPY and simple statements wait for the pipeline, then run.
  std::vector<weave::Coro<int>> more;
  for (int i = 0; i < 5; ++i) more.push_back(c.fetchval<int>("select $1::int", i));
  auto tag = weave::create_task(c.execute("select 1"));
  EXPECT_EQ((co_await weave::gather(std::move(more))).size(), 5u);
  EXPECT_EQ(co_await tag, "SELECT 1");
  co_await c.close();
}

TEST_F(PgPipeline, StatementsInFlightTogetherShareOnePipeline) {
  run_bounded(shared_pipeline(dsn()));
}

// A statement issued on an idle connection reads its own results; those issued meanwhile wait
// for it and then go out together. Cancelling either kind leaves the others answering.
weave::Coro<void> cancelled_in_pipeline(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  // The first statement, cancelled on the server, with two queued behind it.
  auto sleeping = weave::create_task(c.fetch("select pg_sleep(10)"));
  co_await weave::sleep(50ms);
  auto second = weave::create_task(c.fetchval<int>("select 2"));
  auto third = weave::create_task(c.fetchval<int>("select $1::int", 3));
  co_await weave::sleep(20ms);
  auto t0 = weave::Clock::now();
  sleeping.cancel();
  EXPECT_THROW(co_await sleeping, weave::CancelledError);
  EXPECT_EQ(co_await second, 2);
  EXPECT_EQ(co_await third, 3);
  EXPECT_LT(ms_since(t0), 1000.0);
  // Sent behind a running statement and cancelled: dropped when its result comes.
  auto first = weave::create_task(c.fetchval<std::string>("select pg_sleep(0.05)::text"));
  co_await weave::sleep(10ms);
  auto running = weave::create_task(c.fetchval<std::string>("select pg_sleep(0.3)::text"));
  auto dropped = weave::create_task(c.fetchval<int>("select 5"));
  auto after = weave::create_task(c.fetchval<int>("select 6"));
  EXPECT_EQ(co_await first, "");
  co_await weave::sleep(50ms);  // the three are in flight now
  dropped.cancel();
  EXPECT_THROW(co_await dropped, weave::CancelledError);
  EXPECT_EQ(co_await running, "");
  EXPECT_EQ(co_await after, 6);
  // Sent alone behind another and cancelled: stopped on the server.
  auto before = weave::create_task(c.fetchval<std::string>("select pg_sleep(0.05)::text"));
  co_await weave::sleep(10ms);
  auto alone = weave::create_task(c.fetch("select pg_sleep(10)"));
  EXPECT_EQ(co_await before, "");
  co_await weave::sleep(50ms);
  t0 = weave::Clock::now();
  alone.cancel();
  EXPECT_THROW(co_await alone, weave::CancelledError);
  EXPECT_EQ(co_await c.fetchval<int>("select $1::int", 7), 7);  // after the server stopped it
  EXPECT_LT(ms_since(t0), 1000.0);
  // A statement waiting for the connection's lock (held by a simple statement) is cancelled
  // there: the next statement still runs.
  auto simple = weave::create_task(c.execute("select pg_sleep(0.1)"));
  co_await weave::sleep(20ms);
  auto waiting = weave::create_task(c.fetchval<int>("select 8"));
  co_await weave::sleep(20ms);
  waiting.cancel();
  EXPECT_THROW(co_await waiting, weave::CancelledError);
  EXPECT_EQ(co_await simple, "SELECT 1");
  EXPECT_EQ(co_await c.fetchval<int>("select $1::int", 9), 9);
  co_await c.close();
}

TEST_F(PgPipeline, CancelledStatementsLeaveTheOthersInThePipelineAnswering) {
  run_bounded(cancelled_in_pipeline(dsn()));
}

// The cache tells statements apart by their text and their parameters' types.
weave::Coro<void> cache_by_types(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  const std::string sql = "select pg_typeof($1)::text";
  EXPECT_EQ(co_await c.fetchval<std::string>(sql, std::int32_t{1}), "integer");
  EXPECT_EQ(co_await c.fetchval<std::string>(sql, std::int64_t{1}), "bigint");
  EXPECT_EQ(co_await c.fetchval<std::string>(sql, 1.5), "double precision");
  EXPECT_EQ(co_await c.fetchval<std::string>(sql, std::int32_t{2}), "integer");
  EXPECT_EQ(co_await c.fetchval<std::int64_t>(
                "select count(*) from pg_prepared_statements where statement = $1", sql),
            3);
  co_await c.close();
}

TEST_F(PgPipeline, TheStatementCacheKeysOnTextAndParameterTypes) {
  run_bounded(cache_by_types(dsn()));
}

weave::Coro<void> lost_pipeline(std::string dsn) {
  pg::Connection victim = co_await pg::connect(dsn);
  pg::Connection killer = co_await pg::connect(dsn);
  auto first = weave::create_task(victim.fetch("select pg_sleep(10)"));
  auto second = weave::create_task(victim.fetchval<int>("select $1::int", 1));
  co_await weave::sleep(50ms);
  co_await killer.execute("select pg_terminate_backend($1)", victim.get_server_pid());
  EXPECT_THROW(co_await first, pg::ConnectionDoesNotExistError);
  EXPECT_THROW(co_await second, pg::ConnectionDoesNotExistError);
  EXPECT_THROW(co_await victim.fetchval<int>("select 1"), pg::ConnectionDoesNotExistError);
  co_await killer.close();
}

TEST_F(PgPipeline, ALostConnectionFailsEveryStatementInItsPipeline) {
  run_bounded(lost_pipeline(dsn()));
}

}  // namespace
