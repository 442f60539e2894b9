// weave::concurrent against Python's concurrent.futures, same workloads, same run.
//
//   concurrent_bench [--quick] [--no-python] [path/to/concurrent_bench.py]
//
// Measures, for weave and then for Python (concurrent_bench.py run with python3):
//   thread_rt_us      ThreadPoolExecutor(2): submit(no-op).result(), one at a time (latency)
//   thread_tput       ThreadPoolExecutor(2): 1,000,000 no-op submits, then every result (tasks/s)
//   process_rt_us     ProcessPoolExecutor(2): submit(no-op).result(), one at a time
//   process_tput      ProcessPoolExecutor(2): 100,000 small calls, then every result (tasks/s)
//   cpu_speedup       8 CPU-bound calls on ProcessPoolExecutor(2) vs (1): time(1) / time(2)
//   to_thread_rt_us   from a coroutine: co_await weave::to_thread(no-op), one at a time, against
//                     asyncio.to_thread (the default executor's round trip through the loop)
// and prints each weave/Python ratio next to its target. --quick divides the counts by 10.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "weave/concurrent.hpp"
#include "weave/weave.hpp"

namespace cf = weave::concurrent;
using Seconds = std::chrono::duration<double>;

namespace {

void noop() {}
long small(long x) {
  return x * 2 + 1;
}
double burn(int rounds) {
  double acc = 0;
  for (int i = 1; i <= rounds; ++i) acc += std::sqrt(static_cast<double>(i)) / i;
  return acc;
}

constexpr int kBurnRounds = 60'000'000;  // ~0.1-0.2 s per call

template <class F>
double timed(F&& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return Seconds(std::chrono::steady_clock::now() - start).count();
}

double thread_round_trip_us(int n) {
  cf::ThreadPoolExecutor pool(2);
  pool.submit(noop).result();
  return timed([&] {
           for (int i = 0; i < n; ++i) pool.submit(noop).result();
         }) /
         n * 1e6;
}

double thread_throughput(int n) {
  cf::ThreadPoolExecutor pool(2);
  std::vector<cf::Future<void>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  pool.submit(noop).result();
  double t = timed([&] {
    for (int i = 0; i < n; ++i) fs.push_back(pool.submit(noop));
    for (auto& f : fs) f.result();
  });
  return n / t;
}

double process_round_trip_us(int n) {
  cf::ProcessPoolExecutor pool(2);
  pool.submit(&noop).result();
  return timed([&] {
           for (int i = 0; i < n; ++i) pool.submit(&noop).result();
         }) /
         n * 1e6;
}

double process_throughput(int n) {
  cf::ProcessPoolExecutor pool(2);
  std::vector<cf::Future<long>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  pool.submit(&small, 1L).result();
  pool.submit(&small, 1L).result();
  double t = timed([&] {
    for (int i = 0; i < n; ++i) fs.push_back(pool.submit(&small, static_cast<long>(i)));
    for (auto& f : fs) f.result();
  });
  return n / t;
}

double cpu_time(int workers, int calls, int rounds) {
  cf::ProcessPoolExecutor pool(workers);
  for (int i = 0; i < workers; ++i) pool.submit(&noop).result();  // start the workers first
  return timed([&] {
    std::vector<cf::Future<double>> fs;
    for (int i = 0; i < calls; ++i) fs.push_back(pool.submit(&burn, rounds));
    for (auto& f : fs) f.result();
  });
}

weave::Coro<double> to_thread_loop(int n) {
  co_await weave::to_thread(noop);  // starts the default executor's thread
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) co_await weave::to_thread(noop);
  co_return Seconds(std::chrono::steady_clock::now() - start).count() / n * 1e6;
}

double to_thread_round_trip_us(int n) {
  return weave::run(to_thread_loop(n));
}

/// Runs the Python reference and parses its "name value" lines.
std::map<std::string, double> run_python(const std::string& script, bool quick) {
  std::map<std::string, double> out;
  std::string cmd = "python3 '" + script + "'" + (quick ? " --quick" : "");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char name[64];
  double value;
  while (std::fscanf(p, "%63s %lf", name, &value) == 2) out[name] = value;
  ::pclose(p);
  return out;
}

void row(const char* name, double weave, double python, bool lower_is_better, double target) {
  if (python <= 0) {
    std::printf("%-16s weave %12.2f\n", name, weave);
    return;
  }
  double ratio = lower_is_better ? python / weave : weave / python;
  std::printf("%-16s weave %12.2f   python %12.2f   ratio %7.1fx", name, weave, python, ratio);
  if (target > 0) {
    std::printf("   (target >= %.0fx) %s", target, ratio >= target ? "ok" : "BELOW TARGET");
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, python = true;
  std::string script =
      (std::filesystem::path(__FILE__).parent_path() / "concurrent_bench.py").string();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--no-python") == 0) {
      python = false;
    } else {
      script = argv[i];
    }
  }
  int scale = quick ? 10 : 1;
  std::printf("weave::concurrent vs concurrent.futures (2 workers; counts / %d)\n", scale);
  std::fflush(stdout);

  double thread_rt = thread_round_trip_us(20'000 / scale);
  double thread_tp = thread_throughput(1'000'000 / scale);
  double process_rt = process_round_trip_us(5'000 / scale);
  double process_tp = process_throughput(100'000 / scale);
  int burn_rounds = kBurnRounds / scale;
  double cpu1 = cpu_time(1, 8, burn_rounds);
  double cpu2 = cpu_time(2, 8, burn_rounds);
  double to_thread_rt = to_thread_round_trip_us(20'000 / scale);

  std::map<std::string, double> py;
  if (python) py = run_python(script, quick);
  row("thread_rt_us", thread_rt, py["thread_rt_us"], true, 20);
  row("thread_tput/s", thread_tp, py["thread_tput"], false, 20);
  row("process_rt_us", process_rt, py["process_rt_us"], true, 10);
  row("process_tput/s", process_tp, py["process_tput"], false, 10);
  std::printf(
      "%-16s weave %12.2fx  (8 CPU-bound calls, 1 worker %.2f s, 2 workers %.2f s;"
      " target >= 1.8x) %s\n",
      "cpu_2_vs_1", cpu1 / cpu2, cpu1, cpu2, cpu1 / cpu2 >= 1.8 ? "ok" : "BELOW TARGET");
  if (py.count("cpu_speedup")) {
    std::printf("%-16s python %11.2fx\n", "cpu_2_vs_1", py["cpu_speedup"]);
  }
  row("to_thread_rt_us", to_thread_rt, py["to_thread_rt_us"], true, 0);
  return 0;
}
