// The tour's PostgreSQL section: the seed's example of why async matters, on a real server.
// Two 50 ms queries take 100 ms one after the other and 50 ms gathered on a pool; 100 of them
// on a pool of 10 take about 0.5 s, not 5 s. The server is WEAVE_PG_DSN's, or a throw-away
// cluster started here (initdb + pg_ctl in a temp directory, as `postgres` when run as root).

#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sections.hpp"
#include "weave/pg.hpp"

namespace {
namespace fs = std::filesystem;

/// A cluster in a temp directory; stopped and removed by stop().
struct Cluster {
  fs::path bin, data;
  std::string dsn;
};

std::optional<fs::path> server_binaries() {
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    if (fs::exists(e.path() / "bin" / "initdb") && fs::exists(e.path() / "bin" / "pg_ctl")) {
      found.push_back(e.path() / "bin");
    }
  }
  if (found.empty()) return std::nullopt;
  std::sort(found.begin(), found.end());
  return found.back();
}

/// Runs `program args...` as the cluster's owner; true when it exits with 0.
weave::Coro<bool> run_as_owner(std::string program, std::vector<std::string> args) {
  if (::geteuid() == 0) {
    args.insert(args.begin(), {"-u", "postgres", "--", program});
    program = "runuser";
  }
  weave::SubprocessOptions opts;
  opts.stdout_ = weave::DEVNULL;
  opts.stderr_ = weave::DEVNULL;
  auto proc = co_await weave::create_subprocess_exec(program, args, opts);
  co_return co_await proc.wait() == 0;
}

weave::Coro<std::uint16_t> free_port() {
  auto probe = co_await weave::start_server(
      [](weave::StreamReader, weave::StreamWriter) -> weave::Coro<void> { co_return; }, "127.0.0.1",
      0);
  const auto port = probe.sockets().at(0).getsockname().port();
  probe.close();
  co_await probe.wait_closed();
  co_return port;
}

/// Starts a cluster, or says why it cannot.
weave::Coro<std::optional<Cluster>> start_cluster(std::string& why) {
  auto bin = server_binaries();
  if (!bin) {
    why = "the PostgreSQL server (initdb, pg_ctl) is not installed";
    co_return std::nullopt;
  }
  struct passwd* owner = ::geteuid() == 0 ? ::getpwnam("postgres") : nullptr;
  if (::geteuid() == 0 && owner == nullptr) {
    why = "running as root needs the `postgres` user, which the postgresql package creates";
    co_return std::nullopt;
  }
  char tmpl[] = "/tmp/weave-tour-pg.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    why = "no temp directory";
    co_return std::nullopt;
  }
  Cluster c{*bin, tmpl, {}};
  if (owner != nullptr && ::chown(tmpl, owner->pw_uid, owner->pw_gid) != 0) {
    why = "cannot hand the temp directory to `postgres`";
    co_return c;  // the caller removes it
  }
  const std::string data = c.data.string();
  std::vector<std::string> initdb_args = {"-D", data,    "-U",         "postgres",
                                          "-A", "trust", "--no-locale"};
  if (!co_await run_as_owner((c.bin / "initdb").string(), initdb_args)) {
    why = "initdb failed";
    co_return c;
  }
  const std::string port = std::to_string(co_await free_port());
  std::vector<std::string> start_args = {
      "-D",
      data,
      "-w",
      "-l",
      data + "/server.log",
      "-o",
      "-p " + port + " -k " + data + " -c listen_addresses=127.0.0.1 -c fsync=off",
      "start"};
  if (!co_await run_as_owner((c.bin / "pg_ctl").string(), start_args)) {
    why = "the server did not start (see " + data + "/server.log)";
    co_return c;
  }
  c.dsn = "host=" + data + " port=" + port + " user=postgres dbname=postgres";
  co_return c;
}

weave::Coro<void> stop_cluster(const Cluster& c) {
  if (!c.dsn.empty()) {
    std::vector<std::string> stop_args = {"-D", c.data.string(), "-m", "fast", "-w", "stop"};
    co_await run_as_owner((c.bin / "pg_ctl").string(), stop_args);
  }
  std::error_code ec;
  fs::remove_all(c.data, ec);
}

weave::Coro<void> sleeps_50ms(std::string dsn) {
  namespace pg = weave::pg;
  pg::Connection conn = co_await pg::connect(dsn);
  auto t0 = weave::Clock::now();
  co_await conn.execute("select pg_sleep(0.05)");
  co_await conn.execute("select pg_sleep(0.05)");
  std::printf("one after the other: %.1f ms\n", tour::since(t0));
  co_await conn.close();

  pg::PoolOptions two;
  two.min_size = two.max_size = 2;
  pg::Pool pool = co_await pg::create_pool(dsn, two);
  t0 = weave::Clock::now();
  co_await weave::gather(pool.execute("select pg_sleep(0.05)"),
                         pool.execute("select pg_sleep(0.05)"));
  std::printf("gathered on a pool:  %.1f ms\n", tour::since(t0));
  co_await pool.close();

  pg::PoolOptions ten;
  ten.min_size = ten.max_size = 10;
  pg::Pool big = co_await pg::create_pool(dsn, ten);
  t0 = weave::Clock::now();
  std::vector<weave::Coro<std::string>> queries;
  for (int i = 0; i < 100; ++i) queries.push_back(big.execute("select pg_sleep(0.05)"));
  co_await weave::gather(std::move(queries));
  std::printf("100 on a pool of 10: %.1f ms (5000 ms one after the other)\n", tour::since(t0));
  co_await big.close();
}
}  // namespace

weave::Coro<void> tour::pg_section() {
  std::puts("\n== PostgreSQL: two 50 ms queries one after the other, then gathered on a pool");
  if (const char* dsn = std::getenv("WEAVE_PG_DSN")) {
    co_await sleeps_50ms(dsn);
    co_return;
  }
  std::string why;
  std::optional<Cluster> cluster = co_await start_cluster(why);
  if (cluster && !cluster->dsn.empty()) {
    try {
      co_await sleeps_50ms(cluster->dsn);
    } catch (const std::exception& e) {
      std::printf("the queries failed: %s\n", e.what());
    }
  } else {
    std::printf(
        "skipped: %s. This section starts a throw-away PostgreSQL server of its own; install "
        "one with `apt-get install postgresql` (Debian; scripts/install-deps.sh does it), or set "
        "WEAVE_PG_DSN to the conninfo of a server you have.\n",
        why.c_str());
  }
  if (cluster) co_await stop_cluster(*cluster);
}
