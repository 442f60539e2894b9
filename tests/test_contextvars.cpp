// Context variables as Python's contextvars and asyncio use them: get/set/reset and their errors,
// Context objects and copy_context, the persistent map under many variables, and the contexts
// tasks, callbacks, TaskGroup children, to_thread, run_in_executor and call_soon_threadsafe run
// in.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/bounded.hpp"
#include "support/steps.hpp"

using namespace std::chrono_literals;
using weave::Context;
using weave::ContextVar;
using weave::Coro;
using weave::Token;
using weave_test::run_bounded;

namespace {

ContextVar<std::string> request_id("request_id", "-");
ContextVar<int> counter("counter");

TEST(ContextVar, DefaultsAndLookupError) {
  Context ctx;
  ctx.run([] {
    EXPECT_EQ(request_id.get(), "-");
    EXPECT_EQ(request_id.get("fallback"), "fallback");
    EXPECT_THROW(counter.get(), weave::LookupError);
    EXPECT_EQ(counter.get(7), 7);
    EXPECT_EQ(counter.name(), "counter");
  });
}

TEST(ContextVar, SetAndResetRestoreThePreviousState) {
  Context ctx;
  ctx.run([] {
    Token first = counter.set(1);
    EXPECT_TRUE(first.old_value_missing());
    EXPECT_EQ(counter.get(), 1);
    Token second = counter.set(2);
    EXPECT_FALSE(second.old_value_missing());
    EXPECT_EQ(counter.get(), 2);
    counter.reset(second);
    EXPECT_EQ(counter.get(), 1);
    counter.reset(first);
    EXPECT_THROW(counter.get(), weave::LookupError);
  });
}

// get() remembers its last lookup; a map freed and another made at the same address (what a
// set after a reset does, through the allocator's free list) must not answer from the old one.
TEST(ContextVar, ReadsAfterAMapIsReplacedSeeTheNewValue) {
  Context ctx;
  ctx.run([] {
    for (int i = 0; i < 200; ++i) {
      Token t = counter.set(i);
      ASSERT_EQ(counter.get(), i);
      counter.reset(t);
      ASSERT_THROW(counter.get(), weave::LookupError);
      ASSERT_EQ(request_id.get(), "-");
    }
  });
  Context other;
  other.run([] { EXPECT_THROW(counter.get(), weave::LookupError); });
  ctx.run([] {
    Token t = counter.set(5);
    Context copy = weave::copy_context();
    counter.set(6);
    copy.run([] { EXPECT_EQ(counter.get(), 5); });
    EXPECT_EQ(counter.get(), 6);
    counter.reset(t);
  });
}

TEST(ContextVar, TokenErrors) {
  Context ctx;
  ctx.run([&] {
    Token t = counter.set(1);
    counter.reset(t);
    EXPECT_THROW(counter.reset(t), weave::RuntimeError);  // used once already
    Token other = request_id.set("x");
    EXPECT_THROW(counter.reset(other), weave::ValueError);  // another variable
    request_id.reset(other);
    Token here = counter.set(5);
    Context elsewhere;
    elsewhere.run(
        [&] { EXPECT_THROW(counter.reset(here), weave::ValueError); });  // another context
    EXPECT_EQ(counter.get(), 5);
  });
}

TEST(Context, RunKeepsWhatItSetAndCopiesAreSnapshots) {
  Context ctx;
  ctx.run([] { counter.set(10); });
  EXPECT_EQ(ctx.run([] { return counter.get(); }), 10);
  Context snapshot = ctx.run([] { return weave::copy_context(); });
  ctx.run([] { counter.set(11); });
  EXPECT_EQ(snapshot.run([] { return counter.get(); }), 10);
  EXPECT_EQ(ctx.run([] { return counter.get(); }), 11);
  Context same = ctx;  // the same context object
  EXPECT_EQ(same.run([] { return counter.get(); }), 11);
}

TEST(Context, EnteringAnEnteredContextIsARuntimeError) {
  Context ctx;
  ctx.run([&] { EXPECT_THROW(ctx.run([] {}), weave::RuntimeError); });
  EXPECT_NO_THROW(ctx.run([] {}));  // left again, even after the error
  EXPECT_THROW(ctx.run([]() -> int { throw std::runtime_error("x"); }), std::runtime_error);
  EXPECT_NO_THROW(ctx.run([] {}));
}

TEST(Context, ManyVariablesShareStructure) {
  // Enough variables for several levels of the trie, set, overwritten, snapshotted and reset.
  std::vector<std::unique_ptr<ContextVar<int>>> vars;
  for (int i = 0; i < 300; ++i) vars.push_back(std::make_unique<ContextVar<int>>("v"));
  Context ctx;
  ctx.run([&] {
    std::vector<Token> tokens;
    for (int i = 0; i < 300; ++i) tokens.push_back(vars[i]->set(i));
    Context before = weave::copy_context();
    for (int i = 0; i < 300; i += 2) vars[i]->set(-i);
    for (int i = 0; i < 300; ++i) EXPECT_EQ(vars[i]->get(), i % 2 == 0 ? -i : i);
    before.run([&] {
      for (int i = 0; i < 300; ++i) EXPECT_EQ(vars[i]->get(), i);
    });
    for (int i = 299; i >= 0; i -= 3) vars[i]->reset(tokens[i]);
    for (int i = 0; i < 300; ++i) {
      if ((299 - i) % 3 == 0) {
        EXPECT_THROW(vars[i]->get(), weave::LookupError);
      } else {
        EXPECT_EQ(vars[i]->get(), i % 2 == 0 ? -i : i);
      }
    }
  });
}

Coro<std::string> read_after_yield(std::string set_to) {
  EXPECT_EQ(request_id.get(), "parent");  // copied at creation
  request_id.set(set_to);
  co_await weave::sleep(0s);
  co_await weave::sleep(1ms);
  co_return request_id.get();  // the task's own context, across steps
}

TEST(ContextTasks, TasksCopyTheContextWhenCreated) {
  run_bounded([]() -> Coro<void> {
    request_id.set("parent");
    auto a = weave::create_task(read_after_yield("a"));
    auto b = weave::create_task(read_after_yield("b"));
    request_id.set("changed after");
    EXPECT_EQ(co_await a, "a");
    EXPECT_EQ(co_await b, "b");
    EXPECT_EQ(request_id.get(), "changed after");  // the children's sets stay theirs
  }());
}

TEST(ContextTasks, TaskOptionsContextIsSharedWithTheTask) {
  run_bounded([]() -> Coro<void> {
    Context ctx;
    ctx.run([] { counter.set(1); });
    weave::TaskOptions options;
    options.context = ctx;
    auto t = weave::create_task(
        []() -> Coro<int> {
          int seen = counter.get();
          counter.set(seen + 1);
          co_return seen;
        }(),
        std::move(options));
    EXPECT_EQ(co_await t, 1);
    EXPECT_EQ(ctx.run([] { return counter.get(); }), 2);  // what the task set is in ctx
    EXPECT_THROW(counter.get(), weave::LookupError);      // not in the creator's context
  }());
}

TEST(ContextTasks, CallbacksCaptureTheCallersContext) {
  run_bounded([]() -> Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    std::vector<std::string> seen;
    request_id.set("at call_soon");
    loop.call_soon([&] {
      seen.push_back("soon:" + request_id.get());
      request_id.set("inside");  // a copy: does not leak
    });
    loop.call_later(1ms, [&] { seen.push_back("later:" + request_id.get()); });
    loop.call_at(loop.time() + 2ms, [&] { seen.push_back("at:" + request_id.get()); });
    Context ctx;
    ctx.run([] { request_id.set("given"); });
    loop.call_soon([&] { seen.push_back("given:" + request_id.get()); }, ctx);
    loop.call_soon([&] { request_id.set("given, then set"); }, ctx);
    request_id.set("after");
    co_await weave::sleep(20ms);
    EXPECT_EQ(seen, (std::vector<std::string>{"soon:at call_soon", "given:given",
                                              "later:at call_soon", "at:at call_soon"}));
    EXPECT_EQ(request_id.get(), "after");
    EXPECT_EQ(ctx.run([] { return request_id.get(); }), "given, then set");
  }());
}

// asyncio's add_reader wraps the callback in a Handle holding a copy of the caller's context, and
// every run is that Context's run(): what one run sets, the next sees, and the caller never
// does. A later add_reader replaces the callback and its context.
TEST(ContextTasks, FdCallbacksRunInTheContextTheyWereAddedIn) {
  run_bounded([]() -> Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    int fds[2];
    CO_ASSERT_EQ(::pipe(fds), 0);
    std::vector<std::string> seen;
    request_id.set("at add_reader");
    loop.add_reader(fds[0], [&] {
      char c;
      if (::read(fds[0], &c, 1) == 1) seen.push_back("read:" + request_id.get());
      request_id.set("set by the reader");
    });
    bool wrote = false;
    request_id.set("at add_writer");
    loop.add_writer(fds[1], [&] {
      seen.push_back("write:" + request_id.get());
      wrote = ::write(fds[1], "x", 1) == 1;
      loop.remove_writer(fds[1]);
    });
    request_id.set("after");
    co_await weave_test::until([&] { return seen.size() >= 2; });
    CO_ASSERT_EQ(::write(fds[1], "y", 1), 1);
    co_await weave_test::until([&] { return seen.size() >= 3; });
    EXPECT_TRUE(wrote);
    EXPECT_EQ(seen, (std::vector<std::string>{"write:at add_writer", "read:at add_reader",
                                              "read:set by the reader"}));
    request_id.set("replaced");
    loop.add_reader(fds[0], [&] {
      char c;
      if (::read(fds[0], &c, 1) == 1) seen.push_back("again:" + request_id.get());
    });
    request_id.set("after again");
    CO_ASSERT_EQ(::write(fds[1], "z", 1), 1);
    co_await weave_test::until([&] { return seen.size() >= 4; });
    EXPECT_EQ(seen.back(), "again:replaced");
    EXPECT_EQ(request_id.get(), "after again");
    loop.remove_reader(fds[0]);
    ::close(fds[0]);
    ::close(fds[1]);
  }());
}

TEST(ContextTasks, TaskGroupChildrenInherit) {
  run_bounded([]() -> Coro<void> {
    request_id.set("group");
    std::vector<std::string> seen;
    co_await weave::task_group([&](weave::TaskGroup& tg) -> Coro<void> {
      for (int i = 0; i < 3; ++i) {
        tg.create_task([](std::vector<std::string>& out) -> Coro<void> {
          co_await weave::sleep(0s);
          out.push_back(request_id.get());
        }(seen));
      }
      co_return;
    });
    EXPECT_EQ(seen, (std::vector<std::string>{"group", "group", "group"}));
  }());
}

TEST(ContextThreads, ToThreadAndRunInExecutorRunInTheCallersContext) {
  run_bounded(
      []() -> Coro<void> {
        request_id.set("caller");
        auto in_thread = [] {
          std::string seen = request_id.get();
          request_id.set("thread");  // the thread's copy only
          return seen + "@" + request_id.get();
        };
        std::string a = co_await weave::to_thread(in_thread);
        EXPECT_EQ(a, "caller@thread");
        weave::Future<std::string> f =
            weave::get_running_loop().run_in_executor(nullptr, in_thread);
        EXPECT_EQ(co_await f, "caller@thread");
        EXPECT_EQ(request_id.get(), "caller");
        // A thread with no context set sees the defaults: nothing stays behind in the pool.
        request_id.set("-");
        std::string plain = co_await weave::to_thread([] { return request_id.get(); });
        EXPECT_EQ(plain, "-");
      }(),
      20s);
}

TEST(ContextThreads, CallSoonThreadsafeCarriesThePostersContext) {
  run_bounded([]() -> Coro<void> {
    weave::EventLoop& loop = weave::get_running_loop();
    weave::Future<std::string> got = loop.create_future<std::string>();
    weave::Future<std::string> given = loop.create_future<std::string>();
    Context ctx;
    ctx.run([] { request_id.set("shared"); });
    std::thread poster([&] {
      Context mine;
      mine.run([&] {
        request_id.set("poster");
        loop.call_soon_threadsafe([&] { got.set_result(request_id.get()); });
      });
      loop.call_soon_threadsafe([&] { given.set_result(request_id.get()); }, ctx);
    });
    EXPECT_EQ(co_await got, "poster");
    EXPECT_EQ(co_await given, "shared");
    poster.join();
  }());
}

}  // namespace
