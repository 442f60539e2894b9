// pipeline_bench: a three-stage AsyncGenerator pipeline (source -> doubled -> plus_one -> sum),
// per item, against three references measured in the same run:
//   - one `co_await` of a ready Coro per item (the bound: the pipeline <= 3x that);
//   - the same pipeline in Python asyncio async generators (pipeline_bench.py; >= 50x faster);
//   - the floor: the same pipeline of the least generator a C++20 coroutine can be (store the
//     consumer, jump in, store the value's address, jump back; no states, errors or loop), as
//     this compiler builds it. python/floor is the most any stackless-coroutine pipeline built
//     by this compiler can be faster than Python.
//
// usage: pipeline_bench [N=10000000] [--repeats R=5] [--no-python]
//                       [--only pipeline|ready|floor]
//                       [path/to/pipeline_bench.py]
//
// They are run interleaved, R times (ready, pipeline, floor, python; ready, ...), and each figure
// is the median of its R runs with min..max beside it; the ratios are of the medians. Python runs
// N/10 items (its per-item cost does not depend on N). Every sum is checked.
// --only runs one of the C++ loops once, N items, nothing else: for instruction counts,
// `valgrind --tool=callgrind` at two N, difference over difference, is that loop's per item.

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "weave/weave.hpp"

namespace {

using weave::AsyncGenerator;
using weave::Coro;

AsyncGenerator<std::int64_t> source(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_yield i;
}
AsyncGenerator<std::int64_t> doubled(AsyncGenerator<std::int64_t> items) {
  while (auto v = co_await items.next()) co_yield *v * 2;
}
AsyncGenerator<std::int64_t> plus_one(AsyncGenerator<std::int64_t> items) {
  while (auto v = co_await items.next()) co_yield *v + 1;
}

Coro<std::int64_t> ready(std::int64_t i) {
  co_return i * 2 + 1;
}

/// The floor's generator: what every async generator must do per item, and nothing more.
class FloorGen {
 public:
  struct promise_type {
    std::coroutine_handle<> consumer;
    const std::int64_t* value = nullptr;
    FloorGen get_return_object() noexcept {
      return FloorGen(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Back {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        return h.promise().consumer;
      }
      void await_resume() noexcept {}
    };
    Back final_suspend() noexcept {
      value = nullptr;
      return {};
    }
    Back yield_value(const std::int64_t& v) noexcept {
      value = &v;
      return {};
    }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::abort(); }
  };
  explicit FloorGen(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  FloorGen(FloorGen&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  FloorGen(const FloorGen&) = delete;
  FloorGen& operator=(const FloorGen&) = delete;
  FloorGen& operator=(FloorGen&&) = delete;
  ~FloorGen() {
    if (h_) h_.destroy();
  }
  struct Next {
    std::coroutine_handle<promise_type> h;
    bool await_ready() noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> consumer) noexcept {
      h.promise().consumer = consumer;
      return h;
    }
    std::optional<std::int64_t> await_resume() noexcept {
      const std::int64_t* v = h.promise().value;
      return v != nullptr ? std::optional<std::int64_t>(*v) : std::nullopt;
    }
  };
  Next next() noexcept { return Next{h_}; }

 private:
  std::coroutine_handle<promise_type> h_;
};

FloorGen floor_source(std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) co_yield i;
}
FloorGen floor_doubled(FloorGen items) {
  while (auto v = co_await items.next()) co_yield *v * 2;
}
FloorGen floor_plus_one(FloorGen items) {
  while (auto v = co_await items.next()) co_yield *v + 1;
}

double ns_per_item(weave::Clock::time_point t0, std::int64_t n) {
  return std::chrono::duration<double, std::nano>(weave::Clock::now() - t0).count() /
         static_cast<double>(n);
}

struct Result {
  double ns;
  std::int64_t sum;
};

/// The consumer: sums what the pipeline's last stage yields.
template <class Generator>
Coro<Result> sum_of(Generator items, std::int64_t n) {
  auto t0 = weave::Clock::now();
  std::int64_t sum = 0;
  while (auto v = co_await items.next()) sum += *v;
  co_return Result{ns_per_item(t0, n), sum};
}

Coro<Result> run_pipeline(std::int64_t n) {
  return sum_of(plus_one(doubled(source(n))), n);
}

Coro<Result> run_floor(std::int64_t n) {
  return sum_of(floor_plus_one(floor_doubled(floor_source(n))), n);
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

/// The script beside this source file. __FILE__ may be relative to the directory the compiler
/// ran in (ccache's base_dir rewrites it so), which is the directory this program is built in.
std::string default_script() {
  namespace fs = std::filesystem;
  fs::path here = fs::path(__FILE__).parent_path() / "pipeline_bench.py";
  if (here.is_absolute()) return here.string();
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? here.string() : (exe.parent_path() / here).lexically_normal().string();
}

struct Series {
  std::vector<double> ns;
  double median() const {
    std::vector<double> v = ns;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
  }
  double min() const { return *std::min_element(ns.begin(), ns.end()); }
  double max() const { return *std::max_element(ns.begin(), ns.end()); }
};

void print_row(const char* name, const Series& s, const char* note) {
  std::printf("%-24s %8.2f  %8.2f..%-8.2f %s\n", name, s.median(), s.min(), s.max(), note);
}

struct Options {
  std::int64_t n = 10'000'000;
  int repeats = 5;
  bool python = true;
  std::string only;
  std::string script = default_script();
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-python") == 0) {
      o.python = false;
    } else if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      o.repeats = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      o.only = argv[++i];
    } else if (argv[i][0] >= '0' && argv[i][0] <= '9') {
      o.n = std::atoll(argv[i]);
    } else {
      o.script = argv[i];
    }
  }
  return o;
}

int run_only(weave::EventLoop& loop, const Options& o) {
  Result r = o.only == "ready"   ? loop.run_until_complete(run_ready(o.n))
             : o.only == "floor" ? loop.run_until_complete(run_floor(o.n))
                                 : loop.run_until_complete(run_pipeline(o.n));
  std::printf("%s items %lld ns_per_item %.2f\n", o.only.c_str(), static_cast<long long>(o.n),
              r.ns);
  return r.sum == expected_sum(o.n) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  weave::EventLoop loop;
  if (!o.only.empty()) {
    const int rc = run_only(loop, o);
    loop.close();
    return rc;
  }
  (void)loop.run_until_complete(run_pipeline(o.n / 10));  // warm the frame pool and caches
  Series ready_s, pipe_s, floor_s, py_s;
  bool ok = true;
  const std::int64_t py_n = o.n / 10;
  for (int r = 0; r < o.repeats && ok; ++r) {
    Result ready_r = loop.run_until_complete(run_ready(o.n));
    Result pipe_r = loop.run_until_complete(run_pipeline(o.n));
    Result floor_r = loop.run_until_complete(run_floor(o.n));
    ok = ready_r.sum == expected_sum(o.n) && pipe_r.sum == expected_sum(o.n) &&
         floor_r.sum == expected_sum(o.n);
    ready_s.ns.push_back(ready_r.ns);
    pipe_s.ns.push_back(pipe_r.ns);
    floor_s.ns.push_back(floor_r.ns);
    if (o.python) {
      Result py{0, 0};
      if (!run_python(o.script, py_n, py)) {
        std::printf("python: could not run %s\n", o.script.c_str());
        ok = false;
      } else {
        ok = ok && py.sum == expected_sum(py_n);
        py_s.ns.push_back(py.ns);
      }
    }
  }
  loop.close();
  if (!ok) {
    std::printf("WRONG SUM or failed run\n");
    return 1;
  }
  std::printf("items %lld, %d interleaved repeats: median, min..max\n", static_cast<long long>(o.n),
              o.repeats);
  std::printf("%-24s %8s  %-18s\n", "", "ns/item", "spread");
  print_row("ready_coro", ready_s, "one co_await of a ready Coro");
  print_row("pipeline", pipe_s, "3 stages and the consumer");
  std::printf("ratio pipeline/ready     %8.2f  (bound <= 3)\n", pipe_s.median() / ready_s.median());
  print_row("floor", floor_s, "the least generator, this compiler");
  std::printf("ratio pipeline/floor     %8.2f\n", pipe_s.median() / floor_s.median());
  if (o.python) {
    char note[64];
    std::snprintf(note, sizeof note, "asyncio, %lld items", static_cast<long long>(py_n));
    print_row("python", py_s, note);
    std::printf("ratio python/weave       %8.2f  (bound >= 50)\n", py_s.median() / pipe_s.median());
    std::printf("ratio python/floor       %8.2f  (the most this compiler's coroutines allow)\n",
                py_s.median() / floor_s.median());
  }
  return 0;
}
