// asyncio's add_signal_handler / remove_signal_handler through a signalfd, and weave::run's
// Ctrl-C handling (asyncio.Runner's SIGINT → cancellation of the main task), on both backends.
// Each test checks that the signal state (dispositions, the thread's mask) and the fd count are
// what they were before.

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;

namespace {

using weave_test::open_fd_count;

bool blocked(int sig) {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, sig) == 1;
}

void (*disposition(int sig))(int) {
  struct sigaction sa {};
  sigaction(sig, nullptr, &sa);
  return sa.sa_handler;
}

class Signals : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_before_) << "an fd leaked";
    for (int sig : {SIGINT, SIGUSR1, SIGUSR2}) {
      EXPECT_FALSE(blocked(sig)) << "signal " << sig << " left blocked";
      EXPECT_EQ(disposition(sig), SIG_DFL) << "signal " << sig << " left handled";
    }
  }

 private:
  int fds_before_ = 0;
};

pid_t gettid_() {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

// ---- add_signal_handler ------------------------------------------------------------------------

weave::Coro<int> handler_on_loop_thread() {
  weave::EventLoop& loop = weave::get_running_loop();
  weave::Event fired;
  pid_t handler_tid = 0;
  int calls = 0;
  loop.add_signal_handler(SIGUSR1, [&] {
    ++calls;
    handler_tid = gettid_();
    fired.set();
  });
  ::kill(::getpid(), SIGUSR1);
  EXPECT_EQ(calls, 0) << "the handler runs as a loop callback, not inside kill()";
  co_await fired.wait();
  EXPECT_EQ(handler_tid, ::getpid()) << "the handler runs on the loop (main) thread";
  EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
  co_return calls;
}

TEST_F(Signals, HandlerRunsOnLoopThreadWhenProcessSignalsItself) {
  EXPECT_EQ(run_bounded(handler_on_loop_thread()), 1);
}

weave::Coro<void> forwarded_from_other_thread() {
  weave::EventLoop& loop = weave::get_running_loop();
  weave::Event fired;
  // A thread that does not block SIGUSR2, started before the handler exists, takes the signal:
  // the forwarder hands it to the loop thread.
  std::atomic<bool> go{false};
  std::thread other([&] {
    while (!go.load()) std::this_thread::yield();
    ::syscall(SYS_tgkill, ::getpid(), gettid_(), SIGUSR2);
  });
  loop.add_signal_handler(SIGUSR2, [&] { fired.set(); });
  go = true;
  co_await fired.wait();
  other.join();
  loop.remove_signal_handler(SIGUSR2);
}

TEST_F(Signals, SignalTakenByAnotherThreadReachesTheLoop) {
  run_bounded(forwarded_from_other_thread());
}

std::atomic<int> g_custom_calls{0};
extern "C" void custom_handler(int) {
  g_custom_calls.fetch_add(1);
}

TEST_F(Signals, RemoveRestoresPreviousDispositionAndMask) {
  struct sigaction custom {};
  custom.sa_handler = &custom_handler;
  sigaction(SIGUSR2, &custom, nullptr);
  auto body = []() -> weave::Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    loop.add_signal_handler(SIGUSR2, [] {});
    EXPECT_TRUE(blocked(SIGUSR2));
    EXPECT_NE(disposition(SIGUSR2), &custom_handler);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR2));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR2));
    co_return;
  };
  run_bounded(body());
  EXPECT_FALSE(blocked(SIGUSR2));
  EXPECT_EQ(disposition(SIGUSR2), &custom_handler);
  g_custom_calls = 0;
  ::kill(::getpid(), SIGUSR2);
  EXPECT_EQ(g_custom_calls.load(), 1);
  signal(SIGUSR2, SIG_DFL);
}

TEST_F(Signals, SignalPendingWhenHandlerIsRemovedIsDropped) {
  auto body = []() -> weave::Coro<int> {
    weave::EventLoop& loop = weave::get_running_loop();
    int calls = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++calls; });
    ::kill(::getpid(), SIGUSR1);  // pending: the loop has not read it yet
    loop.remove_signal_handler(SIGUSR1);
    co_await weave::sleep(10ms);
    co_return calls;
  };
  EXPECT_EQ(run_bounded(body()), 0);  // and the default action (termination) did not happen
}

TEST_F(Signals, AddingAgainReplacesTheHandler) {
  auto body = []() -> weave::Coro<std::string> {
    weave::EventLoop& loop = weave::get_running_loop();
    weave::Event fired;
    std::string which;
    loop.add_signal_handler(SIGUSR1, [&] { which = "first"; });
    loop.add_signal_handler(SIGUSR1, [&] {
      which = "second";
      fired.set();
    });
    ::kill(::getpid(), SIGUSR1);
    co_await fired.wait();
    loop.remove_signal_handler(SIGUSR1);
    co_return which;
  };
  EXPECT_EQ(run_bounded(body()), "second");
}

TEST_F(Signals, HandlerMayRemoveItself) {
  auto body = []() -> weave::Coro<int> {
    weave::EventLoop& loop = weave::get_running_loop();
    weave::Event fired;
    int calls = 0;
    loop.add_signal_handler(SIGUSR1, [&] {
      ++calls;
      loop.remove_signal_handler(SIGUSR1);
      fired.set();
    });
    ::kill(::getpid(), SIGUSR1);
    co_await fired.wait();
    co_return calls;
  };
  EXPECT_EQ(run_bounded(body()), 1);
}

TEST_F(Signals, CloseRemovesEveryHandler) {
  {
    weave::EventLoop loop;
    loop.add_signal_handler(SIGUSR1, [] {});
    loop.add_signal_handler(SIGUSR2, [] {});
    EXPECT_TRUE(blocked(SIGUSR1));
    loop.close();
    EXPECT_FALSE(blocked(SIGUSR1));
    EXPECT_FALSE(blocked(SIGUSR2));
    EXPECT_THROW(loop.add_signal_handler(SIGUSR1, [] {}), weave::RuntimeError);
  }
  {
    weave::EventLoop loop;  // destroyed without close()
    loop.add_signal_handler(SIGUSR1, [] {});
  }
}

TEST_F(Signals, InvalidSignalsAreRejectedAsAsyncioDoes) {
  weave::EventLoop loop;
  EXPECT_THROW(loop.add_signal_handler(0, [] {}), weave::ValueError);
  EXPECT_THROW(loop.add_signal_handler(NSIG, [] {}), weave::ValueError);
  EXPECT_THROW(loop.add_signal_handler(-1, [] {}), weave::ValueError);
  EXPECT_THROW(loop.remove_signal_handler(0), weave::ValueError);
  EXPECT_THROW(loop.add_signal_handler(SIGKILL, [] {}), weave::RuntimeError);
  EXPECT_THROW(loop.add_signal_handler(SIGSTOP, [] {}), weave::RuntimeError);
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
  loop.close();
}

TEST_F(Signals, OnlyTheMainThreadMayHandleSignals) {
  bool refused = false;
  std::thread other([&] {
    weave::EventLoop loop;
    try {
      loop.add_signal_handler(SIGUSR1, [] {});
    } catch (const weave::RuntimeError&) {
      refused = true;
    }
    loop.close();
  });
  other.join();
  EXPECT_TRUE(refused);
}

// ---- weave::run and SIGINT -------------------------------------------------------------------

weave::Coro<void> interrupted_main(bool* saw_cancel) {
  EXPECT_NE(disposition(SIGINT), SIG_DFL) << "run() handles SIGINT while main runs";
  weave::get_running_loop().call_soon([] { ::kill(::getpid(), SIGINT); });
  try {
    co_await weave::sleep(10s);
  } catch (const weave::CancelledError&) {
    *saw_cancel = true;
    throw;
  }
}

TEST_F(Signals, RunTurnsSigintIntoCancellationOfTheMainTask) {
  bool saw_cancel = false;
  EXPECT_THROW(weave::run(interrupted_main(&saw_cancel)), weave::KeyboardInterrupt);
  EXPECT_TRUE(saw_cancel);
}

weave::Coro<int> swallowing_main() {
  weave::get_running_loop().call_soon([] { ::kill(::getpid(), SIGINT); });
  try {
    co_await weave::sleep(10s);
  } catch (const weave::CancelledError&) {
    co_return 42;
  }
  co_return 0;
}

TEST_F(Signals, MainTaskThatSwallowsTheCancellationReturnsNormally) {
  EXPECT_EQ(weave::run(swallowing_main()), 42);
}

weave::Coro<void> twice_interrupted_main() {
  weave::get_running_loop().call_soon([] { ::kill(::getpid(), SIGINT); });
  try {
    co_await weave::sleep(10s);
  } catch (const weave::CancelledError&) {
  }
  ::kill(::getpid(), SIGINT);
  co_await weave::sleep(10s);
}

TEST_F(Signals, SecondSigintEndsTheProcessBySigint) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(weave::run(twice_interrupted_main()), ::testing::KilledBySignal(SIGINT), "");
}

weave::Coro<void> stuck_main() {
  // Never awaits: the loop cannot run a callback, and still the second Ctrl-C ends the process.
  ::kill(::getpid(), SIGINT);
  ::kill(::getpid(), SIGINT);
  for (volatile bool spin = true; spin;) {
  }
  co_return;
}

TEST_F(Signals, SecondSigintEndsAMainTaskThatNeverYields) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(weave::run(stuck_main()), ::testing::KilledBySignal(SIGINT), "");
}

weave::Coro<bool> sees_default_sigint() {
  co_return disposition(SIGINT) == SIG_DFL;
}

TEST_F(Signals, RunLeavesACustomSigintHandlerAlone) {
  struct sigaction custom {};
  custom.sa_handler = &custom_handler;
  sigaction(SIGINT, &custom, nullptr);
  auto body = []() -> weave::Coro<bool> { co_return disposition(SIGINT) == &custom_handler; };
  EXPECT_TRUE(weave::run(body()));
  EXPECT_EQ(disposition(SIGINT), &custom_handler);
  signal(SIGINT, SIG_DFL);
}

TEST_F(Signals, RunOffTheMainThreadLeavesSigintAlone) {
  bool untouched = false;
  std::thread other([&] { untouched = weave::run(sees_default_sigint()); });
  other.join();
  EXPECT_TRUE(untouched);
}

}  // namespace
