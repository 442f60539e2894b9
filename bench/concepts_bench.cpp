// The execution models of docs/concepts.md, measured side by side in one run:
//
//   concepts_bench [--switches N] [--units N]
//
//   thread     two OS threads handing a token back and forth (mutex + condition variable)
//   fiber      two ucontext fibers, makecontext/swapcontext (stackful, cooperative)
//   callback   loop.call_soon: one callback scheduling the next
//   future     a task awaiting a weave::Future that a callback completes, over and over
//   coroutine  two weave tasks taking turns through co_await weave::sleep(std::chrono::seconds(0))
//   (a loop switch),
//              and a co_await of a Coro that finishes at once (no loop involved)
//
// ns/switch is wall time over N switches (median of 5 repeats, min..max shown). bytes/unit is
// what one suspended unit holds: for threads and fibers the stack reserved for it (the default
// pthread stack; the fiber stack this benchmark gives, the smallest that runs its body), for the
// weave units the heap bytes counted by operator new while N of them are suspended, divided by N.

#include <pthread.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

namespace {
std::atomic<long> g_allocated{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocated.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using Clock = std::chrono::steady_clock;

double ns_since(Clock::time_point start, long count) {
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(count);
}

// ---- threads ----
double thread_switch(long n) {
  std::mutex m;
  std::condition_variable cv;
  long turn = 0;  // even: main's turn, odd: the other thread's
  std::thread other([&] {
    std::unique_lock lock(m);
    for (long i = 1; i < 2 * n; i += 2) {
      cv.wait(lock, [&] { return turn == i; });
      ++turn;
      cv.notify_one();
    }
  });
  const auto start = Clock::now();
  {
    std::unique_lock lock(m);
    for (long i = 0; i < 2 * n; i += 2) {
      cv.wait(lock, [&] { return turn == i; });
      ++turn;
      cv.notify_one();
    }
    cv.wait(lock, [&] { return turn == 2 * n; });
  }
  const double ns = ns_since(start, 2 * n);
  other.join();
  return ns;
}

// ---- fibers ----
ucontext_t g_main_ctx, g_fiber_ctx;
long g_fiber_left = 0;
void fiber_body() {
  while (g_fiber_left-- > 0) swapcontext(&g_fiber_ctx, &g_main_ctx);
}
constexpr std::size_t kFiberStack = 16 * 1024;

double fiber_switch(long n) {
  std::vector<char> stack(kFiberStack);
  getcontext(&g_fiber_ctx);
  g_fiber_ctx.uc_stack.ss_sp = stack.data();
  g_fiber_ctx.uc_stack.ss_size = stack.size();
  g_fiber_ctx.uc_link = &g_main_ctx;
  makecontext(&g_fiber_ctx, fiber_body, 0);
  g_fiber_left = n;
  const auto start = Clock::now();
  for (long i = 0; i <= n; ++i) swapcontext(&g_main_ctx, &g_fiber_ctx);
  return ns_since(start, 2 * n);
}

// ---- callbacks ----
struct Chain {
  weave::EventLoop* loop;
  long left;
  void step() {
    if (--left > 0) loop->call_soon([this] { step(); });
  }
};

double callback_switch(long n) {
  weave::EventLoop loop;
  Chain chain{&loop, n};
  auto body = [&]() -> weave::Coro<void> {
    loop.call_soon([&] { chain.step(); });
    while (chain.left > 0) co_await weave::sleep(std::chrono::milliseconds(1));
  };
  const auto start = Clock::now();
  loop.run_until_complete(body());
  const double ns = ns_since(start, n);
  loop.close();
  return ns;
}

// ---- futures ----
weave::Coro<void> await_futures(long n) {
  auto& loop = weave::get_running_loop();
  for (long i = 0; i < n; ++i) {
    weave::Future<int> f = loop.create_future<int>();
    loop.call_soon([f]() mutable { f.set_result(1); });
    co_await f;
  }
}

double future_switch(long n) {
  weave::EventLoop loop;
  const auto start = Clock::now();
  loop.run_until_complete(await_futures(n));
  const double ns = ns_since(start, n);
  loop.close();
  return ns;
}

// ---- coroutines ----
weave::Coro<void> take_turns(long n) {
  for (long i = 0; i < n; ++i) co_await weave::sleep(std::chrono::seconds(0));
}
weave::Coro<void> two_tasks(long n) {
  auto a = weave::create_task(take_turns(n));
  auto b = weave::create_task(take_turns(n));
  co_await a;
  co_await b;
}

double coroutine_switch(long n) {
  weave::EventLoop loop;
  const auto start = Clock::now();
  loop.run_until_complete(two_tasks(n));
  const double ns = ns_since(start, 2 * n);
  loop.close();
  return ns;
}

weave::Coro<int> ready_value(int x) {
  co_return x + 1;
}
weave::Coro<long> await_ready_coros(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await ready_value(static_cast<int>(i));
  co_return sum;
}

double coro_call(long n) {
  weave::EventLoop loop;
  const auto start = Clock::now();
  const long sum = loop.run_until_complete(await_ready_coros(n));
  const double ns = ns_since(start, n);
  if (sum == 0) std::puts("");
  loop.close();
  return ns;
}

// ---- bytes per suspended weave unit ----
weave::Coro<void> wait_on(weave::Future<void> f) {
  co_await f;
}

struct Sizes {
  double task = 0, future = 0, callback = 0;
};

Sizes weave_sizes(long units) {
  Sizes s;
  weave::EventLoop loop;
  auto body = [&]() -> weave::Coro<void> {
    auto& l = weave::get_running_loop();
    std::vector<weave::Future<void>> futures;
    futures.reserve(static_cast<std::size_t>(units));
    std::vector<weave::Task<void>> tasks;
    tasks.reserve(static_cast<std::size_t>(units));
    long before = g_allocated.load();
    for (long i = 0; i < units; ++i) futures.push_back(l.create_future<void>());
    s.future = static_cast<double>(g_allocated.load() - before) / static_cast<double>(units);
    before = g_allocated.load();
    for (long i = 0; i < units; ++i) tasks.push_back(weave::create_task(wait_on(futures[i])));
    co_await weave::sleep(
        std::chrono::seconds(0));  // every task has started and is suspended on its future
    s.task = static_cast<double>(g_allocated.load() - before) / static_cast<double>(units);
    before = g_allocated.load();
    for (long i = 0; i < units; ++i) l.call_soon([] {});
    s.callback = static_cast<double>(g_allocated.load() - before) / static_cast<double>(units);
    for (auto& f : futures) f.set_result();
    for (auto& t : tasks) co_await t;
  };
  loop.run_until_complete(body());
  loop.close();
  return s;
}

struct Figure {
  double median, min, max;
};

template <class F>
Figure repeat(F f, long n) {
  std::vector<double> v;
  for (int r = 0; r < 5; ++r) v.push_back(f(n));
  std::sort(v.begin(), v.end());
  return {v[2], v[0], v[4]};
}

}  // namespace

int main(int argc, char** argv) {
  long switches = 200000;
  long units = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--switches") == 0) switches = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--units") == 0) units = std::atol(argv[i + 1]);
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  std::size_t thread_stack = 0;
  pthread_attr_getstacksize(&attr, &thread_stack);
  pthread_attr_destroy(&attr);

  const Sizes sizes = weave_sizes(units);
  struct Row {
    const char* model;
    Figure f;
    double bytes;
    const char* what;
  };
  const long thread_n = std::max(1L, switches / 10);
  const Row rows[] = {
      {"thread", repeat(thread_switch, thread_n), static_cast<double>(thread_stack),
       "stack reserved (virtual)"},
      {"fiber (ucontext)", repeat(fiber_switch, switches), static_cast<double>(kFiberStack),
       "stack given"},
      {"callback", repeat(callback_switch, switches), sizes.callback, "heap per pending call_soon"},
      {"future", repeat(future_switch, switches), sizes.future, "heap per pending Future"},
      {"coroutine (task)", repeat(coroutine_switch, switches), sizes.task,
       "heap per suspended Task"},
      {"coroutine (co_await)", repeat(coro_call, switches), 0, "frame freed on return"},
  };
  std::printf("%-22s %12s %20s %12s  %s\n", "model", "ns/switch", "spread", "bytes/unit", "");
  for (const Row& r : rows) {
    std::printf("%-22s %12.1f %9.1f..%-9.1f %12.0f  %s\n", r.model, r.f.median, r.f.min, r.f.max,
                r.bytes, r.what);
  }
  std::printf("(%ld switches each, %ld for threads; %ld units for bytes; median of 5)\n", switches,
              thread_n, units);
  return 0;
}
