// The client's keep-alive load: `connections` tasks share one ClientSession and each sends GETs
// one after another for `seconds`, reading every body. Prints the requests done, the wall time
// and the process's CPU time (user + system) over that window; bench/http_client_bench.py runs it
// beside wrk and aiohttp's client against the same server and prints the ratios.
//
// usage: http_client_bench URL [connections=50] [seconds=5]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "weave/http.hpp"
#include "weave/weave.hpp"

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct Load {
  std::string url;
  weave::Clock::time_point until;
  long requests = 0;
  long failures = 0;
  bool counting = false;
};

weave::Coro<void> client(weave::http::ClientSession& session, Load& load) {
  while (weave::Clock::now() < load.until) {
    bool failed = false;
    try {
      weave::http::ClientResponse r = co_await session.get(load.url);
      const std::string body = co_await r.read();
      failed = r.status() != 200 || body.empty();
    } catch (const std::exception& e) {
      failed = true;
      std::fprintf(stderr, "request failed: %s\n", e.what());
    }
    if (failed) {
      ++load.failures;
      co_await weave::sleep(std::chrono::milliseconds(10));
    }
    if (load.counting) ++load.requests;
  }
}

weave::Coro<int> run_load(std::string url, int connections, double seconds) {
  weave::http::ClientSessionOptions opts;
  opts.connector.limit = static_cast<std::size_t>(connections);
  weave::http::ClientSession session(opts);
  // A short warm-up fills the pool, then the measured window.
  for (double window : {0.5, seconds}) {
    Load load{url, weave::Clock::now() + std::chrono::duration_cast<weave::Clock::duration>(
                                             std::chrono::duration<double>(window))};
    load.counting = window == seconds;
    const double cpu0 = cpu_seconds();
    const auto t0 = weave::Clock::now();
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < connections; ++i)
      tasks.push_back(weave::create_task(client(session, load)));
    for (weave::Task<void>& t : tasks) co_await t;
    if (load.counting) {
      const double wall = std::chrono::duration<double>(weave::Clock::now() - t0).count();
      const double cpu = cpu_seconds() - cpu0;
      std::printf("requests %ld\nfailures %ld\nwall %.3f\ncpu %.3f\nrequests_per_cpu_s %.0f\n",
                  load.requests, load.failures, wall, cpu, load.requests / cpu);
    }
  }
  co_await session.close();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s URL [connections=50] [seconds=5]\n", argv[0]);
    return 2;
  }
  const int connections = argc > 2 ? std::atoi(argv[2]) : 50;
  const double seconds = argc > 3 ? std::atof(argv[3]) : 5.0;
  return weave::run(run_load(argv[1], connections, seconds));
}
