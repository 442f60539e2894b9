// weave::pg's statements in flight against a real server: cancellation (PQcancel off the loop,
// the connection usable after), command timeouts, transactions with savepoints rolled back by an
// exception and by cancellation, 10,000 statements in one pipeline (executemany), LISTEN/NOTIFY
// across two connections, and COPY of 100,000 rows each way.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
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
  // Sets are read as the batch goes out: strings of every form (a string_view's text is given
  // its NUL, a null const char* is NULL), and a temporary vector moved into a task that runs
  // after the caller's expression is gone.
  co_await c.execute("create temp table forms(n int, a text, b text, c text)");
  const std::string backing = "view|rest";
  std::vector<std::tuple<int, std::string_view, const char*, std::optional<std::string_view>>>
      forms = {{1, std::string_view(backing).substr(0, 4), "literal", std::nullopt},
               {2, std::string_view(), nullptr, std::string_view(backing).substr(5)}};
  co_await c.executemany("insert into forms values ($1, $2, $3, $4)", forms);
  auto got = co_await c.fetch(
      "select coalesce(a, '-') || coalesce(b, '-') || coalesce(c, '-') from forms order by n");
  EXPECT_EQ(got.size(), 2u);
  if (got.size() == 2) {
    EXPECT_EQ(got[0].get<std::string>(0), "viewliteral-");
    EXPECT_EQ(got[1].get<std::string>(0), "-rest");
  }
  auto make_rows = [] {
    std::vector<std::tuple<int, std::string>> made;
    for (int i = 0; i < 5000; ++i) made.emplace_back(30000 + i, "moved row " + std::to_string(i));
    return made;
  };
  weave::Task<void> later =
      weave::create_task(c.executemany("insert into p values ($1, $2)", make_rows()));
  std::vector<std::string> clobber(5000, std::string(40, '#'));  // reuses freed memory
  co_await later;
  EXPECT_EQ(clobber.size(), 5000u);
  EXPECT_EQ(co_await c.fetchval<std::int64_t>(
                "select count(*) from p where id >= 30000 and name = 'moved row ' || (id - 30000)"),
            5000);
  // Encoded sets of different lengths: the server's error for the short one, nothing inserted.
  std::vector<pg::Params> ragged;
  ragged.push_back(pg::detail::encode_params(40000, "x"));
  ragged.push_back(pg::detail::encode_params(40001));
  try {
    co_await c.executemany_params("insert into p values ($1, $2)", std::move(ragged));
    ADD_FAILURE() << "a set without its second parameter";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "08P01");
  }
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from p where id >= 40000"), 0);
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

// Columns of exactly the values' types: the encoded rows go out as they are; every value exact.
weave::Coro<void> copies_as_encoded(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute(
      "create temp table e(s int2, i int4, l int8, d float8, ok bool, raw bytea, t text, "
      "n int4)");
  using Record = std::tuple<std::int16_t, int, std::int64_t, double, bool, pg::Bytes, std::string,
                            std::optional<int>>;
  std::vector<Record> rows;
  for (int i = 0; i < 100000; ++i) {
    rows.emplace_back(static_cast<std::int16_t>(i % 30000 - 15000), i - 50000,
                      std::int64_t{i} * 100000000000LL, i * 0.25, i % 3 == 0,
                      pg::Bytes{std::string(static_cast<std::size_t>(i % 5), static_cast<char>(i))},
                      "r" + std::to_string(i), i % 7 == 0 ? std::nullopt : std::optional<int>(i));
  }
  EXPECT_EQ(co_await c.copy_records_to_table("e", rows), "COPY 100000");
  auto sums = co_await c.fetchrow(
      "select sum(s)::int8, sum(i)::int8, sum(l)::numeric::text, sum(d), "
      "count(*) filter (where ok), sum(length(raw))::int8, sum(length(t))::int8, count(n), "
      "sum(n)::int8 from e");
  EXPECT_TRUE(sums.has_value());
  if (!sums) co_return;
  std::int64_t s = 0, i4 = 0, raw = 0, text = 0, n = 0, nsum = 0, ok = 0;
  double d = 0;
  for (const Record& r : rows) {
    s += std::get<0>(r);
    i4 += std::get<1>(r);
    d += std::get<3>(r);
    ok += std::get<4>(r);
    raw += static_cast<std::int64_t>(std::get<5>(r).data.size());
    text += static_cast<std::int64_t>(std::get<6>(r).size());
    if (std::get<7>(r)) {
      ++n;
      nsum += *std::get<7>(r);
    }
  }
  EXPECT_EQ(sums->get<std::int64_t>(0), s);
  EXPECT_EQ(sums->get<std::int64_t>(1), i4);
  EXPECT_EQ(sums->get<std::string>(2), "499995000000000000000");
  EXPECT_EQ(sums->get<double>(3), d);
  EXPECT_EQ(sums->get<std::int64_t>(4), ok);
  EXPECT_EQ(sums->get<std::int64_t>(5), raw);
  EXPECT_EQ(sums->get<std::int64_t>(6), text);
  EXPECT_EQ(sums->get<std::int64_t>(7), n);
  EXPECT_EQ(sums->get<std::int64_t>(8), nsum);
  auto one = co_await c.fetchrow("select * from e where i = $1", 12345 - 50000);
  EXPECT_TRUE(one.has_value());
  if (one) {
    EXPECT_EQ(one->get<std::int16_t>(0), 12345 - 15000);
    EXPECT_EQ(one->get<std::int64_t>(2), 1234500000000000LL);
    EXPECT_EQ(one->get<double>(3), 12345 * 0.25);
    EXPECT_TRUE(one->get<bool>(4));  // 12345 % 3 == 0
    EXPECT_EQ(one->get<pg::Bytes>(5), pg::Bytes{std::string(0, '\0')});
    EXPECT_EQ(one->get<std::string>(6), "r12345");
    EXPECT_EQ(one->get<std::optional<int>>(7), std::optional<int>(12345));
  }
  // Encoded parameters whose column mixes kinds (an int, then text) go as text; rows of other
  // lengths are the server's error, and the connection stays usable.
  co_await c.execute("create temp table m(a text, b int4)");
  std::vector<pg::Params> mixed;
  mixed.push_back(pg::detail::encode_params(1, 2));
  mixed.push_back(pg::detail::encode_params("two", 3));
  std::vector<std::string> every_column;
  EXPECT_EQ(co_await c.copy_rows_in("m", std::move(mixed), every_column), "COPY 2");
  EXPECT_EQ(co_await c.fetchval<std::string>("select string_agg(a || b, ',' order by b) from m"),
            "12,two3");
  std::vector<pg::Params> ragged;
  ragged.push_back(pg::detail::encode_params("x", 4));
  ragged.push_back(pg::detail::encode_params("y"));
  try {
    co_await c.copy_rows_in("m", std::move(ragged), every_column);
    ADD_FAILURE() << "a row without its second value";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "22P04");
  }
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from m"), 2);
  co_await c.close();
}

TEST_F(PgFeatures, CopyOfRowsOfTheColumnsTypesSendsThemAsEncoded) {
  run_bounded(copies_as_encoded(dsn()), std::chrono::seconds(30));
}

weave::Coro<void> binary_copies(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute(
      "create temp table b(s int2, i int4, l int8, f float4, d float8, ok bool, raw bytea, "
      "t text, v varchar(10), j jsonb)");
  using Record = std::tuple<int, int, std::int64_t, double, std::optional<double>, bool, pg::Bytes,
                            std::string, std::string, std::string>;
  pg::Bytes all;
  for (int i = 0; i < 256; ++i) all.data += static_cast<char>(i);
  using L64 = std::numeric_limits<std::int64_t>;
  const std::vector<Record> rows = {
      {-32768, std::numeric_limits<int>::min(), L64::min(), 0.5, std::nullopt, true, all,
       "tab\there\\", "", "{\"k\": [1, 2]}"},
      {32767, std::numeric_limits<int>::max(), L64::max(), -1e30,
       std::numeric_limits<double>::infinity(), false, pg::Bytes{}, "", "caf\xc3\xa9", "null"}};
  EXPECT_EQ(co_await c.copy_records_to_table("b", rows), "COPY 2");
  auto got = co_await c.fetch("select * from b order by s");
  EXPECT_EQ(got.size(), 2u);
  if (got.size() == 2) {
    EXPECT_EQ(got[0].get<int>("s"), -32768);
    EXPECT_EQ(got[1].get<int>("s"), 32767);
    EXPECT_EQ(got[0].get<int>("i"), std::numeric_limits<int>::min());
    EXPECT_EQ(got[1].get<std::int64_t>("l"), L64::max());
    EXPECT_EQ(got[0].get<std::int64_t>("l"), L64::min());
    EXPECT_EQ(got[0].get<float>("f"), 0.5f);
    EXPECT_EQ(got[1].get<float>("f"), -1e30f);
    EXPECT_TRUE(got[0].is_null(4));
    EXPECT_EQ(got[1].get<double>("d"), std::numeric_limits<double>::infinity());
    EXPECT_TRUE(got[0].get<bool>("ok"));
    EXPECT_FALSE(got[1].get<bool>("ok"));
    EXPECT_EQ(got[0].get<pg::Bytes>("raw"), all);
    EXPECT_EQ(got[1].get<pg::Bytes>("raw"), pg::Bytes{});
    EXPECT_EQ(got[0].get<std::string>("t"), "tab\there\\");
    EXPECT_EQ(got[1].get<std::string>("v"), "caf\xc3\xa9");
    EXPECT_EQ(got[0].get<std::string>("j"), "{\"k\": [1, 2]}");
  }
  // Encoded parameters take the same path (their text read back into values).
  std::vector<pg::Params> params;
  params.push_back(pg::detail::encode_params(1, 2, std::int64_t(3), 4.5, std::optional<double>(),
                                             true, pg::Bytes{"\x01\xff"}, "t\\", "v", "[1]"));
  std::vector<std::string> every_column;
  EXPECT_EQ(co_await c.copy_rows_in("b", std::move(params), every_column), "COPY 1");
  auto from_params = co_await c.fetchrow("select * from b where s = 1");
  EXPECT_TRUE(from_params.has_value());
  if (from_params) {
    EXPECT_EQ(from_params->get<std::int64_t>("l"), 3);
    EXPECT_EQ(from_params->get<double>("f"), 4.5);
    EXPECT_TRUE(from_params->is_null(4));
    EXPECT_TRUE(from_params->get<bool>("ok"));
    EXPECT_EQ(from_params->get<pg::Bytes>("raw"), pg::Bytes{"\x01\xff"});
    EXPECT_EQ(from_params->get<std::string>("t"), "t\\");
    EXPECT_EQ(from_params->get<std::string>("j"), "[1]");
  }
  co_await c.execute("delete from b where s = 1");
  // The binary COPY encodes on the client: a value too big for its column is a DataError
  // naming the column, the COPY rolls back whole, and the connection stays usable.
  std::vector<std::tuple<int, int>> too_big = {{1, 1}, {40000, 2}};
  std::vector<std::string> two = {"s", "i"};
  try {
    co_await c.copy_records_to_table("b", too_big, two);
    ADD_FAILURE() << "40000 copied into an int2";
  } catch (const pg::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("\"s\""), std::string::npos) << e.what();
  }
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from b"), 2);
  // A column without a binary encoder (a date here) keeps the COPY in text: the same value is
  // the server's error then.
  co_await c.execute("create temp table t(s int2, d date)");
  std::vector<std::tuple<int, std::chrono::sys_days>> dated = {
      {40000, std::chrono::sys_days(std::chrono::year(2024) / 2 / 29)}};
  try {
    co_await c.copy_records_to_table("t", dated);
    ADD_FAILURE() << "40000 copied into an int2";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "22003");
  }
  dated = {{7, std::chrono::sys_days(std::chrono::year(2024) / 2 / 29)}};
  EXPECT_EQ(co_await c.copy_records_to_table("t", dated), "COPY 1");
  EXPECT_EQ(co_await c.fetchval<std::string>("select d::text from t"), "2024-02-29");
  // A value that is not of its column's kind (text into an int column) stays text as well.
  std::vector<std::tuple<std::string>> text_int = {{"12"}};
  std::vector<std::string> s_only = {"s"};
  EXPECT_EQ(co_await c.copy_records_to_table("t", text_int, s_only), "COPY 1");
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from t where s = 12"), 1);
  // A missing table is the server's error, before any COPY starts.
  try {
    co_await c.copy_records_to_table("no_such_table", text_int);
    ADD_FAILURE() << "COPY into a missing table";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "42P01");
  }
  EXPECT_EQ(co_await c.fetchval<int>("select 5"), 5);
  co_await c.close();
}

TEST_F(PgFeatures, BinaryCopyOfEveryEncodedTypeAndTheTextFallback) {
  run_bounded(binary_copies(dsn()));
}

// The rows are encoded a chunk at a time as the COPY sends them: rows larger than a chunk, a
// vector moved into a task that runs after the caller's temporary is gone, a value refused in a
// late chunk, and each path (as encoded, converted, text).
weave::Coro<void> chunked_copies(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("create temp table big(n int4, raw bytea)");
  std::vector<std::tuple<int, pg::Bytes>> big;
  std::int64_t bytes = 0;
  for (int i = 0; i < 40; ++i) {
    const std::size_t size = i % 4 == 0 ? 300000 + static_cast<std::size_t>(i) : 10;
    big.emplace_back(i, pg::Bytes{std::string(size, static_cast<char>('a' + i % 26))});
    bytes += static_cast<std::int64_t>(size);
  }
  EXPECT_EQ(co_await c.copy_records_to_table("big", big), "COPY 40");
  auto sums = co_await c.fetchrow(
      "select sum(length(raw))::int8, count(*) filter (where get_byte(raw, length(raw) - 1) = "
      "ascii('a') + n % 26) from big");
  EXPECT_TRUE(sums.has_value());
  if (sums) {
    EXPECT_EQ(sums->get<std::int64_t>(0), bytes);
    EXPECT_EQ(sums->get<std::int64_t>(1), 40);
  }
  // Converted (int into int2) and text (a date column) paths, each over many chunks.
  co_await c.execute("create temp table conv(s int2, t text)");
  co_await c.execute("create temp table dated(n int4, t text, d date)");
  std::vector<std::tuple<int, std::string>> conv;
  std::vector<std::tuple<int, std::string, std::chrono::sys_days>> dated;
  const auto day = std::chrono::sys_days(std::chrono::year(2024) / 2 / 29);
  for (int i = 0; i < 30000; ++i) {
    conv.emplace_back(i, std::string(static_cast<std::size_t>(i % 50), 'x'));
    dated.emplace_back(i, "line\t" + std::to_string(i), day + std::chrono::days(i % 3));
  }
  EXPECT_EQ(co_await c.copy_records_to_table("conv", conv), "COPY 30000");
  EXPECT_EQ(co_await c.copy_records_to_table("dated", dated), "COPY 30000");
  std::int64_t conv_sum = 0;
  for (const auto& [n, t] : conv) conv_sum += n + static_cast<std::int64_t>(t.size());
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select sum(s)::int8 + sum(length(t)) from conv"),
            conv_sum);
  EXPECT_EQ(
      co_await c.fetchval<std::string>("select t || ' ' || d::text from dated where n = 29999"),
      "line\t29999 2024-03-02");
  // A value refused in a late chunk: nothing of the COPY stays, the connection answers.
  conv.back() = {40000, "too big"};
  try {
    co_await c.copy_records_to_table("conv", conv);
    ADD_FAILURE() << "40000 copied into an int2";
  } catch (const pg::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("\"1\""), std::string::npos) << e.what();
  }
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from conv"), 30000);
  // A temporary vector is moved into the operation: the task runs after it is gone.
  auto make_rows = [] {
    std::vector<std::tuple<int, std::string>> rows;
    for (int i = 0; i < 20000; ++i) rows.emplace_back(i, "moved " + std::to_string(i));
    return rows;
  };
  co_await c.execute("create temp table moved(n int4, t text)");
  weave::Task<std::string> later =
      weave::create_task(c.copy_records_to_table("moved", make_rows()));
  std::vector<std::string> clobber(20000, std::string(40, '#'));  // reuses freed memory
  EXPECT_EQ(co_await later, "COPY 20000");
  EXPECT_EQ(clobber.size(), 20000u);
  EXPECT_EQ(
      co_await c.fetchval<std::int64_t>("select count(*) from moved where t = 'moved ' || n::text"),
      20000);
  co_await c.close();
}

TEST_F(PgFeatures, CopyEncodesItsRowsAChunkAtATime) {
  run_bounded(chunked_copies(dsn()), std::chrono::seconds(30));
}

// Cancelled while its rows stream: the COPY is rolled back and the connection stays usable. The
// server stops at the last row (a trigger sleeps there), so the COPY cannot end on its own
// before the cancel, however slow the client (sanitizer builds) or fast the server.
weave::Coro<void> cancelled_copy(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  pg::Connection watcher = co_await pg::connect(dsn);
  constexpr int kRows = 200000;
  co_await c.execute(
      "create table cancelled_copy(n int4, t text);"
      "create function stall() returns trigger language plpgsql as "
      "$$ begin perform pg_sleep(30); return new; end $$;"
      "create trigger stall_at_the_end before insert on cancelled_copy for each row "
      "when (new.n = " +
      std::to_string(kRows - 1) + ") execute function stall()");
  std::vector<std::tuple<int, std::string>> rows;
  for (int i = 0; i < kRows; ++i) rows.emplace_back(i, "a short row");
  weave::Task<std::string> copying =
      weave::create_task(c.copy_records_to_table("cancelled_copy", rows));
  // The server counts the tuples of a COPY in progress.
  std::int64_t seen = 0;
  while (seen == 0 && !copying.done()) {
    seen = co_await watcher.fetchval<std::int64_t>(
        "select coalesce(max(tuples_processed), 0) from pg_stat_progress_copy");
  }
  EXPECT_GT(seen, 0);
  EXPECT_FALSE(copying.done());
  const auto t0 = weave::Clock::now();
  copying.cancel();
  EXPECT_THROW(co_await copying, weave::CancelledError);
  EXPECT_LT(ms_since(t0), 5000.0);  // the cancel reached the server: not the trigger's 30 s
  EXPECT_EQ(co_await c.fetchval<std::int64_t>("select count(*) from cancelled_copy"), 0);
  EXPECT_EQ(co_await c.fetchval<int>("select 6"), 6);
  co_await c.execute("drop table cancelled_copy; drop function stall()");
  co_await watcher.close();
  co_await c.close();
}

TEST_F(PgFeatures, CancellingACopyMidwayRollsItBack) {
  run_bounded(cancelled_copy(dsn()), std::chrono::seconds(30));
}

}  // namespace
