// Task statistics and timelines: the figures of known steps, sleeps and wake-ups; traces that
// the repository's checker (tools/trace_check.py) accepts; the memory budget; the flight
// recorder; and the checker's own refusals.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "support/bounded.hpp"
#include "support/net.hpp"
#include "weave/trace.hpp"
#include "weave/weave.hpp"

namespace {

using namespace std::chrono_literals;

std::string checker() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/../tools/trace_check.py";
}

/// The checker's exit status for `path` (0: valid).
int check(const std::string& path, const std::string& extra = {}) {
  const std::string cmd = "python3 " + checker() + " " + path + " " + extra + " >/dev/null";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "weave_" + std::to_string(::getpid()) + "_" + name;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

weave::Coro<void> worker(weave::Queue<int>& q, int n) {
  for (int i = 0; i < n; ++i) {
    co_await weave::sleep(1ms);
    co_await q.put(i);
  }
}

weave::Coro<int> consumer(weave::Queue<int>& q, int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q.get();
  co_return sum;
}

weave::Coro<int> program() {
  weave::Queue<int> q;
  weave::EventLoop& loop = weave::get_running_loop();
  auto a = loop.create_task(worker(q, 5), "producer-a");
  auto b = loop.create_task(worker(q, 5), "producer-b");
  auto c = loop.create_task(consumer(q, 10), "consumer");
  co_await a;
  co_await b;
  co_return co_await c;
}

TEST(Stats, OffByDefault) {
  weave::EventLoop loop;
  loop.run_until_complete(weave::sleep(1ms));
  EXPECT_FALSE(loop.stats().enabled);
  loop.close();
}

TEST(Stats, StepsWakeupsAndTimes) {
  weave::EventLoop loop;
  loop.set_stats(true);
  weave::LoopStats seen;
  auto body = [](weave::LoopStats& out) -> weave::Coro<void> {
    for (int i = 0; i < 10; ++i) co_await weave::sleep(0s);
    co_await weave::sleep(50ms);
    out = weave::get_running_loop().stats();
  };
  auto t = loop.create_task(body(seen), "measured");
  loop.run_until_complete(t);
  ASSERT_TRUE(seen.enabled);
  ASSERT_EQ(seen.tasks.size(), 1u);
  const weave::TaskStats& s = seen.tasks[0];
  EXPECT_EQ(s.name, "measured");
  EXPECT_EQ(s.steps, 11u);   // the first step and 10 yields; this one (after the sleep) is running
  EXPECT_EQ(s.wakeups, 1u);  // the sleep's timer; yields are not wake-ups
  EXPECT_GE(s.idle, 45ms);
  EXPECT_LT(s.idle, 1s);
  EXPECT_GT(s.busy, 0ns);
  EXPECT_LT(s.busy, 45ms);
  EXPECT_GT(s.scheduled, 0ns);
  EXPECT_GE(seen.iterations, 12u);
  EXPECT_GE(seen.task_steps, 11u);
  EXPECT_GE(seen.ready_depth_max, 1u);
  EXPECT_EQ(seen.io_watches, 0u);
  loop.close();
}

TEST(Stats, LagOfALateTimer) {
  weave::EventLoop loop;
  loop.set_stats(true);
  auto sleeper = []() -> weave::Coro<void> { co_await weave::sleep(5ms); };
  // Starts a 5 ms sleeper, then blocks the loop for 30 ms in the same step: its timer runs late.
  auto spin = [&sleeper]() -> weave::Coro<void> {
    auto a = weave::create_task(sleeper());
    co_await weave::sleep(0s);  // the sleeper begins its sleep
    const auto end = std::chrono::steady_clock::now() + 30ms;
    while (std::chrono::steady_clock::now() < end) {
    }
    co_await a;
  };
  loop.run_until_complete(loop.create_task(spin()));
  const weave::LoopStats s = loop.stats();
  EXPECT_GE(s.lag_max, 20ms);
  EXPECT_LT(s.lag_max, 5s);
  loop.close();
}

TEST(Trace, AProgramsTimelinePassesTheChecker) {
  const std::string path = temp_path("program.json");
  weave::trace::Options o;
  o.path = path;
  weave::trace::start(o);
  EXPECT_TRUE(weave::trace::active());
  EXPECT_THROW(weave::trace::start(o), weave::RuntimeError);
  EXPECT_EQ(weave::run(program()), 20);
  const std::size_t n = weave::trace::stop();
  EXPECT_FALSE(weave::trace::active());
  EXPECT_GT(n, 40u);
  EXPECT_EQ(check(path, "--min-events 40"), 0);
  const std::string text = slurp(path);
  for (const char* name : {"\"producer-a\"", "\"producer-b\"", "\"consumer\""}) {
    EXPECT_GE(count(text, name), 6u) << name;  // its lifetime (b, e) and its steps (X)
  }
  EXPECT_GE(count(text, "\"ph\":\"s\""), 10u);  // the consumer woken by each put, the timers
  EXPECT_EQ(count(text, "\"ph\":\"s\""), count(text, "\"ph\":\"f\""));
  EXPECT_EQ(count(text, "\"ph\":\"b\""), count(text, "\"ph\":\"e\""));
  EXPECT_GE(count(text, "\"name\":\"ready queue\""), 5u);
  std::remove(path.c_str());
}

TEST(Trace, NothingRecordedWhenOff) {
  EXPECT_FALSE(weave::trace::active());
  const std::string path = temp_path("off.json");
  weave::trace::Options o;
  o.path = path;
  weave::trace::start(o);
  weave::trace::stop();  // an empty trace
  EXPECT_EQ(weave::run(program()), 20);
  EXPECT_EQ(check(path), 0);
  EXPECT_EQ(count(slurp(path), "\"ph\":\"X\""), 0u);
  std::remove(path.c_str());
}

TEST(Trace, MemoryStaysWithinTheBudget) {
  const std::string path = temp_path("budget.json");
  weave::trace::Options o;
  o.path = path;
  o.memory_budget = 64 * 1024;
  o.thread_buffer = 64 * 1024;  // 1024 events
  weave::trace::start(o);
  auto yields = []() -> weave::Coro<void> {
    for (int i = 0; i < 20000; ++i) co_await weave::sleep(0s);
  };
  weave::run(yields());
  EXPECT_EQ(weave::trace::memory_used(), 64u * 1024);
  EXPECT_GT(weave::trace::dropped(), 15000u);
  const std::size_t n = weave::trace::stop();
  EXPECT_LE(n, 1024u + 1);  // the kept events, and the task's end supplied
  EXPECT_EQ(check(path), 0);
  std::remove(path.c_str());
}

TEST(Trace, FlightRecorderKeepsTheNewest) {
  const std::string path = temp_path("flight.json");
  weave::trace::Options o;
  o.path = path;
  o.thread_buffer = 64 * 1024;
  o.flight_recorder = true;
  weave::trace::start(o);
  auto named = [](int i) -> weave::Coro<void> {
    co_await weave::sleep(0s);
    (void)i;
  };
  auto many = [&named]() -> weave::Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    for (int i = 0; i < 3000; ++i) {
      co_await loop.create_task(named(i), "t" + std::to_string(i));
    }
  };
  weave::run(many());
  const std::size_t dumped = weave::trace::dump(path);
  EXPECT_GT(dumped, 500u);
  EXPECT_LE(dumped, 1024u + 2);
  EXPECT_EQ(check(path), 0);
  const std::string text = slurp(path);
  EXPECT_NE(text.find("\"t2999\""), std::string::npos);  // the newest is kept
  EXPECT_EQ(text.find("\"t5\""), std::string::npos);     // the oldest went
  weave::trace::stop();
  EXPECT_EQ(check(path), 0);
  std::remove(path.c_str());
}

TEST(Trace, FlightRecorderDumpsOnAStall) {
  const std::string path = temp_path("stall.json");
  weave::trace::Options o;
  o.path = path;
  o.flight_recorder = true;
  weave::trace::start(o);
  weave::set_stall_reporter([](const weave::StallReport&) {});
  weave::set_stall_rate_limit(10, 60s);
  {
    weave::EventLoop loop;
    loop.set_debug(true);
    loop.slow_callback_duration = 20ms;
    loop.set_exception_handler([](weave::EventLoop&, const weave::ExceptionContext&) {});
    auto stall = []() -> weave::Coro<void> {
      co_await weave::sleep(1ms);
      const auto end = std::chrono::steady_clock::now() + 100ms;
      while (std::chrono::steady_clock::now() < end) {
      }
    };
    auto t = loop.create_task(stall(), "stalling");
    loop.run_until_complete(weave::sleep(10ms));  // the stall happens here
    ASSERT_EQ(check(path), 0);                    // written by the watchdog while the step blocked
    EXPECT_NE(slurp(path).find("\"stalling\""), std::string::npos);
    loop.run_until_complete(t);
    loop.close();
  }
  weave::set_stall_reporter(nullptr);
  weave::trace::stop();
  std::remove(path.c_str());
}

// ---- I/O waits ---------------------------------------------------------------------------------
struct IoFds {
  int listening = -1;
  int accepted = -1;
};

weave::Coro<void> line_echo(weave::StreamReader reader, weave::StreamWriter writer) {
  writer.write(co_await reader.readline());  // waits for the client's line
  co_await writer.drain();
  writer.close();
}

/// An accept, a receive and a stream's read, each made to wait 5 ms for its peer.
weave::Coro<void> io_waits(IoFds& fds) {
  weave::EventLoop& loop = weave::get_running_loop();
  weave::Socket server(AF_INET, SOCK_STREAM);
  server.bind(weave::SocketAddress::ip("127.0.0.1", 0));
  server.listen();
  fds.listening = server.fd();
  auto accepting = loop.create_task(loop.sock_accept(server.fd()), "acceptor");
  co_await weave::sleep(5ms);
  weave::Socket client(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(client.fd(), server.getsockname());
  auto [conn, peer] = co_await accepting;
  fds.accepted = conn.fd();
  auto receiving = loop.create_task(loop.sock_recv(conn.fd(), 16), "receiver");
  co_await weave::sleep(5ms);
  co_await loop.sock_sendall(client.fd(), "ping");
  CO_ASSERT_EQ(co_await receiving, "ping");

  weave::Server echo = co_await weave::start_server(line_echo, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", weave_test::port_of(echo));
  co_await weave::sleep(5ms);  // the server's readline waits
  writer.write("x\n");
  CO_ASSERT_EQ(co_await reader.readline(), "x\n");
  writer.close();
  echo.close();
  co_await echo.wait_closed();
}

TEST(Trace, IoWaitsAreAsyncSlicesNamingTheFdAndTheOperation) {
  const std::string path = temp_path("io.json");
  weave::trace::Options o;
  o.path = path;
  weave::trace::start(o);
  IoFds fds;
  weave_test::run_bounded(io_waits(fds));
  weave::trace::stop();
  EXPECT_EQ(check(path), 0);
  const std::string text = slurp(path);
  const std::string accept =
      "\"cat\":\"io\",\"name\":\"sock_accept fd " + std::to_string(fds.listening) + "\"";
  const std::string recv =
      "\"cat\":\"io\",\"name\":\"sock_recv_into fd " + std::to_string(fds.accepted) + "\"";
  EXPECT_EQ(count(text, "\"ph\":\"b\",\"pid\""), count(text, "\"ph\":\"e\",\"pid\""));
  EXPECT_EQ(count(text, accept), 2u) << text;  // its begin and its end
  EXPECT_EQ(count(text, recv), 2u);
  EXPECT_GE(count(text, "\"cat\":\"io\",\"name\":\"readuntil fd "), 2u);
  std::remove(path.c_str());
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(TraceCheck, RefusesBrokenTraces) {
  const std::string path = temp_path("bad.json");
  const std::string head = "{\"traceEvents\":[";
  write(path, head + R"({"ph":"X","pid":1,"tid":1,"ts":0,"dur":10,"name":"a"},
    {"ph":"X","pid":1,"tid":1,"ts":5,"dur":10,"name":"b"}]})");
  EXPECT_EQ(check(path), 1) << "overlapping slices";
  write(path, head + R"({"ph":"X","pid":1,"tid":1,"ts":5,"dur":1,"name":"a"},
    {"ph":"X","pid":1,"tid":1,"ts":2,"dur":1,"name":"b"}]})");
  EXPECT_EQ(check(path), 1) << "time goes back";
  write(path, head + R"({"ph":"B","pid":1,"tid":1,"ts":0,"name":"a"}]})");
  EXPECT_EQ(check(path), 1) << "a begin without its end";
  write(path, head + R"({"ph":"s","pid":1,"tid":1,"ts":0,"id":3,"name":"w"}]})");
  EXPECT_EQ(check(path), 1) << "an unpaired flow";
  write(path, head + R"({"ph":"e","pid":1,"tid":1,"ts":0,"id":"0x1","cat":"task","name":"w"}]})");
  EXPECT_EQ(check(path), 1) << "an async end without begin";
  write(path, "not json");
  EXPECT_EQ(check(path), 1);
  write(path, head + R"({"ph":"X","pid":1,"tid":1,"ts":0,"dur":10,"name":"a"},
    {"ph":"X","pid":1,"tid":1,"ts":2,"dur":3,"name":"b"},
    {"ph":"s","pid":1,"tid":1,"ts":3,"id":1,"name":"w"},
    {"ph":"X","pid":1,"tid":1,"ts":12,"dur":1,"name":"c"},
    {"ph":"f","pid":1,"tid":1,"ts":12,"id":1,"bp":"e","name":"w"}]})");
  EXPECT_EQ(check(path), 0) << "nested slices and a flow";
  std::remove(path.c_str());
}

}  // namespace
