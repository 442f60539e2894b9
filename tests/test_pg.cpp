// weave::pg against a real PostgreSQL server (the ctest fixture's cluster): connecting by
// keywords and URI, failures and timeouts of the connect, every supported type both ways with
// NULLs and extremes, server errors with their SQLSTATE, and a connection lost mid-query.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "support/pg.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;
namespace pg = weave::pg;

namespace {

class Pg : public weave_test::PgTest {};

// ---- connecting --------------------------------------------------------------------------------

weave::Coro<void> connect_both_forms(std::string keywords, std::string uri) {
  pg::Connection a = co_await pg::connect(keywords);
  EXPECT_EQ(co_await a.fetchval<int>("select 1 + 1"), 2);
  pg::Connection b = co_await pg::connect(uri);
  EXPECT_EQ(co_await b.fetchval<std::string>("select current_database()"),
            co_await a.fetchval<std::string>("select current_database()"));
  EXPECT_EQ(co_await b.fetchval<std::string>("select inet_server_addr()::text"), "127.0.0.1/32");
  EXPECT_NE(a.get_server_pid(), b.get_server_pid());
  co_await a.close();
  EXPECT_TRUE(a.is_closed());
  EXPECT_THROW(co_await a.fetchval<int>("select 1"), pg::ConnectionDoesNotExistError);
  co_await b.close();
  co_await b.close();  // idempotent
}

TEST_F(Pg, ConnectsWithKeywordsAndWithAUri) {
  run_bounded(connect_both_forms(
      dsn(), "postgresql://postgres@127.0.0.1:" + port() + "/" + database() + "?sslmode=disable"));
}

// Every host name is resolved before libpq sees it (off the loop thread) and passed as hostaddr,
// one entry per address, with host kept for TLS; names that do not resolve are left out.
std::string value_of(const std::vector<std::pair<std::string, std::string>>& kv,
                     const std::string& key) {
  for (const auto& [k, v] : kv) {
    if (k == key) return v;
  }
  return "<none>";
}

TEST(PgHosts, EveryHostNameIsResolvedToAHostaddr) {
  auto kv = pg::detail::resolve_hosts("host=/tmp,no-such-host.invalid,localhost port=1,2,3");
  ASSERT_FALSE(kv.empty());
  const std::string hosts = value_of(kv, "host"), addrs = value_of(kv, "hostaddr"),
                    ports = value_of(kv, "port");
  // /tmp stays a socket directory (empty hostaddr), localhost gives 127.0.0.1 (and ::1 when
  // the resolver has it), each with localhost's port.
  EXPECT_EQ(hosts.rfind("/tmp,localhost", 0), 0u) << hosts;
  EXPECT_EQ(addrs.rfind(",", 0), 0u) << addrs;
  EXPECT_NE(addrs.find("127.0.0.1"), std::string::npos) << addrs;
  EXPECT_EQ(ports.rfind("1,3", 0), 0u) << ports;
  EXPECT_EQ(std::count(hosts.begin(), hosts.end(), ','),
            std::count(addrs.begin(), addrs.end(), ','));
  EXPECT_EQ(std::count(hosts.begin(), hosts.end(), ','),
            std::count(ports.begin(), ports.end(), ','));
  EXPECT_EQ(hosts.find("invalid"), std::string::npos);
  auto uri = pg::detail::resolve_hosts("postgresql://u@localhost:7/db");
  EXPECT_NE(value_of(uri, "hostaddr").find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(value_of(uri, "port"), "<none>");  // one port: libpq applies it to every entry
  EXPECT_TRUE(pg::detail::resolve_hosts("host=localhost hostaddr=127.0.0.1").empty());
  EXPECT_TRUE(pg::detail::resolve_hosts("host=127.0.0.1,/tmp port=1").empty());
  EXPECT_TRUE(pg::detail::resolve_hosts("host=no-such-host.invalid").empty());
  EXPECT_TRUE(pg::detail::resolve_hosts("not a conninfo = '").empty());
}

weave::Coro<void> connect_by_names(std::string conninfo) {
  pg::Connection c = co_await pg::connect(conninfo);
  EXPECT_EQ(co_await c.fetchval<std::string>("select inet_server_addr()::text"), "127.0.0.1/32");
  co_await c.close();
}

TEST_F(Pg, ConnectsToTheHostNamesAfterTheFirstAndToPgHost) {
  const std::string rest = " user=postgres sslmode=disable dbname=" + database();
  // The service file is this process's own (both backends' runs of this test may overlap); it
  // and the variables go however the test ends, so that no later test reads them.
  const std::string file =
      ::testing::TempDir() + "weave_pg_service." + std::to_string(::getpid()) + ".conf";
  struct Cleanup {
    const std::string& file;
    ~Cleanup() {
      unsetenv("PGHOST");
      unsetenv("PGSERVICE");
      unsetenv("PGSERVICEFILE");
      std::remove(file.c_str());
    }
  } cleanup{file};
  // the first host does not resolve, the second is a socket directory with no server, the
  // third is the server by name
  run_bounded(connect_by_names("host=no-such-host.invalid,/nonexistent,localhost port=1,2," +
                               port() + rest));
  ASSERT_EQ(setenv("PGHOST", "localhost", 1), 0);
  run_bounded(connect_by_names("port=" + port() + rest));
  unsetenv("PGHOST");
  // Host names from a connection service: resolved here too, the conninfo's own keys first.
  {
    std::ofstream out(file);
    out << "# a comment\n[other]\nhost=no-such-host.invalid\n[weave]\n"
        << "host=no-such-host.invalid,localhost\nport=1," << port() << "\n";
  }
  ASSERT_EQ(setenv("PGSERVICEFILE", file.c_str(), 1), 0);
  auto kv = pg::detail::resolve_hosts("service=weave");
  EXPECT_EQ(value_of(kv, "host").rfind("localhost", 0), 0u) << value_of(kv, "host");
  EXPECT_NE(value_of(kv, "hostaddr").find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(value_of(kv, "port").rfind(port(), 0), 0u) << value_of(kv, "port");
  EXPECT_EQ(value_of(pg::detail::resolve_hosts("service=weave host=/tmp"), "host"), "<none>");
  EXPECT_TRUE(pg::detail::resolve_hosts("service=no_such_service").empty());
  run_bounded(connect_by_names("service=weave" + rest));
  ASSERT_EQ(setenv("PGSERVICE", "weave", 1), 0);
  run_bounded(connect_by_names(rest));
}

weave::Coro<void> refused() {
  // A port that was free a moment ago: nothing listens there.
  auto server = co_await weave::start_server(
      [](weave::StreamReader, weave::StreamWriter) -> weave::Coro<void> { co_return; }, "127.0.0.1",
      0);
  const auto port = server.sockets().at(0).getsockname().port();
  server.close();
  co_await server.wait_closed();
  EXPECT_THROW(co_await pg::connect("host=127.0.0.1 port=" + std::to_string(port)),
               pg::ConnectionFailureError);
}

TEST_F(Pg, ARefusedConnectIsAConnectionFailureError) {
  run_bounded(refused());
}

weave::Coro<void> connect_timeout() {
  // A server that accepts and never says a word: the startup packet is never answered.
  std::vector<weave::StreamWriter> held;
  auto server = co_await weave::start_server(
      [&held](weave::StreamReader, weave::StreamWriter w) -> weave::Coro<void> {
        held.push_back(std::move(w));
        co_return;
      },
      "127.0.0.1", 0);
  const auto port = server.sockets().at(0).getsockname().port();
  pg::ConnectOptions opts;
  opts.timeout = 100ms;
  const auto t0 = weave::Clock::now();
  EXPECT_THROW(
      co_await pg::connect("host=127.0.0.1 sslmode=disable port=" + std::to_string(port), opts),
      weave::TimeoutError);
  EXPECT_LT(weave::Clock::now() - t0, 1s);
  for (auto& w : held) w.close();
  server.close();
  co_await server.wait_closed();
}

TEST_F(Pg, ConnectTimesOutAgainstASilentServer) {
  run_bounded(connect_timeout());
}

TEST_F(Pg, ABadConninfoIsAConnectionFailureError) {
  run_bounded([]() -> weave::Coro<void> {
    EXPECT_THROW(co_await pg::connect("host=/nonexistent/dir port=1"), pg::ConnectionFailureError);
    EXPECT_THROW(co_await pg::connect("nonsense_keyword=1"), pg::ConnectionFailureError);
  }());
}

// ---- types both ways ---------------------------------------------------------------------------

int echo_calls = 0;  // each echo a statement of its own, prepared by its first run

template <class T>
bool same(const T& a, const T& b) {
  if constexpr (std::is_floating_point_v<T>) {
    return a == b || (std::isnan(a) && std::isnan(b));
  } else {
    return a == b;
  }
}

/// The value sent as `cast` and read back in both result formats: the statement's first run
/// (which prepares it) reads text, the next one the binary format its column type picked.
template <class T>
weave::Coro<T> echo(pg::Connection& c, std::string cast, const T& v) {
  const std::string sql = "select $1::" + cast + " -- " + std::to_string(++echo_calls);
  std::optional<pg::Row> text = co_await c.fetchrow(sql, v);
  std::optional<pg::Row> binary = co_await c.fetchrow(sql, v);
  if (!text || !binary) {
    ADD_FAILURE() << sql << ": no row";
    co_return T{};
  }
  EXPECT_FALSE(text->field(0).binary) << cast;
  EXPECT_TRUE(binary->field(0).binary) << cast;
  const T from_text = text->get<T>(0), from_binary = binary->get<T>(0);
  EXPECT_TRUE(same(from_text, from_binary)) << cast << ": the formats disagree";
  co_return from_binary;
}

/// `sql`'s single value read in the format its second run picks (binary for every type with a
/// binary decoder); `binary` tells which that must be.
template <class T>
weave::Coro<T> second_run(pg::Connection& c, std::string sql, bool binary = true) {
  (void)co_await c.fetch(sql);
  std::optional<pg::Row> row = co_await c.fetchrow(sql);
  if (!row) {
    ADD_FAILURE() << sql << ": no row";
    co_return T{};
  }
  EXPECT_EQ(row->field(0).binary, binary) << sql;
  co_return row->get<T>(0);
}

weave::Coro<void> integers_and_floats(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  using L16 = std::numeric_limits<std::int16_t>;
  using L32 = std::numeric_limits<std::int32_t>;
  using L64 = std::numeric_limits<std::int64_t>;
  EXPECT_EQ(co_await echo<std::int16_t>(c, "int2", L16::min()), L16::min());
  EXPECT_EQ(co_await echo<std::int16_t>(c, "int2", L16::max()), L16::max());
  EXPECT_EQ(co_await echo<std::int32_t>(c, "int4", L32::min()), L32::min());
  EXPECT_EQ(co_await echo<std::int32_t>(c, "int4", L32::max()), L32::max());
  EXPECT_EQ(co_await echo<std::int64_t>(c, "int8", L64::min()), L64::min());
  EXPECT_EQ(co_await echo<std::int64_t>(c, "int8", L64::max()), L64::max());
  EXPECT_EQ(co_await echo<double>(c, "float8", 1.7976931348623157e308), 1.7976931348623157e308);
  EXPECT_EQ(co_await echo<double>(c, "float8", 4.9e-324), 4.9e-324);
  EXPECT_EQ(co_await echo<double>(c, "float8", 0.1), 0.1);
  EXPECT_EQ(co_await echo<float>(c, "float4", 3.4028235e38f), 3.4028235e38f);
  EXPECT_TRUE(std::isnan(co_await echo<double>(c, "float8", std::nan(""))));
  EXPECT_EQ(co_await echo<double>(c, "float8", -std::numeric_limits<double>::infinity()),
            -std::numeric_limits<double>::infinity());
  EXPECT_EQ(co_await echo<bool>(c, "bool", true), true);
  EXPECT_EQ(co_await echo<bool>(c, "bool", false), false);
  // A value too big for the C++ type is a DataError, not a silent wrap.
  EXPECT_THROW(co_await c.fetchval<std::int16_t>("select 40000::int4"), pg::DataError);
  EXPECT_THROW(co_await c.fetchval<int>("select 'abc'::text"), pg::DataError);
  co_await c.close();
}

TEST_F(Pg, IntegersFloatsAndBoolsRoundTripAtTheirExtremes) {
  run_bounded(integers_and_floats(dsn()));
}

// Integers, floats, bool and bytea go out in the binary format: the server reads each exactly
// (its text of the value shows it), also where the statement's own types differ (prepare()
// infers them: such a value goes as text), in executemany and inside arrays.
weave::Coro<void> binary_parameters(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  using L16 = std::numeric_limits<std::int16_t>;
  using L64 = std::numeric_limits<std::int64_t>;
  EXPECT_TRUE(pg::detail::encode(1).binary);
  EXPECT_TRUE(pg::detail::encode(pg::Bytes{"x"}).binary);
  EXPECT_FALSE(pg::detail::encode("x").binary);
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", L16::min()), "-32768");
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", -7), "-7");
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", L64::max()), "9223372036854775807");
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", 0.1), "0.1");
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", 1.5f), "1.5");
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", std::nan("")), "NaN");
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", true), "true");
  pg::Bytes all;
  for (int i = 0; i < 256; ++i) all.data += static_cast<char>(i);
  EXPECT_EQ(co_await c.fetchval<int>("select length($1)", all), 256);
  EXPECT_EQ(co_await c.fetchval<std::string>("select md5($1)", all),
            co_await c.fetchval<std::string>("select md5(decode(string_agg(lpad(to_hex(i), 2, "
                                             "'0'), '' order by i), 'hex')) "
                                             "from generate_series(0, 255) as i"));
  // Types the server inferred: an int into int8, numeric and text parameters, a double into a
  // numeric, a bool into text.
  pg::PreparedStatement ps = co_await c.prepare(
      "select $1::int8 + 1, $2::numeric * 2, $3::text || '!', $4::numeric, $5::text");
  auto row = co_await ps.fetchrow(41, 5, 7, 0.25, false);
  EXPECT_TRUE(row.has_value());
  if (row) {
    EXPECT_EQ(row->get<std::int64_t>(0), 42);
    EXPECT_EQ(row->get<std::string>(1), "10");
    EXPECT_EQ(row->get<std::string>(2), "7!");
    EXPECT_EQ(row->get<std::string>(3), "0.25");
    EXPECT_EQ(row->get<std::string>(4), "f");  // its text, as the text format sent it before
  }
  // executemany, NULLs among them; arrays of binary-encoded elements.
  co_await c.execute(
      "create temp table p(s int2, i int4, l int8, f float4, d float8, ok bool, raw bytea, "
      "t text)");
  using Set = std::tuple<std::int16_t, std::optional<int>, std::int64_t, float, double, bool,
                         std::optional<pg::Bytes>, std::string>;
  std::vector<Set> sets = {{L16::max(), 1, L64::min(), 0.5f, -0.0, true, all, "first"},
                           {L16::min(), std::nullopt, 3, -1e30f, 1e300, false, std::nullopt, ""}};
  co_await c.executemany("insert into p values ($1, $2, $3, $4, $5, $6, $7, $8)", sets);
  auto got = co_await c.fetch("select * from p order by s");
  EXPECT_EQ(got.size(), 2u);
  if (got.size() == 2) {
    EXPECT_EQ(got[1].get<std::int16_t>(0), L16::max());
    EXPECT_EQ(got[1].get<std::optional<int>>(1), 1);
    EXPECT_EQ(got[0].get<std::optional<int>>(1), std::nullopt);
    EXPECT_EQ(got[1].get<std::int64_t>(2), L64::min());
    EXPECT_EQ(got[0].get<float>(3), -1e30f);
    EXPECT_TRUE(std::signbit(got[1].get<double>(4)));
    EXPECT_EQ(got[0].get<double>(4), 1e300);
    EXPECT_TRUE(got[1].get<bool>(5));
    EXPECT_EQ(got[1].get<pg::Bytes>(6), all);
    EXPECT_TRUE(got[0].is_null(6));
    EXPECT_EQ(got[1].get<std::string>(7), "first");
    EXPECT_EQ(got[0].get<std::string>(7), "");
  }
  // The same without the float4 column: every value of a direct kind, a set written at once.
  co_await c.execute("truncate p");
  using Direct = std::tuple<std::int16_t, std::optional<int>, std::int64_t, double, bool,
                            std::optional<pg::Bytes>, std::string>;
  std::vector<Direct> direct = {{L16::max(), 1, L64::min(), -0.0, true, all, "first"},
                                {L16::min(), std::nullopt, 3, 1e300, false, std::nullopt, ""},
                                {0, 7, 0, 0.5, true, pg::Bytes{}, std::string(300, 'x')}};
  co_await c.executemany(
      "insert into p (s, i, l, d, ok, raw, t) values ($1, $2, $3, $4, $5, $6, $7)", direct);
  auto back = co_await c.fetch("select s, i, l, d, ok, raw, t from p order by s");
  EXPECT_EQ(back.size(), 3u);
  if (back.size() == 3) {
    EXPECT_EQ(back[0].get<std::int16_t>(0), L16::min());
    EXPECT_EQ(back[0].get<std::optional<int>>(1), std::nullopt);
    EXPECT_EQ(back[0].get<std::int64_t>(2), 3);
    EXPECT_EQ(back[0].get<double>(3), 1e300);
    EXPECT_FALSE(back[0].get<bool>(4));
    EXPECT_TRUE(back[0].is_null(5));
    EXPECT_EQ(back[0].get<std::string>(6), "");
    EXPECT_EQ(back[1].get<std::optional<int>>(1), 7);
    EXPECT_EQ(back[1].get<pg::Bytes>(5), pg::Bytes{});
    EXPECT_EQ(back[1].get<std::string>(6), std::string(300, 'x'));
    EXPECT_EQ(back[2].get<std::int64_t>(2), L64::min());
    EXPECT_TRUE(std::signbit(back[2].get<double>(3)));
    EXPECT_EQ(back[2].get<pg::Bytes>(5), all);
    EXPECT_EQ(back[2].get<std::string>(6), "first");
  }
  const std::vector<double> reals = {0.1, -2.5};
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", reals), "{0.1,-2.5}");
  const std::vector<bool> flags = {true, false};
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", flags), "{t,f}");
  const std::vector<pg::Bytes> blobs = {pg::Bytes{"\x01\xff"}};
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", blobs), "{\"\\\\x01ff\"}");
  co_await c.close();
}

TEST_F(Pg, BinaryParametersOfEveryTypeRoundTrip) {
  run_bounded(binary_parameters(dsn()));
}

weave::Coro<void> text_bytes_and_friends(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  const std::string text = "it's \"quoted\", \\ back\tslash, caf\xc3\xa9, \xe2\x9c\x93";
  EXPECT_EQ(co_await echo<std::string>(c, "text", text), text);
  EXPECT_EQ(co_await echo<std::string>(c, "varchar", std::string()), "");
  pg::Bytes all;
  for (int i = 0; i < 256; ++i) all.data += static_cast<char>(i);
  EXPECT_EQ(co_await echo<pg::Bytes>(c, "bytea", all), all);
  EXPECT_EQ(co_await c.fetchval<std::string>("select 12345678901234567890.123456789::numeric"),
            "12345678901234567890.123456789");
  EXPECT_EQ(
      co_await echo<std::string>(c, "uuid", std::string("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
      "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(
      co_await c.fetchval<std::string>("select $1::jsonb ->> 'k'", std::string("{\"k\": \"v\"}")),
      "v");
  EXPECT_EQ(co_await echo<std::string>(c, "json", std::string("{\"a\": [1, 2]}")),
            "{\"a\": [1, 2]}");
  co_await c.close();
}

TEST_F(Pg, TextBytesNumericUuidAndJson) {
  run_bounded(text_bytes_and_friends(dsn()));
}

weave::Coro<void> times(std::string dsn) {
  using namespace std::chrono;
  pg::Connection c = co_await pg::connect(dsn);
  const sys_days first = sys_days(year(1) / 1 / 1), last = sys_days(year(9999) / 12 / 31);
  const sys_days bc = sys_days(year(-43) / 3 / 15);  // 44 BC
  EXPECT_EQ(co_await echo<sys_days>(c, "date", first), first);
  EXPECT_EQ(co_await echo<sys_days>(c, "date", last), last);
  EXPECT_EQ(co_await echo<sys_days>(c, "date", bc), bc);
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::date::text", bc), "0044-03-15 BC");
  const auto t =
      sys_days(year(2024) / 2 / 29) + hours(23) + minutes(59) + seconds(58) + microseconds(123456);
  using Micro = time_point<system_clock, microseconds>;
  EXPECT_EQ(co_await echo<Micro>(c, "timestamptz", Micro(t)), Micro(t));
  EXPECT_EQ(co_await echo<Micro>(c, "timestamp", Micro(t)), Micro(t));
  // The server's time zone is in the text it sends: +05:30 must come out as the same instant.
  co_await c.execute("set time zone 'Asia/Kolkata'");
  EXPECT_EQ(co_await echo<Micro>(c, "timestamptz", Micro(t)), Micro(t));
  EXPECT_EQ(co_await c.fetchval<Micro>("select '2000-01-01 05:30:00+05:30'::timestamptz"),
            Micro(sys_days(year(2000) / 1 / 1)));
  // Intervals: days and months count as 24 h and 30 days (asyncpg's timedelta does the same).
  EXPECT_EQ(co_await echo<microseconds>(c, "interval", microseconds(-90'061'000'001)),
            microseconds(-90'061'000'001));
  EXPECT_EQ(co_await c.fetchval<microseconds>("select '1 mon 2 days 03:00:00'::interval"),
            duration_cast<microseconds>(days(32) + hours(3)));
  EXPECT_EQ(co_await c.fetchval<microseconds>("select '-1 days +00:00:01'::interval"),
            duration_cast<microseconds>(-days(1) + seconds(1)));
  EXPECT_EQ(co_await c.fetchval<seconds>("select $1::interval", hours(1000000)), hours(1000000));
  co_await c.close();
}

TEST_F(Pg, DatesTimestampsAndIntervals) {
  run_bounded(times(dsn()));
}

// A time value carries its binary form: the big-endian microseconds (days for a date) since
// 2000-01-01 that PostgreSQL's binary format holds, for a parameter of its own type only.
TEST(PgTimes, TimeValuesHaveTheirBinaryFormForTheirOwnTypes) {
  using namespace std::chrono;
  using Micro = time_point<system_clock, microseconds>;
  const Micro pre_epoch = Micro(sys_days(year(1969) / 12 / 31)) + hours(23) + minutes(59) +
                          seconds(59) + microseconds(999999);
  const pg::Param point = pg::detail::encode(pre_epoch);
  for (unsigned type : {1114u, 1184u}) {  // timestamp, timestamptz
    const std::optional<pg::Param> b = pg::detail::time_in_binary(point, type);
    ASSERT_TRUE(b && b->binary && b->text);
    EXPECT_EQ(b->oid, type);
    const long long us = -946'684'800'000'001LL;  // one microsecond before 1970, from 2000
    std::string expect(8, '\0');
    for (int i = 0; i < 8; ++i) {
      expect[static_cast<std::size_t>(i)] =
          static_cast<char>(static_cast<unsigned long long>(us) >> (56 - 8 * i));
    }
    EXPECT_EQ(*b->text, expect);
  }
  EXPECT_FALSE(pg::detail::time_in_binary(point, 1082));  // a date parameter: the text
  EXPECT_FALSE(pg::detail::time_in_binary(point, 25));
  const pg::Param date = pg::detail::encode(sys_days(year(1999) / 12 / 31));
  const std::optional<pg::Param> d = pg::detail::time_in_binary(date, 1082);
  ASSERT_TRUE(d && d->text);
  EXPECT_EQ(*d->text, std::string("\xff\xff\xff\xff", 4));  // day -1
  EXPECT_FALSE(pg::detail::time_in_binary(date, 1114));     // midnight in which zone: the text
  const pg::Param interval = pg::detail::encode(microseconds(-1));
  const std::optional<pg::Param> i = pg::detail::time_in_binary(interval, 1186);
  ASSERT_TRUE(i && i->text);
  EXPECT_EQ(*i->text, std::string(8, '\xff') + std::string(8, '\0'));  // no days, no months
  EXPECT_FALSE(pg::detail::time_in_binary(pg::detail::encode("2000-01-01"), 1114));
  EXPECT_FALSE(pg::detail::time_in_binary(pg::detail::encode(std::optional<Micro>()), 1114));
}

// Time values into parameters whose types the server inferred (a prepare()d statement, and a
// cached statement after its first run) go in binary; elsewhere as text. Either way the same
// values arrive, far from UTC too: a time point into a timestamp is its UTC wall clock, not
// shifted by the session's time zone. Extremes of PostgreSQL's ranges, before 1970, to the
// microsecond (to std::chrono::year's last, 32767); infinity has no C++ value and reads as a
// DataError.
weave::Coro<void> binary_times(std::string dsn) {
  using namespace std::chrono;
  using Micro = time_point<system_clock, microseconds>;
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("set time zone 'Pacific/Kiritimati'");  // +14 (-10:40 before 1995)
  co_await c.execute(
      "create temp table tt(n int, ts timestamp, tz timestamptz, d date, iv interval)");
  const Micro t = Micro(sys_days(year(2024) / 2 / 29)) + hours(23) + minutes(59) + seconds(58) +
                  microseconds(123456);
  const Micro pre_epoch = Micro(sys_days(year(1969) / 12 / 31)) + hours(23) + minutes(59) +
                          seconds(59) + microseconds(999999);
  const Micro lowest = Micro(sys_days(year(-4712) / 11 / 24));  // 4713-11-24 BC
  const Micro highest = Micro(sys_days(year::max() / 12 / 31)) + hours(23) + minutes(59) +
                        seconds(59) + microseconds(999999);
  const std::vector<Micro> points = {t, pre_epoch, lowest, highest};
  const std::vector<sys_days> dates = {sys_days(year(-4712) / 1 / 1),
                                       sys_days(year(1969) / 12 / 31),
                                       sys_days(year::max() / 12 / 31)};
  const std::vector<microseconds> intervals = {microseconds(-90'061'000'001), microseconds(1),
                                               microseconds(6'000'000'000'000'000'001),
                                               microseconds(-6'000'000'000'000'000'001)};
  const std::string insert = "insert into tt values ($1, $2, $3, $4, $5)";
  pg::PreparedStatement prepared = co_await c.prepare(insert);
  int n = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const Micro p = points[i];
    const sys_days d = dates[i % dates.size()];
    const microseconds iv = intervals[i];
    co_await prepared.execute(++n, p, p, d, iv);   // binary
    co_await c.execute(insert, ++n, p, p, d, iv);  // the cache's first run: text
    co_await c.execute(insert, ++n, p, p, d, iv);  // its next runs: binary
  }
  const std::string select = "select ts, tz, d, iv, ts::text from tt where n = $1";
  pg::PreparedStatement read = co_await c.prepare(select);
  for (int k = 1; k <= n; ++k) {
    const std::size_t i = static_cast<std::size_t>(k - 1) / 3;
    for (int way = 0; way < 2; ++way) {  // prepared (binary results), cached (text, then binary)
      std::optional<pg::Row> row;
      if (way == 0) {
        row = co_await read.fetchrow(k);
      } else {
        row = co_await c.fetchrow(select, k);
      }
      if (!row) {
        ADD_FAILURE() << "no row " << k;
        co_return;
      }
      EXPECT_EQ(row->get<Micro>(0), points[i]) << k;
      EXPECT_EQ(row->get<Micro>(1), points[i]) << k;
      EXPECT_EQ(row->get<sys_days>(2), dates[i % dates.size()]) << k;
      EXPECT_EQ(row->get<microseconds>(3), intervals[i]) << k;
    }
  }
  // Not shifted: the timestamp holds the UTC wall clock.
  EXPECT_EQ(co_await c.fetchval<std::string>("select ts::text from tt where n = 1"),
            "2024-02-29 23:59:58.123456");
  EXPECT_EQ(co_await c.fetchval<std::string>("select ts::text from tt where n = 3"),
            "2024-02-29 23:59:58.123456");
  EXPECT_EQ(co_await c.fetchval<std::string>("select tz::text from tt where n = 1"),
            "2024-03-01 13:59:58.123456+14");
  EXPECT_EQ(co_await c.fetchval<std::string>("select ts::text from tt where n = 4"),
            "1969-12-31 23:59:59.999999");
  // A string into a timestamp parameter stays text: the server parses it (and its zone).
  pg::PreparedStatement stamp = co_await c.prepare("select $1::timestamp::text");
  EXPECT_EQ(co_await stamp.fetchval<std::string>("epoch"), "1970-01-01 00:00:00");
  EXPECT_EQ(co_await stamp.fetchval<std::string>(t), "2024-02-29 23:59:58.123456");
  // A date into a timestamp parameter keeps the text (midnight of the session's zone for a
  // timestamptz), and a time point into a date parameter too.
  pg::PreparedStatement day = co_await c.prepare("select $1::date::text, $2::timestamp::text");
  std::optional<pg::Row> both = co_await day.fetchrow(t, sys_days(year(1969) / 12 / 31));
  EXPECT_EQ(both ? both->get<std::string>(0) : "", "2024-02-29");
  EXPECT_EQ(both ? both->get<std::string>(1) : "", "1969-12-31 00:00:00");
  for (int run = 0; run < 2; ++run) {  // text, then binary
    EXPECT_THROW(co_await c.fetchval<Micro>("select 'infinity'::timestamp"), pg::DataError);
    EXPECT_THROW(co_await c.fetchval<Micro>("select '-infinity'::timestamptz"), pg::DataError);
    EXPECT_THROW(co_await c.fetchval<sys_days>("select 'infinity'::date"), pg::DataError);
  }
  co_await c.close();
}

TEST_F(Pg, TimeParametersGoInBinaryWhereTheServerTypedThem) {
  run_bounded(binary_times(dsn()));
}

weave::Coro<void> arrays_and_nulls(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  const std::vector<int> ints = {1, -2, std::numeric_limits<int>::max()};
  EXPECT_EQ(co_await echo<std::vector<int>>(c, "int4[]", ints), ints);
  const std::vector<std::int64_t> longs = {std::numeric_limits<std::int64_t>::min(), 0};
  EXPECT_EQ(co_await echo<std::vector<std::int64_t>>(c, "int8[]", longs), longs);
  const std::vector<std::string> texts = {"a",           "",     "with,comma", "with \"quote\"",
                                          "back\\slash", "NULL", "{brace}"};
  EXPECT_EQ(co_await echo<std::vector<std::string>>(c, "text[]", texts), texts);
  EXPECT_EQ(co_await echo<std::vector<int>>(c, "int4[]", std::vector<int>{}), std::vector<int>{});
  using OptInts = std::vector<std::optional<int>>;
  const OptInts holes = {1, std::nullopt, 3};
  EXPECT_EQ(co_await echo<OptInts>(c, "int4[]", holes), holes);
  EXPECT_THROW(co_await c.fetchval<std::vector<int>>("select array[1, null]::int4[]"),
               pg::DataError);
  // Integer arrays of every width into every integer vector; an element out of the vector's
  // range, or NULL, is a DataError in the binary format as in text.
  const std::vector<std::int16_t> shorts = {-32768, 0, 32767};
  EXPECT_EQ(co_await echo<std::vector<std::int16_t>>(c, "int2[]", shorts), shorts);
  const std::vector<int> widened = {-32768, 0, 32767};
  EXPECT_EQ(co_await second_run<std::vector<int>>(c, "select array[-32768, 0, 32767]::int2[]"),
            widened);
  const std::vector<std::int64_t> longer = {1, -2};
  EXPECT_EQ(co_await second_run<std::vector<std::int64_t>>(c, "select array[1, -2]::int4[]"),
            longer);
  for (int run = 0; run < 2; ++run) {
    EXPECT_THROW(co_await c.fetchval<std::vector<int>>("select array[1, 4294967296]::int8[]"),
                 pg::DataError);
    EXPECT_THROW(co_await c.fetchval<std::vector<std::int16_t>>("select array[1, 40000]::int4[]"),
                 pg::DataError);
    EXPECT_THROW(co_await c.fetchval<std::vector<std::int64_t>>("select array[null, 1]::int8[]"),
                 pg::DataError);
  }
  // NULL both ways, of every kind.
  EXPECT_EQ(co_await echo<std::optional<int>>(c, "int4", std::nullopt), std::nullopt);
  EXPECT_EQ(co_await echo<std::optional<std::string>>(c, "text", std::optional<std::string>()),
            std::nullopt);
  EXPECT_EQ(co_await echo<std::optional<double>>(c, "float8", std::optional<double>(2.5)), 2.5);
  auto row = co_await c.fetchrow("select null::int as answer, 7 as seven, null::text as t");
  EXPECT_TRUE(row->is_null(0));
  EXPECT_EQ(row->get<std::optional<int>>("answer"), std::nullopt);
  EXPECT_EQ(row->get<int>("seven"), 7);
  try {
    (void)row->get<int>("answer");
    ADD_FAILURE() << "NULL read into int";
  } catch (const pg::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("\"answer\""), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)row->get<std::string>(2), pg::DataError);
  EXPECT_THROW((void)row->get<int>("missing"), std::out_of_range);
  EXPECT_THROW((void)row->get<int>(3), std::out_of_range);
  EXPECT_EQ(row->column_name(1), "seven");
  co_await c.close();
}

TEST_F(Pg, ArraysAndNullsWithClearErrors) {
  run_bounded(arrays_and_nulls(dsn()));
}

weave::Coro<void> binary_array_parameters(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  // Integer, double, bool and bytea vectors go in the binary format, typed as the text format
  // typed them; text vectors stay text (the server infers their array type).
  const pg::Param ints = pg::detail::encode_params(std::vector<int>{1, 2})[0];
  EXPECT_TRUE(ints.binary);
  EXPECT_EQ(ints.oid, 1007u);
  EXPECT_EQ(pg::detail::encode_params(std::vector<std::optional<std::int64_t>>{})[0].oid, 1016u);
  EXPECT_FALSE(pg::detail::encode_params(std::vector<std::string>{"a"})[0].binary);
  // Every kind at its extremes, with NULL elements first, in the middle and last, and empty.
  using L16 = std::numeric_limits<std::int16_t>;
  using L64 = std::numeric_limits<std::int64_t>;
  const std::vector<std::int16_t> shorts = {L16::min(), -1, 0, L16::max()};
  EXPECT_EQ(co_await echo<std::vector<std::int16_t>>(c, "int2[]", shorts), shorts);
  const std::vector<std::int64_t> longs = {L64::min(), L64::max()};
  EXPECT_EQ(co_await echo<std::vector<std::int64_t>>(c, "int8[]", longs), longs);
  const std::vector<double> reals = {1.7976931348623157e308, 4.9e-324, -0.0,
                                     -std::numeric_limits<double>::infinity()};
  const auto got = co_await echo<std::vector<double>>(c, "float8[]", reals);
  EXPECT_EQ(got, reals);
  EXPECT_TRUE(got.size() == 4 && std::signbit(got[2]));
  const std::vector<double> nan = {std::nan("")};
  EXPECT_EQ(co_await c.fetchval<std::string>("select $1::text", nan), "{NaN}");
  const std::vector<bool> flags = {true, false, true};
  EXPECT_EQ(co_await echo<std::vector<bool>>(c, "bool[]", flags), flags);
  pg::Bytes all;
  for (int i = 0; i < 256; ++i) all.data += static_cast<char>(i);
  std::vector<pg::Bytes> blobs(3);
  blobs[0] = all;
  blobs[2].data = "\"{,}\\";
  EXPECT_EQ(co_await echo<std::vector<pg::Bytes>>(c, "bytea[]", blobs), blobs);
  using OptInts = std::vector<std::optional<int>>;
  const OptInts holes = {std::nullopt, 1, std::nullopt, std::numeric_limits<int>::min(),
                         std::nullopt};
  EXPECT_EQ(co_await echo<OptInts>(c, "int4[]", holes), holes);
  const OptInts null_only = {std::nullopt};
  EXPECT_EQ(co_await echo<OptInts>(c, "int4[]", null_only), null_only);
  const OptInts null_first = {std::nullopt, 2};
  EXPECT_EQ(co_await c.fetchval<std::string>("select array_dims($1)", null_first), "[1:2]");
  const std::vector<double> no_reals;
  const std::vector<bool> no_flags;
  const std::vector<int> one_three = {1, 3}, one_minus_two = {1, -2};
  EXPECT_EQ(co_await echo<std::vector<double>>(c, "float8[]", no_reals), no_reals);
  EXPECT_EQ(co_await c.fetchval<int>("select cardinality($1)", no_flags), 0);
  EXPECT_TRUE(co_await c.fetchval<bool>("select 3 = any($1)", one_three));
  EXPECT_TRUE(
      co_await c.fetchval<bool>("select $1::int4[] is null", std::optional<std::vector<int>>()));
  const std::optional<std::vector<int>> four = std::vector<int>{4};
  EXPECT_EQ(co_await c.fetchval<std::vector<int>>("select $1::int4[]", four), *four);
  // A statement prepared for another array type gets the array as text, which the server
  // converts as before.
  pg::PreparedStatement wider = co_await c.prepare("select $1::int8[]");
  const std::vector<std::int64_t> widened = {1, -2};
  EXPECT_EQ(co_await wider.fetchval<std::vector<std::int64_t>>(one_minus_two), widened);
  using OptLongs = std::vector<std::optional<std::int64_t>>;
  const OptLongs wide_holes = {std::nullopt, 1, std::nullopt, std::numeric_limits<int>::min(),
                               std::nullopt};
  EXPECT_EQ(co_await wider.fetchval<OptLongs>(holes), wide_holes);
  pg::PreparedStatement texts = co_await c.prepare("select $1::text[]::text");
  const std::string digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : all.data) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  EXPECT_EQ(co_await texts.fetchval<std::string>(blobs),
            "{\"\\\\x" + hex + "\",\"\\\\x\",\"\\\\x227b2c7d5c\"}");
  co_await c.close();
}

TEST_F(Pg, ArrayParametersGoInTheBinaryFormat) {
  run_bounded(binary_array_parameters(dsn()));
}

weave::Coro<void> binary_formats(std::string dsn) {
  using namespace std::chrono;
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("set time zone 'UTC'");
  // Read as std::string, a binary value reads as the text format shows it (timestamptz in UTC).
  const std::vector<std::string> exprs = {"42::int2",
                                          "(-2147483648)::int4",
                                          "9223372036854775807::int8",
                                          "1.5::float8",
                                          "'-Infinity'::float8",
                                          "'NaN'::float4",
                                          "true",
                                          "26::oid",
                                          "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
                                          "'2024-02-29'::date",
                                          "'0044-03-15 BC'::date",
                                          "'2024-02-29 23:59:58.5'::timestamp",
                                          "'2024-02-29 23:59:58'::timestamp",
                                          "'2024-02-29 23:59:58.000001+00'::timestamptz",
                                          "'{\"k\": [1, 2]}'::jsonb",
                                          "'{\"k\": [1, 2]}'::json",
                                          "'x'::\"char\"",
                                          "'caf\xc3\xa9'::name",
                                          "'ab  '::char(4)",
                                          "'\\xdeadbeef'::bytea"};
  for (const std::string& e : exprs) {
    const std::string sql = "select " + e;
    std::optional<pg::Row> text = co_await c.fetchrow(sql);
    std::optional<pg::Row> binary = co_await c.fetchrow(sql);
    if (!text || !binary) {
      ADD_FAILURE() << e << ": no row";
      continue;
    }
    EXPECT_FALSE(text->field(0).binary) << e;
    EXPECT_TRUE(binary->field(0).binary) << e;
    EXPECT_EQ(binary->get<std::string>(0), text->get<std::string>(0)) << e;
  }
  // A "char" into a C++ char: its one byte in both formats, NUL and high-bit bytes included.
  for (const auto& [expr, byte] : std::vector<std::pair<std::string, char>>{
           {"'x'::\"char\"", 'x'}, {"''::\"char\"", '\0'}, {"(-56)::int4::\"char\"", '\xc8'}}) {
    const std::string sql = "select " + expr;
    std::optional<pg::Row> text = co_await c.fetchrow(sql);
    std::optional<pg::Row> binary = co_await c.fetchrow(sql);
    EXPECT_EQ(text ? text->get<char>(0) : '?', byte) << expr;
    EXPECT_EQ(binary ? binary->get<char>(0) : '?', byte) << expr;
  }
  EXPECT_THROW(co_await second_run<char>(c, "select 'ab'::text"), pg::DataError);
  EXPECT_THROW(co_await c.fetchval<char>("select 'cd'::text"), pg::DataError);
  // Conversions between the numeric types, bounds checked as the text format's are.
  EXPECT_EQ(co_await second_run<double>(c, "select 7::int4"), 7.0);
  EXPECT_EQ(co_await second_run<double>(c, "select 0.5::float4"), 0.5);
  EXPECT_EQ(co_await second_run<std::int64_t>(c, "select (-32768)::int2"), -32768);
  EXPECT_EQ(co_await second_run<std::int64_t>(c, "select 4294967295::oid"), 4294967295LL);
  EXPECT_THROW(co_await second_run<std::int16_t>(c, "select 40000::int4"), pg::DataError);
  EXPECT_THROW(co_await second_run<std::int32_t>(c, "select 4294967295::oid"), pg::DataError);
  EXPECT_THROW(co_await second_run<float>(c, "select 1e300::float8"), pg::DataError);
  EXPECT_THROW(co_await second_run<int>(c, "select 1.5::float8"), pg::DataError);
  EXPECT_THROW(co_await second_run<bool>(c, "select 1::int4"), pg::DataError);
  EXPECT_THROW(co_await second_run<pg::Bytes>(c, "select 1::int4"), pg::DataError);
  // Infinite times have no C++ value in either format.
  using Micro = time_point<system_clock, microseconds>;
  EXPECT_THROW(co_await second_run<Micro>(c, "select 'infinity'::timestamptz"), pg::DataError);
  EXPECT_THROW(co_await second_run<Micro>(c, "select '-infinity'::timestamp"), pg::DataError);
  EXPECT_THROW(co_await second_run<sys_days>(c, "select 'infinity'::date"), pg::DataError);
  EXPECT_EQ(co_await second_run<Micro>(c, "select '4713-01-01 BC'::timestamp"),
            Micro(sys_days(year(-4712) / 1 / 1)));
  EXPECT_EQ(co_await second_run<Micro>(c, "select '9999-12-31 23:59:59.999999'::timestamp"),
            Micro(sys_days(year(9999) / 12 / 31) + hours(23) + minutes(59) + seconds(59) +
                  microseconds(999999)));
  EXPECT_EQ(co_await second_run<microseconds>(c,
                                              "select '-1 years 2 mons -3 days 04:05:06.7'"
                                              "::interval"),
            duration_cast<microseconds>(days(-360 + 60 - 3) + hours(4) + minutes(5) + seconds(6) +
                                        milliseconds(700)));
  // Arrays: NULL elements, the empty array, the extremes, text elements unescaped.
  using OptLongs = std::vector<std::optional<std::int64_t>>;
  const OptLongs extremes = {std::numeric_limits<std::int64_t>::min(), std::nullopt,
                             std::numeric_limits<std::int64_t>::max()};
  EXPECT_EQ(co_await second_run<OptLongs>(
                c, "select array[-9223372036854775808, null, 9223372036854775807]::int8[]"),
            extremes);
  const std::vector<int> none;
  EXPECT_EQ(co_await second_run<std::vector<int>>(c, "select '{}'::int4[]"), none);
  const std::vector<std::string> texts = {"a\"b", "NULL", "", "c,d"};
  EXPECT_EQ(co_await second_run<std::vector<std::string>>(
                c, "select array['a\"b', 'NULL', '', 'c,d']::text[]"),
            texts);
  const std::vector<double> doubles = {1.5, 2};
  EXPECT_EQ(co_await second_run<std::vector<double>>(c, "select array[1.5, 2]::float8[]"), doubles);
  const std::vector<bool> bools = {true, false};
  EXPECT_EQ(co_await second_run<std::vector<bool>>(c, "select array[true, false]"), bools);
  EXPECT_THROW(co_await second_run<std::vector<int>>(c, "select array[1, null]::int4[]"),
               pg::DataError);
  EXPECT_THROW(co_await second_run<std::vector<int>>(c, "select '{{1,2},{3,4}}'::int4[]"),
               pg::DataError);
  EXPECT_THROW(co_await second_run<std::string>(c, "select array[1]::int4[]"), pg::DataError);
  EXPECT_EQ(co_await second_run<std::optional<int>>(c, "select null::int4"), std::nullopt);
  EXPECT_THROW(co_await second_run<int>(c, "select null::int4"), pg::DataError);
  // A column type without a binary decoder keeps the whole statement in text.
  EXPECT_EQ(co_await second_run<std::string>(c, "select 1.50::numeric", false), "1.50");
  EXPECT_EQ(co_await second_run<int>(c, "select 3::int4, 1::numeric", false), 3);
  EXPECT_EQ(co_await second_run<std::string>(c, "select '10.0.0.1'::inet", false), "10.0.0.1");
  // prepare() describes its statement: binary from its first run.
  pg::PreparedStatement ps = co_await c.prepare("select $1::int8 * 2, $2::text");
  std::optional<pg::Row> row = co_await ps.fetchrow(std::int64_t(21), "x");
  EXPECT_TRUE(row && row->field(0).binary && row->field(1).binary);
  if (row) {
    EXPECT_EQ(row->get<std::int64_t>(0), 42);
    EXPECT_EQ(row->get<std::string>(1), "x");
  }
  co_await c.close();
  // Without a statement cache every statement reads text.
  pg::ConnectOptions uncached;
  uncached.statement_cache_size = 0;
  pg::Connection u = co_await pg::connect(dsn, uncached);
  EXPECT_EQ(co_await second_run<int>(u, "select 8::int4", false), 8);
  co_await u.close();
}

TEST_F(Pg, BinaryResultsReadAsTheTextFormatDoes) {
  run_bounded(binary_formats(dsn()));
}

weave::Coro<void> rows_and_tags(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  co_await c.execute("create temp table t(id int primary key, name text)");
  EXPECT_EQ(co_await c.execute("insert into t values ($1, $2), ($3, $4)", 1, "one", 2, "two"),
            "INSERT 0 2");
  auto rows = co_await c.fetch("select id, name from t order by id");
  EXPECT_EQ(rows.size(), 2u);
  if (rows.size() != 2) co_return;
  EXPECT_EQ(rows[1].get<int>("id"), 2);
  EXPECT_EQ(rows[1].get<std::string>(1), "two");
  EXPECT_FALSE(co_await c.fetchrow("select * from t where id = $1", 3));
  EXPECT_THROW(co_await c.fetchval<int>("select id from t where id = 3"), pg::DataError);
  EXPECT_EQ(co_await c.execute("update t set name = 'x'; delete from t where id = 1"), "DELETE 1");
  co_await c.close();
}

TEST_F(Pg, FetchFetchrowFetchvalAndCommandTags) {
  run_bounded(rows_and_tags(dsn()));
}

// Text read as std::string_view points into the result, in both formats; a type whose value is
// no text (an integer, bytea) refuses it in both, so that a statement's first (text) run and its
// next (binary) runs agree.
weave::Coro<void> text_views(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  const std::string sql =
      "select 'name'::name, 'x'::varchar, null::text, '{\"k\": 1}'::jsonb, "
      "'{\"a\":2}'::json, 7, 'ab'::bytea, null::text";
  for (int run = 0; run < 2; ++run) {
    std::optional<pg::Row> row = co_await c.fetchrow(sql);
    if (!row) {
      ADD_FAILURE() << "no row";
      co_return;
    }
    EXPECT_EQ(row->field(0).binary, run == 1);
    EXPECT_EQ(row->get<std::string_view>(0), "name");
    EXPECT_EQ(row->get<std::string_view>(1), "x");
    EXPECT_EQ(row->get<std::optional<std::string_view>>(2), std::nullopt);
    EXPECT_EQ(row->get<std::string_view>(3), "{\"k\": 1}");
    EXPECT_EQ(row->get<std::string_view>(4), "{\"a\":2}");
    EXPECT_THROW(row->get<std::string_view>(5), pg::DataError);
    EXPECT_THROW(row->get<std::string_view>(6), pg::DataError);
    EXPECT_THROW(row->get<std::string_view>(7), pg::DataError);
    EXPECT_EQ(row->get<std::optional<std::string_view>>(7), std::nullopt);
  }
  // A type without a binary decoder (numeric) keeps its statement in text: viewed as it is.
  (void)co_await c.fetch("select '1.50'::numeric");
  std::vector<pg::Row> numeric = co_await c.fetch("select '1.50'::numeric");
  EXPECT_FALSE(numeric.at(0).field(0).binary);
  EXPECT_EQ(numeric.at(0).get<std::string_view>(0), "1.50");
  co_await c.close();
}

TEST_F(Pg, TextReadAsAStringViewWithoutACopy) {
  run_bounded(text_views(dsn()));
}

// A NULL and an empty value are told apart in every kind of column (a fixed-size binary type, a
// NUL-free text type, a type whose length is asked), in both formats, in the first row and the
// later ones, also with more columns than a result keeps inline.
weave::Coro<void> nulls_and_empty_values(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  const std::string sql =
      "select i as n, case when i % 2 = 0 then null else i end::int4, "
      "case when i % 2 = 1 then null else '' end::text, "
      "case when i % 3 = 0 then null else '' end::bytea, "
      "case when i = 1 then null else 'n' || i end::name, "
      "case when i = 2 then null else (i > 2) end, "
      "case when i = 3 then '' else null end::varchar "
      "from generate_series(1, 4) as s(i) order by 1";
  for (int run = 0; run < 2; ++run) {
    std::vector<pg::Row> rows = co_await c.fetch(sql);
    EXPECT_EQ(rows.size(), 4u);
    if (rows.size() != 4) co_return;
    for (int i = 1; i <= 4; ++i) {
      const pg::Row& r = rows[static_cast<std::size_t>(i - 1)];
      EXPECT_EQ(r.field(0).binary, run == 1);
      EXPECT_EQ(r.get<int>(0), i);
      EXPECT_EQ(r.get<std::optional<int>>(1), i % 2 == 0 ? std::nullopt : std::optional<int>(i));
      EXPECT_EQ(r.get<std::optional<std::string>>(2),
                i % 2 == 1 ? std::nullopt : std::optional<std::string>(""));
      EXPECT_EQ(r.is_null(3), i % 3 == 0) << i;
      if (i % 3 != 0) {
        EXPECT_EQ(r.get<pg::Bytes>(3), pg::Bytes{});
      }
      EXPECT_EQ(r.get<std::optional<std::string>>(4),
                i == 1 ? std::nullopt : std::optional<std::string>("n" + std::to_string(i)));
      EXPECT_EQ(r.get<std::optional<bool>>(5), i == 2 ? std::nullopt : std::optional<bool>(i > 2));
      EXPECT_EQ(r.get<std::optional<std::string_view>>(6),
                i == 3 ? std::optional<std::string_view>("") : std::nullopt);
    }
  }
  co_await c.close();
}

TEST_F(Pg, NullsAndEmptyValuesApartInEveryKindOfColumn) {
  run_bounded(nulls_and_empty_values(dsn()));
}

// Row::get reads binary columns of the fixed-size types and of the text types straight from
// libpq's bytes, without a Field. It must read what the Field decoder reads, raise what that
// raises (NULL into a non-optional, a value out of range for the type asked, a type it does not
// read) and leave every other pair to it.
template <class T>
void expect_direct_read_as_decoded(const pg::Row& r, std::size_t column) {
  std::optional<T> decoded;
  bool decoder_threw = false;
  try {
    T out{};
    pg::detail::decode(r.field(column), out);
    decoded = out;
  } catch (const pg::DataError&) {
    decoder_threw = true;
  }
  if (decoder_threw) {
    EXPECT_THROW((void)r.get<T>(column), pg::DataError) << r.column_name(column);
  } else {
    EXPECT_EQ(r.get<T>(column), *decoded) << r.column_name(column);
  }
}

weave::Coro<void> direct_reads(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  const std::string sql =
      "select v.* from (values "
      "(true, 'a'::\"char\", '-32768'::int2, '-2147483648'::int4, '-9223372036854775808'::int8, "
      " 4294967295::oid, '-1.5'::float4, 1e300::float8, 'name'::name, 'text'::text, "
      " 'v'::varchar, 'bp'::bpchar, 1), "
      "(false, ''::\"char\", 32767::int2, 2147483647::int4, 9223372036854775807::int8, 0::oid, "
      " 'Infinity'::float4, '-0'::float8, ''::name, ''::text, ''::varchar, ''::bpchar, 2), "
      "(null, null, null, null, null, null, null, null, null, null, null, null, 3)) "
      "as v(b, ch, i2, i4, i8, o, f4, f8, nm, tx, vc, bp, n) order by n";
  for (int run = 0; run < 2; ++run) {
    std::vector<pg::Row> rows = co_await c.fetch(sql);
    EXPECT_EQ(rows.size(), 3u);
    for (const pg::Row& r : rows) {
      EXPECT_EQ(r.field(0).binary, run == 1);
      for (std::size_t i = 0; i < 12; ++i) {
        expect_direct_read_as_decoded<bool>(r, i);
        expect_direct_read_as_decoded<char>(r, i);
        expect_direct_read_as_decoded<std::int16_t>(r, i);
        expect_direct_read_as_decoded<std::int32_t>(r, i);
        expect_direct_read_as_decoded<std::int64_t>(r, i);
        expect_direct_read_as_decoded<double>(r, i);
        expect_direct_read_as_decoded<float>(r, i);
        expect_direct_read_as_decoded<std::string>(r, i);
        expect_direct_read_as_decoded<std::string_view>(r, i);
      }
    }
    if (rows.size() == 3) {
      // The values themselves, so that the comparison above is not of two wrong reads.
      EXPECT_EQ(rows[0].get<bool>(0), true);
      EXPECT_EQ(rows[0].get<char>(1), 'a');
      EXPECT_EQ(rows[1].get<char>(1), '\0');
      EXPECT_EQ(rows[0].get<std::int16_t>(2), -32768);
      EXPECT_EQ(rows[1].get<std::int32_t>(3), 2147483647);
      EXPECT_EQ(rows[0].get<std::int64_t>(4), std::numeric_limits<std::int64_t>::min());
      EXPECT_EQ(rows[0].get<std::int64_t>(5), 4294967295);
      EXPECT_THROW((void)rows[0].get<std::int32_t>(5), pg::DataError);  // oid out of range
      EXPECT_THROW((void)rows[0].get<std::int16_t>(3), pg::DataError);
      EXPECT_EQ(rows[0].get<float>(6), -1.5f);
      EXPECT_EQ(rows[1].get<float>(6), std::numeric_limits<float>::infinity());
      EXPECT_EQ(rows[0].get<double>(7), 1e300);
      EXPECT_TRUE(std::signbit(rows[1].get<double>(7)));
      EXPECT_EQ(rows[0].get<std::string_view>(8), "name");
      EXPECT_EQ(rows[0].get<std::string>(9), "text");
      EXPECT_EQ(rows[0].get<std::string>(11), "bp");
      EXPECT_EQ(rows[1].get<std::string>(9), "");
      for (std::size_t i = 0; i < 12; ++i) {
        EXPECT_TRUE(rows[2].is_null(i));
        EXPECT_FALSE(rows[1].is_null(i));
      }
      try {
        (void)rows[2].get<std::int64_t>(4);
        ADD_FAILURE() << "NULL read into an int64";
      } catch (const pg::DataError& e) {
        EXPECT_NE(std::string(e.what()).find("i8"), std::string::npos) << e.what();
      }
      EXPECT_THROW((void)rows[0].get<bool>(12 + 1), std::out_of_range);
    }
  }
  co_await c.close();
}

TEST_F(Pg, DirectReadsMatchTheFieldDecoder) {
  run_bounded(direct_reads(dsn()));
}

// Rows share their result: a copy, a moved row and a row assigned over another keep it alive
// after the vector that held them is gone.
weave::Coro<void> rows_outlive_their_vector(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  std::optional<pg::Row> kept, moved, assigned;
  {
    auto rows = co_await c.fetch("select i, 'v' || i from generate_series(1, 1000) as i");
    EXPECT_EQ(rows.size(), 1000u);
    if (rows.size() != 1000) co_return;
    kept = rows[999];
    moved = std::move(rows[10]);
    pg::Row other = rows[20];
    other = rows[500];
    assigned = other;
    rows.erase(rows.begin(), rows.begin() + 600);
    EXPECT_EQ(rows.front().get<int>(0), 601);
  }
  auto again = co_await c.fetch("select 1");  // the freed memory in use again
  EXPECT_EQ(again.at(0).get<int>(0), 1);
  EXPECT_EQ(kept->get<int>(0), 1000);
  EXPECT_EQ(kept->get<std::string_view>(1), "v1000");
  EXPECT_EQ(moved->get<int>(0), 11);
  EXPECT_EQ(assigned->get<std::string>(1), "v501");
  co_await c.close();
}

TEST_F(Pg, RowsKeepTheirResultAliveWhenCopiedMovedOrAssigned) {
  run_bounded(rows_outlive_their_vector(dsn()));
}

// ---- errors ------------------------------------------------------------------------------------

template <class Body>
weave::Coro<std::string> sqlstate_of(Body body) {
  try {
    co_await body();
  } catch (const pg::PostgresError& e) {
    co_return e.sqlstate();
  }
  co_return "no error";
}

weave::Coro<void> server_errors(std::string dsn) {
  pg::Connection c = co_await pg::connect(dsn);
  auto missing = [&]() -> weave::Coro<void> { co_await c.fetch("select * from no_such_table"); };
  EXPECT_EQ(co_await sqlstate_of(missing), "42P01");
  auto syntax = [&]() -> weave::Coro<void> { co_await c.execute("selec 1"); };
  EXPECT_EQ(co_await sqlstate_of(syntax), "42601");
  auto bad_param = [&]() -> weave::Coro<void> { co_await c.fetch("select $1::int", "abc"); };
  EXPECT_EQ(co_await sqlstate_of(bad_param), "22P02");
  auto too_few = [&]() -> weave::Coro<void> { co_await c.fetch("select $1::int + $2::int", 1); };
  EXPECT_EQ(co_await sqlstate_of(too_few), "08P01");
  co_await c.execute("create temp table u(id int primary key)");
  co_await c.execute("insert into u values (1)");
  try {
    co_await c.execute("insert into u values ($1)", 1);
    ADD_FAILURE() << "no unique violation";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
    EXPECT_EQ(e.detail(), "Key (id)=(1) already exists.");
    EXPECT_EQ(e.severity(), "ERROR");
  }
  try {
    co_await c.execute(
        "do $$ begin raise exception 'boom' using detail = 'the detail', hint = 'the hint', "
        "errcode = 'P0042'; end $$");
    ADD_FAILURE() << "no exception raised";
  } catch (const pg::PostgresError& e) {
    EXPECT_EQ(e.sqlstate(), "P0042");
    EXPECT_EQ(e.message(), "boom");
    EXPECT_EQ(e.detail(), "the detail");
    EXPECT_EQ(e.hint(), "the hint");
  }
  EXPECT_EQ(co_await c.fetchval<int>("select 5"), 5);  // usable after every error
  co_await c.close();
}

TEST_F(Pg, ServerErrorsCarryTheirSqlstateDetailAndHint) {
  run_bounded(server_errors(dsn()));
}

weave::Coro<void> lost_mid_query(std::string dsn) {
  pg::Connection victim = co_await pg::connect(dsn);
  pg::Connection killer = co_await pg::connect(dsn);
  const int pid = victim.get_server_pid();
  auto sleeping = weave::create_task(victim.execute("select pg_sleep(10)"));
  co_await weave::sleep(50ms);
  EXPECT_TRUE(co_await killer.fetchval<bool>("select pg_terminate_backend($1)", pid));
  EXPECT_THROW(co_await sleeping, pg::ConnectionDoesNotExistError);
  EXPECT_TRUE(victim.is_closed());
  EXPECT_THROW(co_await victim.fetchval<int>("select 1"), pg::ConnectionDoesNotExistError);
  // An idle connection whose backend goes away notices it without being asked.
  pg::Connection idle = co_await pg::connect(dsn);
  EXPECT_TRUE(
      co_await killer.fetchval<bool>("select pg_terminate_backend($1)", idle.get_server_pid()));
  co_await weave_test::until([&] { return idle.is_closed(); });
  EXPECT_TRUE(idle.is_closed());
  co_await killer.close();
}

TEST_F(Pg, ALostConnectionIsConnectionDoesNotExistError) {
  run_bounded(lost_mid_query(dsn()));
}

}  // namespace
