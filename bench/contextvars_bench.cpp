// Context variables and eager tasks, each against its reference in the same run (medians of 5
// interleaved repeats): ContextVar::get in ns; create_task with ten variables set over none;
// gather of 1 M coroutines that finish at once, without and with eager_task_factory.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "weave/weave.hpp"

namespace {

using Clock = std::chrono::steady_clock;
weave::ContextVar<int> probe("probe");

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

weave::Coro<int> done_at_once(int i) {
  co_return i;
}

double create_tasks(int vars, int n) {
  return weave::run([](int vars, int n) -> weave::Coro<double> {
    std::vector<std::unique_ptr<weave::ContextVar<int>>> set;
    for (int i = 0; i < vars; ++i) {
      set.push_back(std::make_unique<weave::ContextVar<int>>("v"));
      set.back()->set(i);
    }
    std::vector<weave::Task<int>> tasks;
    tasks.reserve(n);
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) tasks.push_back(weave::create_task(done_at_once(i)));
    double took = seconds_since(t0);
    for (auto& t : tasks) co_await t;
    co_return took / n;
  }(vars, n));
}

double gather_million(bool eager) {
  return weave::run([](bool eager) -> weave::Coro<double> {
    if (eager) weave::get_running_loop().set_task_factory(weave::eager_task_factory);
    std::vector<weave::Coro<int>> coros;
    coros.reserve(1'000'000);
    for (int i = 0; i < 1'000'000; ++i) coros.push_back(done_at_once(i));
    auto t0 = Clock::now();
    std::vector<int> r = co_await weave::gather(std::move(coros));
    double took = seconds_since(t0);
    weave::get_running_loop().set_task_factory(nullptr);
    co_return r.size() == 1'000'000 ? took : -1;
  }(eager));
}

double get_ns() {
  return weave::run([]() -> weave::Coro<double> {
    probe.set(1);
    constexpr int kN = 20'000'000;
    long sum = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < kN; ++i) sum += probe.get();
    double took = seconds_since(t0);
    co_return sum == kN ? took * 1e9 / kN : -1;
  }());
}

}  // namespace

int main() {
  std::vector<double> get, none, ten, lazy, eager;
  for (int r = 0; r < 5; ++r) {
    get.push_back(get_ns());
    none.push_back(create_tasks(0, 200'000));
    ten.push_back(create_tasks(10, 200'000));
    lazy.push_back(gather_million(false));
    eager.push_back(gather_million(true));
  }
  std::printf("ContextVar::get                 %.2f ns (target <= 5)\n", median(get));
  std::printf("create_task, 0 vars             %.1f ns\n", median(none) * 1e9);
  std::printf("create_task, 10 vars            %.1f ns  ratio %.3f (target <= 1.15)\n",
              median(ten) * 1e9, median(ten) / median(none));
  std::printf("gather 1M, lazy                 %.3f s\n", median(lazy));
  std::printf("gather 1M, eager_task_factory   %.3f s  speed-up %.2fx (target >= 2)\n",
              median(eager), median(lazy) / median(eager));
}
