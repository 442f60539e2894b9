// weave::pg's load client for the peer harness's pg-bench.sh (MagicStack/pgbench's queries):
// a pool of CONC connections and CONC workers, each keeping its connection and one operation
// in flight. After WARMUP seconds it prints "start", counts the operations completed in the
// next SECS seconds, checks the rows it got (every value is decoded, as the Python drivers do)
// and, for batch/copy, the target table's row count, then prints
// "queries=N seconds=S total=T ...". Any error or wrong result exits with 1.
//
// usage: pg_client DSN QUERY SECS CONC [WARMUP]
//   QUERY: select1 pgtype series bytea intarray batch copy

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "weave/pg.hpp"
#include "weave/weave.hpp"

namespace {
namespace pg = weave::pg;
using Row7 = std::tuple<int, int, int, std::string, double, int, std::string>;

const std::map<std::string, std::string> kSql = {
    {"select1", "SELECT 1+1"},
    {"pgtype",
     "SELECT typname, typnamespace, typowner, typlen, typbyval, typcategory, typispreferred, "
     "typisdefined, typdelim, typrelid, typelem, typarray FROM pg_type "
     "WHERE typtypmod = $1 AND typisdefined = $2"},
    {"series", "SELECT i FROM generate_series(1, 1000) AS i"},
    {"bytea", "SELECT b FROM _bytes"},
    {"intarray", "SELECT a FROM _arrays"},
    {"batch", "INSERT INTO _batch (a, b, c, d, e, f, g) VALUES ($1, $2, $3, $4, $5, $6, $7)"},
};
constexpr std::size_t kBatchRows = 1000, kCopyRows = 10000;

enum class Q { select1, pgtype, series, bytea, intarray, batch, copy };
const std::map<std::string, Q> kQueries = {
    {"select1", Q::select1},   {"pgtype", Q::pgtype}, {"series", Q::series}, {"bytea", Q::bytea},
    {"intarray", Q::intarray}, {"batch", Q::batch},   {"copy", Q::copy}};

struct Load {
  std::string query;
  Q kind = Q::select1;
  std::string sql;  // the query's text, looked up once
  std::int64_t pgtype_rows = 0;
  std::vector<Row7> rows;  // batch and copy
  bool counting = false, stop = false;
  std::int64_t counted = 0, total = 0;
};

void require(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": wrong result");
}

void check(const Load& load, const std::vector<pg::Row>& rows) {
  const std::string& q = load.query;
  if (load.kind == Q::select1) {
    require(rows.size() == 1 && rows[0].get<int>(0) == 2, q);
  } else if (load.kind == Q::pgtype) {
    require(static_cast<std::int64_t>(rows.size()) == load.pgtype_rows, q);
    for (const auto& r : rows) {
      require(!r.get<std::string_view>(0).empty(), q);  // typname, without a copy
      for (int i : {1, 2, 9, 10, 11}) (void)r.get<std::int64_t>(i);
      (void)r.get<std::int16_t>(3);
      (void)r.get<bool>(4);
      (void)r.get<char>(5);  // "char": one byte, as the C client and tokio-postgres read it
      (void)r.get<bool>(6);
      require(r.get<bool>(7), q);
      (void)r.get<char>(8);
    }
  } else if (load.kind == Q::series) {
    require(rows.size() == 1000, q);
    int expect = 1;
    for (const auto& r : rows) require(r.get<int>(0) == expect++, q);
  } else if (load.kind == Q::bytea) {
    require(rows.size() == 100, q);
    for (const auto& r : rows) require(r.get<pg::Bytes>(0).data.size() == 1024, q);
  } else if (load.kind == Q::intarray) {
    require(rows.size() == 100, q);
    for (const auto& r : rows) {
      int sum = 0;
      for (int v : r.get<std::vector<int>>(0)) sum += v;
      require(sum == 5050, q);
    }
  }
}

weave::Coro<void> operation(Load& load, pg::Connection& conn) {
  if (load.kind == Q::batch) {
    co_await conn.executemany(load.sql, load.rows);
  } else if (load.kind == Q::copy) {
    std::vector<std::string> columns = {"a", "b", "c", "d", "e", "f", "g"};
    std::string tag = co_await conn.copy_records_to_table("_copy", load.rows, columns);
    require(tag == "COPY 10000", "copy");
  } else if (load.kind == Q::pgtype) {
    check(load, co_await conn.fetch(load.sql, -1, true));
  } else {
    check(load, co_await conn.fetch(load.sql));
  }
}

weave::Coro<void> worker(Load& load, pg::Pool& pool) {
  pg::PoolConnection held = co_await pool.acquire();
  while (!load.stop) {
    co_await operation(load, *held);
    ++load.total;
    if (load.counting) ++load.counted;
  }
  co_await held.release();
}

weave::Coro<std::int64_t> table_rows(pg::Pool& pool, const std::string& query) {
  if (query != "batch" && query != "copy") co_return 0;
  const std::string sql = "SELECT count(*) FROM _" + query;
  co_return co_await pool.fetchval<std::int64_t>(sql);
}

weave::Coro<void> bench(std::string dsn, std::string query, double secs, int conc, double warmup) {
  using namespace std::chrono;
  Load load;
  load.query = query;
  load.kind = kQueries.at(query);
  if (query != "copy") load.sql = kSql.at(query);
  if (query == "batch" || query == "copy") {
    load.rows.assign(query == "batch" ? kBatchRows : kCopyRows,
                     Row7{10, 11, 10, "TESTTESTTEST", 10.333, 12341234, "123412341234"});
  }
  pg::PoolOptions opts;
  opts.min_size = opts.max_size = static_cast<std::size_t>(conc);
  pg::Pool pool = co_await pg::create_pool(dsn, opts);
  load.pgtype_rows = co_await pool.fetchval<std::int64_t>(
      "SELECT count(*) FROM pg_type WHERE typtypmod = -1 AND typisdefined");
  const std::int64_t rows0 = co_await table_rows(pool, query);
  std::vector<weave::Task<void>> workers;
  for (int i = 0; i < conc; ++i) workers.push_back(weave::create_task(worker(load, pool)));
  co_await weave::sleep(duration_cast<weave::Clock::duration>(duration<double>(warmup)));
  load.counting = true;
  const auto t0 = weave::Clock::now();
  std::puts("start");
  std::fflush(stdout);
  co_await weave::sleep(duration_cast<weave::Clock::duration>(duration<double>(secs)));
  const double seconds = duration<double>(weave::Clock::now() - t0).count();
  load.counting = false;
  load.stop = true;
  for (auto& w : workers) co_await w;  // raises the first worker error
  if (query == "batch" || query == "copy") {
    const std::int64_t gained = co_await table_rows(pool, query) - rows0;
    const auto per = static_cast<std::int64_t>(query == "batch" ? kBatchRows : kCopyRows);
    require(gained == load.total * per, query + " row count");
  }
  co_await pool.close();
  std::printf("queries=%lld seconds=%.3f total=%lld conc=%d query=%s driver=weave::pg\n",
              static_cast<long long>(load.counted), seconds, static_cast<long long>(load.total),
              conc, query.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || (kSql.count(argv[2]) == 0 && std::string(argv[2]) != "copy")) {
    std::fprintf(stderr, "usage: %s DSN QUERY SECS CONC [WARMUP]\n", argv[0]);
    return 2;
  }
  try {
    weave::run(bench(argv[1], argv[2], std::atof(argv[3]), std::atoi(argv[4]),
                     argc > 5 ? std::atof(argv[5]) : 1.0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pg_client %s: %s\n", argv[2], e.what());
    return 1;
  }
  return 0;
}
