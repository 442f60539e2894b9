// pipeline_bench: a three-stage AsyncGenerator pipeline (source -> doubled -> plus_one -> sum),
// per item, against two references measured in the same run:
//   - one `co_await` of a ready Coro per item (the bound: the pipeline <= 3x that);
//   - the same pipeline in Python asyncio async generators (pipeline_bench.py; >= 50x faster).
// usage: pipeline_bench [N=10000000] [--no-python] [path/to/pipeline_bench.py]
// Python runs N/10 items (its per-item cost does not depend on N); the sums are checked.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "weave/weave.hpp"

namespace {

using weave::AsyncGenerator;
using weave::Coro;

weave::AsyncGenerator<std::int64_t> source(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_yield i;
}
weave::AsyncGenerator<std::int64_t> doubled(weave::AsyncGenerator<std::int64_t> items) {
  while (auto v = co_await items.next()) co_yield *v * 2;
}
weave::AsyncGenerator<std::int64_t> plus_one(weave::AsyncGenerator<std::int64_t> items) {
  while (auto v = co_await items.next()) co_yield *v + 1;
}

Coro<std::int64_t> ready(std::int64_t i) {
  co_return i * 2 + 1;
}

double ns_per_item(weave::Clock::time_point t0, std::int64_t n) {
  return std::chrono::duration<double, std::nano>(weave::Clock::now() - t0).count() /
         static_cast<double>(n);
}

struct Result {
  double ns;
  std::int64_t sum;
};

Coro<Result> run_pipeline(std::int64_t n) {
  auto t0 = weave::Clock::now();
  std::int64_t sum = 0;
  auto items = plus_one(doubled(source(n)));
  while (auto v = co_await items.next()) sum += *v;
  co_return Result{ns_per_item(t0, n), sum};
}

Coro<Result> run_ready(std::int64_t n) {
  auto t0 = weave::Clock::now();
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += co_await ready(i);
  co_return Result{ns_per_item(t0, n), sum};
}

std::int64_t expected_sum(std::int64_t n) {
  return n * n;  // sum of 2i+1 for i < n
}

bool run_python(const std::string& script, std::int64_t n, Result& out) {
  std::string cmd = "python3 '" + script + "' " + std::to_string(n);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return false;
  char line[256];
  bool got_ns = false;
  while (std::fgets(line, sizeof line, p) != nullptr) {
    double v = 0;
    long long s = 0;
    if (std::sscanf(line, "ns_per_item %lf", &v) == 1) {
      out.ns = v;
      got_ns = true;
    } else if (std::sscanf(line, "sum %lld", &s) == 1) {
      out.sum = s;
    }
  }
  return ::pclose(p) == 0 && got_ns;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t n = 10'000'000;
  bool python = true;
  std::string script =
      (std::filesystem::path(__FILE__).parent_path() / "pipeline_bench.py").string();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-python") == 0) {
      python = false;
    } else if (argv[i][0] >= '0' && argv[i][0] <= '9') {
      n = std::atoll(argv[i]);
    } else {
      script = argv[i];
    }
  }
  weave::EventLoop loop;
  (void)loop.run_until_complete(run_pipeline(n / 10));  // warm the frame pool and caches
  Result ready_r = loop.run_until_complete(run_ready(n));
  Result pipe_r = loop.run_until_complete(run_pipeline(n));
  loop.close();
  bool ok = ready_r.sum == expected_sum(n) && pipe_r.sum == expected_sum(n);
  std::printf("items %lld\n", static_cast<long long>(n));
  std::printf("ready_coro_ns_per_item  %8.2f\n", ready_r.ns);
  std::printf("pipeline_ns_per_item    %8.2f  (3 stages)\n", pipe_r.ns);
  std::printf("ratio pipeline/ready    %8.2f  (bound <= 3)\n", pipe_r.ns / ready_r.ns);
  if (python) {
    Result py{0, 0};
    const std::int64_t py_n = n / 10;
    if (run_python(script, py_n, py)) {
      ok = ok && py.sum == expected_sum(py_n);
      std::printf("python_ns_per_item      %8.2f  (%lld items)\n", py.ns,
                  static_cast<long long>(py_n));
      std::printf("ratio python/weave      %8.2f  (bound >= 50)\n", py.ns / pipe_r.ns);
    } else {
      std::printf("python: could not run %s\n", script.c_str());
      ok = false;
    }
  }
  if (!ok) std::printf("WRONG SUM\n");
  return ok ? 0 : 1;
}
