// ProcessPoolExecutor and the serialization layer. Workers are real processes of this same
// test binary; every wait is bounded (scaled by WEAVE_TEST_TIMEOUT_SCALE), and each pool test
// ends by checking that no child process and no descriptor was left behind.

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "weave/concurrent.hpp"

using namespace std::chrono_literals;
namespace cf = weave::concurrent;

namespace {

std::chrono::milliseconds scaled(std::chrono::milliseconds d) {
  const char* scale = std::getenv("WEAVE_TEST_TIMEOUT_SCALE");
  return d * (scale ? std::max(1, std::atoi(scale)) : 1);
}

const auto kLong = scaled(20s);  // only reached when something is broken

struct Point {
  int x;
  int y;
  bool operator==(const Point&) const = default;
};

}  // namespace

template <>
struct weave::concurrent::Serializer<Point> {
  static void write(Writer& w, const Point& p) {
    w.write(p.x);
    w.write(p.y);
  }
  static Point read(Reader& r) { return Point{r.read<int>(), r.read<int>()}; }
};

namespace {

// ---- functions the workers run -------------------------------------------------------------

int square(int x) {
  return x * x;
}
int worker_pid() {
  return static_cast<int>(::getpid());
}
void nothing() {}
std::string greet(const std::string& name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hi " + name + ";";
  return out;
}
Point mirror(Point p) {
  return Point{p.y, p.x};
}
std::map<std::string, std::vector<int>> group(std::vector<std::tuple<std::string, int>> items) {
  std::map<std::string, std::vector<int>> out;
  for (auto& [k, v] : items) out[k].push_back(v);
  return out;
}
std::optional<double> halve(std::optional<double> v) {
  if (!v) return std::nullopt;
  return *v / 2;
}
int throw_out_of_range(int) {
  throw std::out_of_range("index 7 is past the end");
}
int throw_int() {
  throw 42;
}
int crash_with_abort() {
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);  // no core file for a deliberate crash
  std::abort();
}
int pid_after_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<int>(::getpid());
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
/// Leaks `mb` MiB (touched, so it is resident) and returns the worker's resident size in MiB.
long leak_mb(int mb) {
  auto* block = new char[static_cast<std::size_t>(mb) << 20];
  std::memset(block, 1, static_cast<std::size_t>(mb) << 20);
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE) / (1 << 20);
}

int initialized_value = 0;
void init_worker() {
  initialized_value = 1234;
}
int read_initialized() {
  return initialized_value;
}
void failing_init() {
  throw std::runtime_error("initializer says no");
}

// ---- leak checks ---------------------------------------------------------------------------

/// Processes whose parent is this process, alive or zombie.
int child_count() {
  int count = 0;
  std::string self = std::to_string(::getpid());
  DIR* proc = ::opendir("/proc");
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 &&
        std::to_string(ppid) == self) {
      ++count;
    }
  }
  ::closedir(proc);
  return count;
}

int fd_count() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (::readdir(dir)) ++count;
  ::closedir(dir);
  return count;
}

/// Checks that a test leaves no child process and no descriptor behind.
class ProcessPool : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = fd_count(); }
  void TearDown() override {
    EXPECT_EQ(child_count(), 0) << "a worker process was left behind";
    EXPECT_EQ(fd_count(), fds_before_) << "a descriptor was leaked";
  }

 private:
  int fds_before_ = 0;
};

}  // namespace

TEST(Serializer, BuiltInTypesRoundTrip) {
  EXPECT_EQ(cf::deserialize<int>(cf::serialize(-5)), -5);
  EXPECT_EQ(cf::deserialize<std::uint64_t>(cf::serialize(UINT64_MAX)), UINT64_MAX);
  EXPECT_EQ(cf::deserialize<double>(cf::serialize(2.5)), 2.5);
  EXPECT_EQ(cf::deserialize<double>(cf::serialize(3.0)), 3.0);
  EXPECT_TRUE(std::signbit(cf::deserialize<double>(cf::serialize(-0.0))));
  EXPECT_EQ(cf::deserialize<bool>(cf::serialize(true)), true);
  EXPECT_EQ(cf::deserialize<std::string>(cf::serialize(std::string("a\0b", 3))),
            std::string("a\0b", 3));
  std::vector<std::pair<int, std::string>> v{{1, "one"}, {2, "two"}};
  EXPECT_EQ(cf::deserialize<decltype(v)>(cf::serialize(v)), v);
  std::array<short, 3> a{1, -2, 3};
  EXPECT_EQ(cf::deserialize<decltype(a)>(cf::serialize(a)), a);
  std::optional<std::string> none;
  EXPECT_EQ(cf::deserialize<std::optional<std::string>>(cf::serialize(none)), none);
  std::map<std::string, std::optional<int>> m{{"a", 1}, {"b", std::nullopt}};
  EXPECT_EQ(cf::deserialize<decltype(m)>(cf::serialize(m)), m);
}

TEST(Serializer, UserSpecializationRoundTrips) {
  std::vector<Point> ps{{1, 2}, {3, 4}};
  EXPECT_EQ(cf::deserialize<std::vector<Point>>(cf::serialize(ps)), ps);
}

TEST(Serializer, MismatchThrowsValueError) {
  EXPECT_THROW(cf::deserialize<std::string>(cf::serialize(1)), weave::ValueError);
  EXPECT_THROW(cf::deserialize<std::uint8_t>(cf::serialize(300)), weave::ValueError);
  EXPECT_THROW(cf::deserialize<unsigned>(cf::serialize(-1)), weave::ValueError);
  EXPECT_THROW(cf::deserialize<int>(std::string_view()), weave::ValueError);
  EXPECT_THROW(cf::deserialize<int>(std::string_view("\xc1", 1)), weave::ValueError);
}

TEST(Serializer, FunctionPointerRoundTripsThroughModuleOffset) {
  auto back = cf::deserialize<int (*)(int)>(cf::serialize(&square));
  EXPECT_EQ(back, &square);
  EXPECT_EQ(back(3), 9);
  int data = 0;
  EXPECT_THROW(cf::serialize(reinterpret_cast<int (*)(int)>(&data)), weave::ValueError);
}

TEST_F(ProcessPool, SubmitRunsInAnotherProcess) {
  cf::ProcessPoolExecutor pool(2);
  auto pid = pool.submit(&worker_pid);
  EXPECT_NE(pid.result(kLong), ::getpid());
  EXPECT_EQ(pool.submit(&square, 12).result(kLong), 144);
}

TEST_F(ProcessPool, ArgumentsAndResultsCrossTheBoundary) {
  cf::ProcessPoolExecutor pool(1);
  EXPECT_EQ(pool.submit(&greet, "ann", 2).result(kLong), "hi ann;hi ann;");
  EXPECT_EQ(pool.submit(&mirror, Point{1, 2}).result(kLong), (Point{2, 1}));
  std::vector<std::tuple<std::string, int>> items{{"a", 1}, {"b", 2}, {"a", 3}};
  auto grouped = pool.submit(&group, items).result(kLong);
  EXPECT_EQ(grouped["a"], (std::vector<int>{1, 3}));
  EXPECT_EQ(pool.submit(&halve, std::optional<double>(3.0)).result(kLong), 1.5);
  EXPECT_EQ(pool.submit(&halve, std::nullopt).result(kLong), std::nullopt);
  pool.submit(&nothing).result(kLong);
  auto lambda = pool.submit([](int a, int b) { return a - b; }, 10, 3);
  EXPECT_EQ(lambda.result(kLong), 7);
}

TEST_F(ProcessPool, ExceptionComesBackWithTypeNameAndMessage) {
  cf::ProcessPoolExecutor pool(1);
  auto f = pool.submit(&throw_out_of_range, 7);
  try {
    f.result(kLong);
    FAIL() << "no exception";
  } catch (const cf::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "index 7 is past the end");
  }
  EXPECT_THROW(pool.submit(&throw_int).result(kLong), cf::RemoteError);
  EXPECT_EQ(pool.submit(&square, 2).result(kLong), 4);  // the worker lives on
}

TEST_F(ProcessPool, WorksThroughExecutorBaseAndRejectsClosures) {
  cf::ProcessPoolExecutor pool(1);
  cf::Executor& ex = pool;
  EXPECT_EQ(ex.submit(&square, 5).result(kLong), 25);
  int captured = 3;
  EXPECT_THROW(ex.submit([captured] { return captured; }), weave::ValueError);
}

TEST_F(ProcessPool, MapKeepsOrderWithAndWithoutChunks) {
  cf::ProcessPoolExecutor pool(2);
  std::vector<int> in;
  for (int i = 0; i < 101; ++i) in.push_back(i);
  for (std::size_t chunksize : {1U, 7U, 200U}) {
    std::vector<int> out;
    for (int r : pool.map(&square, in, kLong, chunksize)) out.push_back(r);
    ASSERT_EQ(out.size(), in.size());
    for (int i = 0; i < 101; ++i) EXPECT_EQ(out[i], i * i);
  }
  EXPECT_THROW(pool.map(&square, in, kLong, 0), weave::ValueError);
  auto failing = pool.map(&throw_out_of_range, in, kLong, 10);
  EXPECT_THROW(failing.next(), cf::RemoteError);
}

TEST_F(ProcessPool, MapIsLazyAndKeepsResultsBeforeAFailure) {
  cf::ProcessPoolExecutor pool(2);
  int read = 0;  // items taken from the range (this thread only)
  auto counted = std::views::iota(0, 100) | std::views::transform([&](int i) {
                   ++read;
                   return i;
                 });
  // buffersize counts chunks, as Python's: 2 chunks of 3 items read ahead.
  std::optional<std::size_t> buffersize = 2;
  auto results = pool.map(&square, counted, kLong, 3, buffersize);
  EXPECT_EQ(read, 6);
  EXPECT_EQ(results.next(), 0);
  EXPECT_EQ(read, 9);  // the next chunk went when the first one's results were taken
  EXPECT_EQ(results.next(), 1);
  EXPECT_EQ(results.next(), 4);
  EXPECT_EQ(read, 9);
  EXPECT_EQ(results.next(), 9);
  EXPECT_EQ(read, 12);

  // Several ranges: one call per message, zipped to the shortest.
  std::vector<std::string> names{"a", "b", "c"};
  std::vector<int> times{2, 1};
  std::vector<std::string> got;
  for (auto& r : pool.map(&greet, names, times)) got.push_back(r);
  EXPECT_EQ(got, (std::vector<std::string>{greet("a", 2), greet("b", 1)}));
  cf::MapOptions chunked{.chunksize = 2};
  EXPECT_THROW(pool.map(&greet, chunked, names, times), weave::ValueError);

  // The results computed before a failing call are yielded first.
  std::vector<int> in{5, 6, 7};
  auto some = pool.map(
      +[](int x) { return x == 7 ? throw_out_of_range(x) : x; }, in);
  EXPECT_EQ(some.next(), 5);
  EXPECT_EQ(some.next(), 6);
  EXPECT_THROW(some.next(), cf::RemoteError);
  EXPECT_EQ(some.next(), std::nullopt);
}

TEST_F(ProcessPool, CallbacksAndAsCompletedSeeProcessResults) {
  cf::ProcessPoolExecutor pool(2);
  cf::Future<int> relay;
  pool.submit(&square, 9).add_done_callback([relay](const cf::Future<int>& f) {
    relay.set_result(f.result(0s));
  });
  EXPECT_EQ(relay.result(kLong), 81);
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(pool.submit(&square, i));
  int n = 0;
  for (const auto& f : cf::as_completed(fs, kLong)) n += f.done() ? 1 : 0;
  EXPECT_EQ(n, 50);
}

TEST_F(ProcessPool, CancelBeforeStartAndNotAfter) {
  cf::ProcessPoolExecutor pool(1);
  auto busy = pool.submit(&sleep_ms, 300);
  std::vector<cf::Future<int>> later;
  for (int i = 0; i < 30; ++i) later.push_back(pool.submit(&square, i));
  ASSERT_EQ(busy.result(kLong), 300);
  EXPECT_FALSE(busy.cancel());
  // The calls already handed to the worker run; the rest could be cancelled in time.
  int cancelled = 0;
  for (auto& f : later) cancelled += f.cancel() ? 1 : 0;
  (void)cancelled;
  for (auto& f : later) {
    ASSERT_TRUE(f.cancelled() || f.result(kLong) >= 0);
  }
  cf::Future<int> queued = pool.submit(&sleep_ms, 1);
  pool.shutdown();
  EXPECT_TRUE(queued.done());
}

TEST_F(ProcessPool, ShutdownCancelFuturesCancelsWhatHasNotStarted) {
  cf::ProcessPoolExecutor pool(1);
  auto busy = pool.submit(&sleep_ms, 200);
  for (auto deadline = std::chrono::steady_clock::now() + kLong; !busy.running();) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(1ms);
  }
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 40; ++i) queued.push_back(pool.submit(&square, i));
  pool.shutdown(true, true);
  EXPECT_EQ(busy.result(0s), 200);
  int cancelled = 0;
  for (auto& f : queued) {
    ASSERT_TRUE(f.done());
    cancelled += f.cancelled() ? 1 : 0;
  }
  EXPECT_GT(cancelled, 20);  // at most the worker's pipeline had started
  EXPECT_THROW(pool.submit(&square, 1), weave::RuntimeError);
}

TEST_F(ProcessPool, WorkerThatAbortsBreaksThePool) {
  cf::ProcessPoolExecutor pool(2);
  ASSERT_EQ(pool.submit(&square, 2).result(kLong), 4);
  auto pending = pool.submit(&sleep_ms, 5000);
  auto crash = pool.submit(&crash_with_abort);
  EXPECT_THROW(crash.result(kLong), weave::BrokenProcessPool);
  EXPECT_THROW(pending.result(kLong), weave::BrokenProcessPool);
  EXPECT_THROW(pool.submit(&square, 1), weave::BrokenProcessPool);
}

TEST_F(ProcessPool, WorkerKilledWithSigkillBreaksThePool) {
  cf::ProcessPoolExecutor pool(1);
  int pid = pool.submit(&worker_pid).result(kLong);
  auto running = pool.submit(&sleep_ms, 10000);
  auto queued = pool.submit(&square, 3);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  try {
    running.result(kLong);
    FAIL() << "no exception";
  } catch (const weave::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("signal 9"), std::string::npos) << e.what();
  }
  EXPECT_THROW(queued.result(kLong), weave::BrokenProcessPool);
  EXPECT_THROW(pool.submit(&square, 1), weave::BrokenProcessPool);
}

TEST_F(ProcessPool, HangingCallTimesOutAndKillWorkersEndsIt) {
  cf::ProcessPoolExecutor pool(1);
  auto hang = pool.submit(&sleep_ms, 60000);
  EXPECT_THROW(hang.result(50ms), weave::TimeoutError);
  EXPECT_TRUE(hang.running());
  pool.kill_workers();
  EXPECT_THROW(hang.result(kLong), weave::BrokenProcessPool);
}

TEST_F(ProcessPool, InitializerRunsInEveryWorker) {
  cf::ProcessPoolExecutor pool(2, &init_worker);
  EXPECT_EQ(pool.submit(&read_initialized).result(kLong), 1234);
  EXPECT_EQ(initialized_value, 0);  // not here
}

TEST_F(ProcessPool, FailingInitializerBreaksThePool) {
  cf::ProcessPoolExecutor pool(1, &failing_init);
  auto f = pool.submit(&square, 2);
  try {
    f.result(kLong);
    FAIL() << "no exception";
  } catch (const weave::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("initializer says no"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool.submit(&square, 1), weave::BrokenProcessPool);
}

TEST(ProcessPoolExecutor, RejectsBadArguments) {
  int captured = 1;
  EXPECT_THROW(cf::ProcessPoolExecutor(1, [captured] { (void)captured; }), weave::ValueError);
  EXPECT_THROW(cf::ProcessPoolExecutor(-1), weave::ValueError);
  EXPECT_THROW(cf::ProcessPoolExecutor(1, {}, -1), weave::ValueError);
  EXPECT_GE(cf::ProcessPoolExecutor().max_workers(), 1);
}

TEST_F(ProcessPool, MaxTasksPerChildRecyclesLeakingWorkers) {
  cf::ProcessPoolExecutor pool(1, {}, 2);
  std::set<int> pids;
  long peak_rss = 0;
  for (int i = 0; i < 6; ++i) {
    pids.insert(pool.submit(&worker_pid).result(kLong));
    peak_rss = std::max(peak_rss, pool.submit(&leak_mb, 16).result(kLong));
  }
  EXPECT_EQ(pids.size(), 6U);  // each worker served one getpid and one leak, then was replaced
  // Without recycling the six leaks would add up to 96 MiB in one worker.
  auto first_rss = pool.submit(&leak_mb, 16).result(kLong);
  EXPECT_LT(peak_rss, first_rss + 40);
}

TEST_F(ProcessPool, MaxTasksPerChildWorksThroughABacklog) {
  cf::ProcessPoolExecutor pool(1, {}, 2);
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 7; ++i) fs.push_back(pool.submit(&worker_pid));
  std::map<int, int> calls_per_pid;
  for (auto& f : fs) ++calls_per_pid[f.result(kLong)];
  EXPECT_EQ(calls_per_pid.size(), 4U);
  for (auto [pid, calls] : calls_per_pid) EXPECT_LE(calls, 2) << pid;
}

TEST_F(ProcessPool, ShutdownWithoutWaitThenDestructorReapsEverything) {
  std::vector<cf::Future<int>> fs;
  {
    cf::ProcessPoolExecutor pool(2);
    for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(&square, i));
    pool.shutdown(false);
    EXPECT_THROW(pool.submit(&square, 1), weave::RuntimeError);
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[i].result(0s), i * i);
}

TEST_F(ProcessPool, BacklogIsSpreadOverAllWorkers) {
  cf::ProcessPoolExecutor pool(2);
  std::vector<cf::Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(&pid_after_ms, 30));
  std::map<int, int> calls_per_pid;
  for (auto& f : fs) ++calls_per_pid[f.result(kLong)];
  ASSERT_EQ(calls_per_pid.size(), 2U);
  for (auto [pid, calls] : calls_per_pid) EXPECT_EQ(calls, 3) << pid;
}

TEST_F(ProcessPool, ManyPoolsOneAfterAnother) {
  for (int i = 0; i < 3; ++i) {
    cf::ProcessPoolExecutor pool(2);
    EXPECT_EQ(pool.submit(&square, i).result(kLong), i * i);
  }
}

TEST_F(ProcessPool, ShutdownRacingWithSubmitLosesNothing) {
  for (int round = 0; round < 3; ++round) {
    cf::ProcessPoolExecutor pool(2);
    std::vector<cf::Future<int>> fs;
    std::thread submitter([&] {
      try {
        for (int i = 0; i < 300; ++i) fs.push_back(pool.submit(&square, i));
      } catch (const weave::RuntimeError&) {
        // shut down under our feet: what was accepted must still complete
      }
    });
    std::this_thread::sleep_for(1ms);
    pool.shutdown(true, round == 1);
    submitter.join();
    for (std::size_t i = 0; i < fs.size(); ++i) {
      ASSERT_TRUE(fs[i].done());
      if (!fs[i].cancelled()) {
        EXPECT_EQ(fs[i].result(0s), static_cast<int>(i * i));
      }
    }
  }
}

// The callback runs in the thread reading replies in result(); while it waits for the pool to
// drain, the manager must be watching the sockets again for the other call's reply.
TEST_F(ProcessPool, CallbackThatShutsThePoolDownDoesNotHang) {
  cf::ProcessPoolExecutor pool(1);
  ASSERT_EQ(pool.submit(&square, 1).result(kLong), 1);
  auto first = pool.submit(&square, 3);
  auto second = pool.submit(&sleep_ms, 50);
  first.add_done_callback([&pool] { pool.shutdown(true); });
  EXPECT_EQ(first.result(kLong), 9);
  EXPECT_EQ(second.result(kLong), 50);
}

TEST_F(ProcessPool, ConcurrentSubmittersFromManyThreads) {
  cf::ProcessPoolExecutor pool(2);
  std::vector<std::thread> threads;
  std::vector<std::vector<cf::Future<int>>> fs(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) fs[t].push_back(pool.submit(&square, i));
    });
  }
  for (auto& t : threads) t.join();
  for (auto& list : fs) {
    for (int i = 0; i < 250; ++i) EXPECT_EQ(list[i].result(kLong), i * i);
  }
}
