// weave::pg's statements in flight against a real server: cancellation (PQcancel off the loop,
// the connection usable after), command timeouts, transactions with savepoints rolled back by an
// exception and by cancellation, 10,000 statements in one pipeline, LISTEN/NOTIFY across two
// connections, and COPY of 100,000 rows each way.

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "support/pg.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;
namespace pg = weave::pg;

namespace {

class PgFeatures : public weave_test::PgTest {};

double ms_since(weave::Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
}

// ---- cancellation and timeouts -----------------------------------------------------------------

weave::Coro<void> cancel_sleep(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  auto sleeping = weave::create_task(c.execute("select pg_sleep(10)"));
  co_await weave::sleep(50ms);
  const auto t0 = weave::Clock::now();
  sleeping.cancel();
  EXPECT_THROW(co_await sleeping, weave::CancelledError);
  EXPECT_LT(ms_since(t0), 100.0);
  EXPECT_FALSE(c.is_closed());
  EXPECT_EQ(co_await c.fetchval<int>("select 41 + 1"), 42);  // the error 57014 was consumed
  EXPECT_FALSE(c.is_in_transaction());
  co_await c.close();
}

TEST_F(PgFeatures, CancellingPgSleepStopsItOnTheServerWithin100ms) {
  run_bounded(cancel_sleep(dsn()));
}

weave::Coro<void> timeouts(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  auto t0 = weave::Clock::now();
  EXPECT_THROW(co_await c.execute(pg::Query("select pg_sleep(10)", 100ms)), weave::TimeoutError);
  EXPECT_LT(ms_since(t0), 1000.0);
  EXPECT_EQ(co_await c.fetchval<int>(pg::Query("select 1", 1s)), 1);
  co_await c.close();
  pg::ConnectOptions opts;
  opts.command_timeout = 100ms;
  pg::Connection d = co_await pg::connect(dsn, opts);
  t0 = weave::Clock::now();
  EXPECT_THROW(co_await d.fetch("select pg_sleep(10)"), weave::TimeoutError);
  EXPECT_LT(ms_since(t0), 1000.0);
  EXPECT_EQ(co_await d.fetchval<int>("select 2"), 2);
  // A per-call timeout overrides the connection's.
  EXPECT_EQ(co_await d.fetchval<std::string>(pg::Query("select pg_sleep(0.2)::text", 5s)), "");
  co_await d.close();
}

TEST_F(PgFeatures, CommandTimeoutPerCallAndPerConnection) {
  run_bounded(timeouts(dsn()));
}

weave::Coro<void> queued_statements(std::string dsn) {
  // Statements issued concurrently on one connection run one after the other, each answered.
  pg::Connection c = co_await pg::connect(dsn);
  std::vector<weave::Coro<int>> calls;
  for (int i = 0; i < 20; ++i) calls.push_back(c.fetchval<int>("select $1::int * 2", i));
  std::vector<int> results = co_await weave::gather(std::move(calls));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)], i * 2);
  co_await c.close();
}

TEST_F(PgFeatures, ConcurrentStatementsOnOneConnectionAllAnswer) {
  run_bounded(queued_statements(dsn()));
}

// ---- transactions ------------------------------------------------------------------------------

weave::Coro<long> count(pg::Connection& c) {
  co_return co_await c.fetchval<std::int64_t>("select count(*) from tx");
}

weave::Coro<void> transactions(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("create temp table tx(v int)");
  pg::TransactionBody commit = [](pg::Connection& t) -> weave::Coro<void> {
    EXPECT_TRUE(t.is_in_transaction());
    co_await t.execute("insert into tx values (1)");
  };
  co_await c.transaction(commit);
  EXPECT_EQ(co_await count(c), 1);
  EXPECT_FALSE(c.is_in_transaction());

  pg::TransactionBody fail = [](pg::Connection& t) -> weave::Coro<void> {
    co_await t.execute("insert into tx values (2)");
    throw std::runtime_error("body failed");
  };
  EXPECT_THROW(co_await c.transaction(fail), std::runtime_error);
  EXPECT_EQ(co_await count(c), 1);

  // Nested: the inner failure rolls back to its savepoint only.
  pg::TransactionBody inner_fail = [](pg::Connection& t) -> weave::Coro<void> {
    co_await t.execute("insert into tx values (3)");
    throw std::logic_error("inner failed");
  };
  pg::TransactionBody outer = [&](pg::Connection& t) -> weave::Coro<void> {
    co_await t.execute("insert into tx values (4)");
    EXPECT_THROW(co_await t.transaction(inner_fail), std::logic_error);
    EXPECT_TRUE(t.is_in_transaction());
  };
  co_await c.transaction(outer);
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select sum(v) from tx"), 5);

  pg::TransactionOptions opts;
  opts.isolation = pg::IsolationLevel::serializable;
  opts.readonly = true;
  pg::TransactionBody check = [](pg::Connection& t) -> weave::Coro<void> {
    EXPECT_EQ(co_await t.fetchval<std::string>("show transaction_isolation"), "serializable");
    EXPECT_EQ(co_await t.fetchval<std::string>("show transaction_read_only"), "on");
    // (temporary tables stay writable in a read-only transaction: create a real one)
    auto write = [&]() -> weave::Coro<void> { co_await t.execute("create table ro(v int)"); };
    try {
      co_await write();
      ADD_FAILURE() << "a read-only transaction wrote";
    } catch (const pg::PostgresError& e) {
      EXPECT_EQ(e.sqlstate(), "25006");
    }
  };
  co_await c.transaction(check, opts);  // the body swallowed the error: COMMIT ends the aborted tx
  EXPECT_FALSE(c.is_in_transaction());
  co_await c.close();
}

TEST_F(PgFeatures, TransactionsCommitRollBackAndNestAsSavepoints) {
  run_bounded(transactions(dsn()));
}

weave::Coro<void> cancelled_transaction(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("create temp table tx(v int)");
  pg::TransactionBody slow = [](pg::Connection& t) -> weave::Coro<void> {
    co_await t.execute("insert into tx values (1)");
    co_await t.execute("select pg_sleep(10)");
  };
  auto task = weave::create_task(c.transaction(slow));
  co_await weave::sleep(100ms);
  task.cancel();
  EXPECT_THROW(co_await task, weave::CancelledError);
  EXPECT_FALSE(c.is_in_transaction());
  EXPECT_EQ(co_await count(c), 0);
  co_await c.close();
}

TEST_F(PgFeatures, ATransactionIsRolledBackWhenCancelled) {
  run_bounded(cancelled_transaction(dsn()));
}

// ---- pipelining --------------------------------------------------------------------------------

weave::Coro<void> pipelined(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("create temp table p(id int primary key, name text)");
  std::vector<std::tuple<int, std::string>> rows;
  for (int i = 0; i < 10000; ++i) rows.emplace_back(i, "row " + std::to_string(i));
  co_await c.executemany("insert into p values ($1, $2)", rows);
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from p"), 10000);
  EXPECT_EQ(co_await c.fetchval<std::string>("select name from p where id = 9999"), "row 9999");
  // One failing statement: the batch is one implicit transaction and rolls back whole.
  std::vector<std::tuple<int, std::string>> clash = {{20000, "new"}, {5, "duplicate"}};
  try {
    co_await c.executemany("insert into p values ($1, $2)", clash);
    ADD_FAILURE() << "no unique violation";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
  }
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from p"), 10000);
  EXPECT_EQ(co_await c.fetchval<int>("select 3"), 3);
  co_await c.close();
}

TEST_F(PgFeatures, TenThousandStatementsInOnePipeline) {
  run_bounded(pipelined(dsn()), std::chrono::seconds(30));
}

// ---- LISTEN / NOTIFY ---------------------------------------------------------------------------

weave::Coro<void> notifications(std::string dsn) {
  pg::Connection listener = co_await pg::connect(dsn);
  pg::Connection sender = co_await pg::connect(dsn);
  std::vector<pg::Notification> got;
  co_await listener.add_listener("weave chan",
                                 [&](const pg::Notification& n) { got.push_back(n); });
  co_await sender.execute("notify \"weave chan\", 'first'");
  co_await sender.execute("select pg_notify('weave chan', $1)", "second");
  co_await sender.execute("select pg_notify('other', 'not for us')");
  co_await weave_test::until([&] { return got.size() >= 2; });  // the listener is idle meanwhile
  EXPECT_EQ(got.size(), 2u);
  if (got.size() != 2) co_return;
  EXPECT_EQ(got[0].payload, "first");
  EXPECT_EQ(got[1].payload, "second");
  EXPECT_EQ(got[0].channel, "weave chan");
  EXPECT_EQ(got[0].pid, sender.get_server_pid());
  co_await listener.remove_listener("weave chan");
  co_await sender.execute("notify \"weave chan\", 'third'");
  EXPECT_EQ(co_await listener.fetchval<int>("select 1"), 1);
  co_await weave::sleep(50ms);
  EXPECT_EQ(got.size(), 2u);
  co_await listener.close();
  co_await sender.close();
}

TEST_F(PgFeatures, ListenNotifyAcrossTwoConnections) {
  run_bounded(notifications(dsn()));
}

// ---- COPY --------------------------------------------------------------------------------------

weave::Coro<void> copies(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("create temp table c(id int, name text, score float8)");
  std::vector<std::tuple<int, std::string, std::optional<double>>> rows;
  for (int i = 0; i < 100000; ++i) {
    rows.emplace_back(i, i == 7 ? "tab\there\nnewline\\" : "n" + std::to_string(i),
                      i % 10 == 0 ? std::nullopt : std::optional<double>(i * 0.5));
  }
  EXPECT_EQ(co_await c.copy_records_to_table("c", rows), "COPY 100000");
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from c"), 100000);
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from c where score is null"), 10000);
  EXPECT_EQ(co_await c.fetchval<std::string>("select name from c where id = 7"),
            "tab\there\nnewline\\");
  std::size_t lines = 0;
  std::string line7;
  auto out = [&](std::string_view line) {
    if (lines++ == 7) line7 = line;
  };
  EXPECT_EQ(co_await c.copy_from_query("select id, name, score from c order by id", out),
            "COPY 100000");
  EXPECT_EQ(lines, 100000u);
  EXPECT_EQ(line7, "7\ttab\\there\\nnewline\\\\\t3.5");
  // A COPY into a missing column is the server's error, and the connection stays usable.
  std::vector<std::tuple<int>> one = {{1}};
  std::vector<std::string> missing_column = {"nope"};
  try {
    co_await c.copy_records_to_table("c", one, missing_column);
    ADD_FAILURE() << "COPY into a missing column";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "42703");
  }
  EXPECT_EQ(co_await c.fetchval<int>("select 4"), 4);
  co_await c.close();
}

TEST_F(PgFeatures, CopyOfAHundredThousandRowsEachWay) {
  run_bounded(copies(dsn()), std::chrono::seconds(30));
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

TEST_F(PgFeatures, TheStatementCacheKeepsTheMostRecentStatements) {
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

TEST_F(PgFeatures, PrepareRunsAStatementByName) {
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

TEST_F(PgFeatures, StatementsInFlightTogetherShareOnePipeline) {
  run_bounded(shared_pipeline(dsn()));
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

TEST_F(PgFeatures, ALostConnectionFailsEveryStatementInItsPipeline) {
  run_bounded(lost_pipeline(dsn()));
}

}  // namespace
