// Call graphs (asyncio.graph): capture_call_graph, format_call_graph, print_call_graph and
// TaskRef::get_stack/print_stack, compared with golden text. Addresses (id=0x...), the directory
// of file names and generated task numbers are normalised; function names and line numbers are
// compared exactly (the lines are this file's: the golden texts name them through __LINE__ marks
// taken where the awaits are).

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;

namespace {

/// Ids to 0xID, "File '/dir/x.cpp'" to "File 'x.cpp'", "Task-17" to "Task-N". (No std::regex:
/// g++ 12 warns falsely inside it under the sanitizers.)
std::string normalise(const std::string& text) {
  auto digits = [&](std::size_t i, bool hex) {
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) != 0 ||
                               (hex && text[i] >= 'a' && text[i] <= 'f'))) {
      ++i;
    }
    return i;
  };
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text.compare(i, 2, "0x") == 0) {
      out += "0xID";
      i = digits(i + 2, true);
    } else if (text.compare(i, 5, "Task-") == 0 && i + 5 < text.size() &&
               std::isdigit(static_cast<unsigned char>(text[i + 5])) != 0) {
      out += "Task-N";
      i = digits(i + 5, false);
    } else if (text.compare(i, 6, "File '") == 0 || text.compare(i, 6, "File \"") == 0) {
      const char quote = text[i + 5];
      const std::size_t close = text.find(quote, i + 6);
      const std::string path = text.substr(i + 6, close - i - 6);
      out += std::string("File ") + quote + path.substr(path.rfind('/') + 1) + quote;
      i = close + 1;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string at(int line) {
  return "File 'test_graph.cpp', line " + std::to_string(line) + ", in async ";
}

/// Lets every other task run until it suspends again (a few loop iterations).
weave::Coro<void> settle() {
  for (int i = 0; i < 5; ++i) co_await weave::sleep(0s);
}

const std::string kSleepFrame =
    "weave::(anonymous namespace)::sleep_frame(std::chrono::duration<long, std::ratio<1l, "
    "1000000000l> >, weave::detail::CallSite)";
const std::string kTimeoutFrame =
    "weave::detail::timeout_at_impl<weave::Coro<void> >(std::chrono::time_point<std::chrono::_V2::"
    "steady_clock, std::chrono::duration<long, std::ratio<1l, 1000000000l> > >, weave::Coro<void>, "
    "weave::detail::CallSite)";

// ---- asyncio's documentation example: a TaskGroup child prints its graph ----------------------
std::string g_text;
int g_print_line = 0;
int g_group_line = 0;

weave::Coro<void> test() {
  g_print_line = __LINE__ + 1;
  g_text = weave::format_call_graph();
  co_return;
}

weave::Coro<void> doc_main() {
  g_group_line = __LINE__ + 1;
  co_await weave::task_group([](weave::TaskGroup& g) -> weave::Coro<void> {
    g.create_task(test(), "test");
    co_return;
  });
}

TEST(CallGraph, AsyncioDocumentationExample) {
  run_bounded(doc_main());
  const std::string expected =
      "* Task(name='test', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      at(g_print_line) +
      "(anonymous namespace)::test()\n"
      "  + Awaited by:\n"
      "    * Task(name='Task-N', id=0xID)\n"
      "      + Call stack:\n"
      "      |   in async weave::TaskGroup::exit(std::__exception_ptr::exception_ptr)\n"
      "      |   in async weave::task_group<(anonymous "
      "namespace)::doc_main()::{lambda(weave::TaskGroup&)#1}>((anonymous "
      "namespace)::doc_main()::{lambda(weave::TaskGroup&)#1}, weave::detail::CallSite)\n"
      "      |   " +
      at(g_group_line) +
      "(anonymous namespace)::doc_main()\n"
      "      |   in async " +
      kTimeoutFrame;
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- TaskGroup -> gather -> sleep: a child of gather seen from a sibling
// -------------------------
int g_sleep_line = 0;
int g_tg_line = 0;

weave::Coro<void> sleeper() {
  g_sleep_line = __LINE__ + 1;
  co_await weave::sleep(10s);
}

int g_variadic_line = 0;

weave::Coro<void> gatherer() {
  g_variadic_line = __LINE__ + 1;
  co_await weave::gather(sleeper(), sleeper());
}

weave::Coro<void> observe(weave::Task<void> target) {
  co_await settle();
  // Tasks are numbered in creation order: the gatherer, this observer, then gather's children.
  std::vector<weave::TaskRef> tasks = weave::all_tasks();
  for (const weave::TaskRef& t : tasks) {
    if (t.core()->id == target.core()->id + 2) g_text = weave::format_call_graph(t);
  }
  target.cancel();
}

weave::Coro<void> tg_main() {
  g_tg_line = __LINE__ + 1;
  co_await weave::task_group([](weave::TaskGroup& g) -> weave::Coro<void> {
    weave::Task<void> target = g.create_task(gatherer(), "gatherer");
    g.create_task(observe(target), "observer");
    co_return;
  });
}

TEST(CallGraph, TaskGroupGatherSleep) {
  g_text.clear();
  run_bounded(tg_main());
  const std::string expected =
      "* Task(name='Task-N', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async " +
      kSleepFrame +
      "\n"
      "  |   " +
      at(g_sleep_line) +
      "(anonymous namespace)::sleeper()\n"
      "  + Awaited by:\n"
      "    * Task(name='gatherer', id=0xID)\n"
      "      + Call stack:\n"
      "      |   in async weave::detail::gather_tuple<false, weave::Task<void>, weave::Task<void> "
      ">(weave::detail::CallSite, weave::Task<void>, weave::Task<void>)\n"
      "      |   " +
      at(g_variadic_line) +
      "(anonymous namespace)::gatherer()\n"
      "      + Awaited by:\n"
      "        * Task(name='Task-N', id=0xID)\n"
      "          + Call stack:\n"
      "          |   in async weave::TaskGroup::exit(std::__exception_ptr::exception_ptr)\n"
      "          |   in async weave::task_group<(anonymous "
      "namespace)::tg_main()::{lambda(weave::TaskGroup&)#1}>((anonymous "
      "namespace)::tg_main()::{lambda(weave::TaskGroup&)#1}, weave::detail::CallSite)\n"
      "          |   " +
      at(g_tg_line) +
      "(anonymous namespace)::tg_main()\n"
      "          |   in async " +
      kTimeoutFrame;
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- shield: the inner task is awaited by shield's outer future, which the caller awaits -------
int g_shield_line = 0;

weave::Coro<void> shielding(weave::Task<void> inner) {
  g_shield_line = __LINE__ + 1;
  co_await weave::shield(inner);
}

weave::Coro<void> shield_main() {
  weave::Task<void> inner = weave::create_task(sleeper(), "inner");
  weave::Task<void> outer = weave::create_task(shielding(inner), "shielding");
  co_await settle();
  g_text = weave::format_call_graph(inner);
  inner.cancel();
  try {
    co_await outer;
  } catch (const weave::CancelledError&) {
  }
}

TEST(CallGraph, ShieldLinksInnerTaskThroughOuterFuture) {
  g_text.clear();
  run_bounded(shield_main());
  const std::string expected =
      "* Task(name='inner', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async " +
      kSleepFrame +
      "\n"
      "  |   " +
      at(g_sleep_line) +
      "(anonymous namespace)::sleeper()\n"
      "  + Awaited by:\n"
      "    * Future(id=0xID)\n"
      "      + Awaited by:\n"
      "        * Task(name='shielding', id=0xID)\n"
      "          + Call stack:\n"
      "          |   in async weave::detail::shield_impl<weave::Task<void> >(weave::Task<void>, "
      "weave::detail::CallSite)\n"
      "          |   " +
      at(g_shield_line) + "(anonymous namespace)::shielding(weave::Task<void>)";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- wait_for: a coroutine runs inline in the caller's task; a task is awaited by the caller ----
weave::Coro<void> waits_for_coro() {
  co_await weave::wait_for(sleeper(), 10s);
}

int g_wait_for_line = 0;

weave::Coro<void> waits_for_task(weave::Task<void> t) {
  g_wait_for_line = __LINE__ + 1;
  co_await weave::wait_for(t, 10s);
}

weave::Coro<void> wait_for_main() {
  weave::Task<void> a = weave::create_task(waits_for_coro(), "a");
  weave::Task<void> inner = weave::create_task(sleeper(), "inner");
  weave::Task<void> b = weave::create_task(waits_for_task(inner), "b");
  co_await settle();
  g_text = weave::format_call_graph(a) + "\n" + weave::format_call_graph(inner);
  a.cancel();
  b.cancel();
  co_await weave::gather_settled(a, b, inner);
}

TEST(CallGraph, WaitForCoroutineAndTask) {
  g_text.clear();
  run_bounded(wait_for_main());
  const std::string timeout_coro =
      "weave::detail::timeout_at_impl<weave::Coro<void> "
      ">(std::chrono::time_point<std::chrono::_V2::"
      "steady_clock, std::chrono::duration<long, std::ratio<1l, 1000000000l> > >, "
      "weave::Coro<void>, weave::detail::CallSite)";
  const std::string timeout_task =
      "weave::detail::timeout_at_impl<weave::Task<void> "
      ">(std::chrono::time_point<std::chrono::_V2::"
      "steady_clock, std::chrono::duration<long, std::ratio<1l, 1000000000l> > >, "
      "weave::Task<void>, weave::detail::CallSite)";
  const std::string expected =
      "* Task(name='a', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async " +
      kSleepFrame +
      "\n"
      "  |   " +
      at(g_sleep_line) +
      "(anonymous namespace)::sleeper()\n"
      "  |   in async " +
      timeout_coro +
      "\n"
      "  |   in async (anonymous namespace)::waits_for_coro()\n"
      "* Task(name='inner', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async " +
      kSleepFrame +
      "\n"
      "  |   " +
      at(g_sleep_line) +
      "(anonymous namespace)::sleeper()\n"
      "  + Awaited by:\n"
      "    * Task(name='b', id=0xID)\n"
      "      + Call stack:\n"
      "      |   in async " +
      timeout_task +
      "\n"
      "      |   " +
      at(g_wait_for_line) + "(anonymous namespace)::waits_for_task(weave::Task<void>)";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- gather over a vector, wait, as_completed: the line of the wait -------------------------
int g_gather_line = 0;
int g_wait_line = 0;
int g_as_completed_line = 0;

weave::Coro<void> gathers(std::vector<weave::Task<void>> tasks) {
  g_gather_line = __LINE__ + 1;
  co_await weave::gather(std::move(tasks));
}

weave::Coro<void> waits(std::vector<weave::Task<void>> tasks) {
  g_wait_line = __LINE__ + 1;
  (void)co_await weave::wait(tasks);
}

weave::Coro<void> iterates(std::vector<weave::Task<void>> tasks) {
  g_as_completed_line = __LINE__ + 1;
  auto it = weave::as_completed(std::move(tasks));
  for (auto next : it) co_await next;
}

/// The first frame line of `task`'s call graph that names a file, or "".
std::string site_line(const weave::Task<void>& task) {
  const std::string text = normalise(weave::format_call_graph(task));
  const std::size_t at = text.find("File '");
  return at == std::string::npos ? "" : text.substr(at, text.find('\n', at) - at);
}

weave::Coro<void> multi_wait_main() {
  weave::Task<void> s1 = weave::create_task(sleeper(), "s1");
  weave::Task<void> s2 = weave::create_task(sleeper(), "s2");
  weave::Task<void> s3 = weave::create_task(sleeper(), "s3");
  weave::Task<void> g = weave::create_task(gathers({s1}), "gathers");
  weave::Task<void> w = weave::create_task(waits({s2}), "waits");
  weave::Task<void> i = weave::create_task(iterates({s3}), "iterates");
  co_await settle();
  g_text = site_line(g) + "\n" + site_line(w) + "\n" + site_line(i);
  for (weave::Task<void>* t : {&g, &w, &i, &s1, &s2, &s3}) t->cancel();
  co_await weave::gather_settled(g, w, i, s1, s2, s3);
}

TEST(CallGraph, GatherWaitAndAsCompletedNameTheirLine) {
  g_text.clear();
  run_bounded(multi_wait_main());
  const std::string vec = "(std::vector<weave::Task<void>, std::allocator<weave::Task<void> > >)";
  EXPECT_EQ(g_text, at(g_gather_line) + "(anonymous namespace)::gathers" + vec + "\n" +
                        at(g_wait_line) + "(anonymous namespace)::waits" + vec + "\n" +
                        at(g_as_completed_line) + "(anonymous namespace)::iterates" + vec);
}

// ---- queue waits: the line of get() and put()
// -----------------------------------------------------
int g_get_line = 0;
int g_put_line = 0;

weave::Coro<void> consumer(weave::Queue<int>& q) {
  g_get_line = __LINE__ + 1;
  (void)co_await q.get();
}

weave::Coro<void> producer(weave::Queue<int>& q) {
  g_put_line = __LINE__ + 1;
  co_await q.put(2);
}

weave::Coro<void> queue_main() {
  weave::Queue<int> empty;
  weave::Queue<int> full(1);
  full.put_nowait(1);
  weave::Task<void> c = weave::create_task(consumer(empty), "consumer");
  weave::Task<void> p = weave::create_task(producer(full), "producer");
  co_await settle();
  g_text = weave::format_call_graph(c) + "\n" + weave::format_call_graph(p);
  c.cancel();
  p.cancel();
  co_await weave::gather_settled(c, p);
}

TEST(CallGraph, QueueGetAndPutWaits) {
  g_text.clear();
  run_bounded(queue_main());
  const std::string expected =
      "* Task(name='consumer', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async weave::Queue<int>::get_slowly(weave::detail::CallSite const*)\n"
      "  |   " +
      at(g_get_line) +
      "(anonymous namespace)::consumer(weave::Queue<int>&)\n"
      "* Task(name='producer', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async weave::Queue<int>::put_slowly(int&, weave::detail::CallSite const*)\n"
      "  |   " +
      at(g_put_line) + "(anonymous namespace)::producer(weave::Queue<int>&)";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- locks: the line of each wait, with the frames of the waits that are coroutines ----------
int g_lock_line = 0;
int g_event_line = 0;
int g_cond_line = 0;
int g_pred_line = 0;
int g_sem_line = 0;
int g_barrier_line = 0;

weave::Coro<void> locker(weave::Lock& lock) {
  g_lock_line = __LINE__ + 1;
  (void)co_await lock.acquire();
}

weave::Coro<void> event_waiter(weave::Event& event) {
  g_event_line = __LINE__ + 1;
  co_await event.wait();
}

weave::Coro<void> cond_waiter(weave::Condition& cond) {
  auto held = co_await cond.scoped();
  g_cond_line = __LINE__ + 1;
  (void)co_await cond.wait();
}

bool never() {
  return false;
}

weave::Coro<void> pred_waiter(weave::Condition& cond) {
  auto held = co_await cond.scoped();
  g_pred_line = __LINE__ + 1;
  (void)co_await cond.wait_for(never);
}

weave::Coro<void> sem_waiter(weave::Semaphore& sem) {
  g_sem_line = __LINE__ + 1;
  (void)co_await sem.acquire();
}

weave::Coro<void> barrier_waiter(weave::Barrier& barrier) {
  g_barrier_line = __LINE__ + 1;
  (void)co_await barrier.wait();
}

weave::Coro<void> locks_main() {
  weave::Lock lock;
  weave::Event event;
  weave::Condition cond;
  weave::Condition pred_cond;
  weave::Semaphore sem(0);
  weave::Barrier barrier(2);
  (void)co_await lock.acquire();
  std::vector<weave::Task<void>> tasks;
  tasks.push_back(weave::create_task(locker(lock), "lock"));
  tasks.push_back(weave::create_task(event_waiter(event), "event"));
  tasks.push_back(weave::create_task(cond_waiter(cond), "condition"));
  tasks.push_back(weave::create_task(pred_waiter(pred_cond), "predicate"));
  tasks.push_back(weave::create_task(sem_waiter(sem), "semaphore"));
  tasks.push_back(weave::create_task(barrier_waiter(barrier), "barrier"));
  co_await settle();
  g_text.clear();
  for (const weave::Task<void>& t : tasks) g_text += weave::format_call_graph(t) + "\n";
  for (weave::Task<void>& t : tasks) t.cancel();
  (void)co_await weave::gather_settled(tasks);
  lock.release();
}

TEST(CallGraph, LockWaitsNameTheirLine) {
  run_bounded(locks_main());
  const std::string cond_wait = "in async weave::Condition::wait(weave::detail::CallSite)\n";
  const std::string expected =
      "* Task(name='lock', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      at(g_lock_line) +
      "(anonymous namespace)::locker(weave::Lock&)\n"
      "* Task(name='event', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      at(g_event_line) +
      "(anonymous namespace)::event_waiter(weave::Event&)\n"
      "* Task(name='condition', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      cond_wait + "  |   " + at(g_cond_line) +
      "(anonymous namespace)::cond_waiter(weave::Condition&)\n"
      "* Task(name='predicate', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      cond_wait +
      "  |   in async weave::Condition::wait_for<bool (*)()>(bool (*)(), "
      "weave::detail::CallSite)\n"
      "  |   " +
      at(g_pred_line) +
      "(anonymous namespace)::pred_waiter(weave::Condition&)\n"
      "* Task(name='semaphore', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      at(g_sem_line) +
      "(anonymous namespace)::sem_waiter(weave::Semaphore&)\n"
      "* Task(name='barrier', id=0xID)\n"
      "  + Call stack:\n"
      "  |   " +
      cond_wait +
      "  |   in async weave::Condition::wait_for<weave::Barrier::wait_filled("
      "weave::detail::CallSite)::{lambda()#1}>(weave::Barrier::wait_filled("
      "weave::detail::CallSite)::{lambda()#1}, weave::detail::CallSite)\n"
      "  |   in async weave::Barrier::wait_filled(weave::detail::CallSite)\n"
      "  |   in async weave::Barrier::wait(weave::detail::CallSite)\n"
      "  |   " +
      at(g_barrier_line) + "(anonymous namespace)::barrier_waiter(weave::Barrier&)\n";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- a stream read: the line of read(), through the reader's own frames ----------------------
int g_read_line = 0;
int g_readline_line = 0;

weave::Coro<void> stream_reader(weave::StreamReader reader) {
  g_read_line = __LINE__ + 1;
  (void)co_await reader.read(10);
}

weave::Coro<void> line_reader(weave::StreamReader reader) {
  g_readline_line = __LINE__ + 1;
  (void)co_await reader.readline();
}

weave::Coro<void> stream_main() {
  weave::StreamReader reader;
  weave::StreamReader lines;
  lines.feed_data("no newline yet");
  weave::Task<void> r = weave::create_task(stream_reader(reader), "reader");
  weave::Task<void> l = weave::create_task(line_reader(lines), "lines");
  co_await settle();
  g_text = weave::format_call_graph(r) + "\n" + weave::format_call_graph(l);
  r.cancel();
  l.cancel();
  (void)co_await weave::gather_settled(r, l);
}

TEST(CallGraph, StreamReadsNameTheirLine) {
  g_text.clear();
  run_bounded(stream_main());
  const std::string wait_for_data =
      "  |   in async weave::detail::StreamState::wait_for_data(char const*, "
      "weave::detail::CallSite)\n";
  const std::string expected =
      "* Task(name='reader', id=0xID)\n"
      "  + Call stack:\n" +
      wait_for_data +
      "  |   in async weave::StreamReader::read[abi:cxx11](long, weave::detail::CallSite)\n"
      "  |   " +
      at(g_read_line) +
      "(anonymous namespace)::stream_reader(weave::StreamReader)\n"
      "* Task(name='lines', id=0xID)\n"
      "  + Call stack:\n" +
      wait_for_data +
      "  |   in async weave::StreamReader::readuntil(std::__cxx11::basic_string<char, "
      "std::char_traits<char>, std::allocator<char> >, weave::detail::CallSite)\n"
      "  |   in async weave::StreamReader::readline[abi:cxx11](weave::detail::CallSite)\n"
      "  |   " +
      at(g_readline_line) + "(anonymous namespace)::line_reader(weave::StreamReader)";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- the low-level socket API: the line of sock_recv, through sock_recv_into's frame ----------
int g_sock_recv_line = 0;

weave::Coro<void> sock_receiver(int fd) {
  g_sock_recv_line = __LINE__ + 1;
  (void)co_await weave::get_running_loop().sock_recv(fd, 10);
}

weave::Coro<void> sock_main() {
  int fds[2];
  CO_ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  weave::Task<void> r = weave::create_task(sock_receiver(fds[0]), "receiver");
  co_await settle();
  g_text = weave::format_call_graph(r);
  r.cancel();
  (void)co_await weave::gather_settled(r);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(CallGraph, SockRecvNamesItsLine) {
  g_text.clear();
  run_bounded(sock_main());
  const std::string expected =
      "* Task(name='receiver', id=0xID)\n"
      "  + Call stack:\n"
      "  |   in async weave::EventLoop::sock_recv_into(int, std::span<char, "
      "18446744073709551615ul>, weave::detail::CallSite)\n"
      "  |   in async weave::EventLoop::sock_recv[abi:cxx11](int, unsigned long, "
      "weave::detail::CallSite)\n"
      "  |   " +
      at(g_sock_recv_line) + "(anonymous namespace)::sock_receiver(int)";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- get_stack / print_stack
// ----------------------------------------------------------------------
std::string read_all(std::FILE* f) {
  std::rewind(f);
  std::string out;
  char buf[512];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  return out;
}

weave::Coro<void> stack_main() {
  weave::Task<void> t = weave::create_task(waits_for_coro(), "stacked");
  co_await settle();
  std::vector<weave::FrameCallGraphEntry> stack = t.get_stack();
  g_text.clear();
  for (const weave::FrameCallGraphEntry& e : stack) {
    g_text += e.name + (e.file != nullptr ? " @" + std::to_string(e.line) : std::string()) + "\n";
  }
  std::FILE* f = std::tmpfile();
  t.print_stack(f);
  t.cancel();
  try {
    co_await t;
  } catch (const weave::CancelledError&) {
  }
  t.print_stack(f);
  g_text += read_all(f);
  std::fclose(f);
}

TEST(CallGraph, GetStackAndPrintStackOldestFirst) {
  run_bounded(stack_main());
  const std::string timeout_coro =
      "weave::detail::timeout_at_impl<weave::Coro<void> "
      ">(std::chrono::time_point<std::chrono::_V2::"
      "steady_clock, std::chrono::duration<long, std::ratio<1l, 1000000000l> > >, "
      "weave::Coro<void>, weave::detail::CallSite)";
  const std::string line = std::to_string(g_sleep_line);
  const std::string expected = "(anonymous namespace)::waits_for_coro()\n" + timeout_coro +
                               "\n"
                               "(anonymous namespace)::sleeper() @" +
                               line + "\n" + kSleepFrame +
                               "\n"
                               "Stack for <Task pending name='stacked'> (most recent call last):\n"
                               "  in (anonymous namespace)::waits_for_coro()\n"
                               "  in " +
                               timeout_coro +
                               "\n"
                               "  File \"test_graph.cpp\", line " +
                               line +
                               ", in (anonymous namespace)::sleeper()\n"
                               "  in " +
                               kSleepFrame +
                               "\n"
                               "No stack for <Task cancelled name='stacked'>\n";
  EXPECT_EQ(normalise(g_text), expected);
}

// ---- outside a task
// ---------------------------------------------------------------------------------
TEST(CallGraph, NothingOutsideATaskAndRuntimeErrorOutsideALoop) {
  EXPECT_THROW((void)weave::capture_call_graph(), weave::RuntimeError);
  weave::EventLoop loop;
  bool empty = false;
  loop.call_soon(
      [&] { empty = !weave::capture_call_graph() && weave::format_call_graph().empty(); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  loop.close();
  EXPECT_TRUE(empty);
}

// ---- a finished task has no stack and no awaiter; a future is listed with who awaits it
// ----------
weave::Coro<void> awaits_future(weave::Future<int> f) {
  (void)co_await f;
}

weave::Coro<void> future_main() {
  weave::Future<int> f = weave::get_running_loop().create_future<int>();
  weave::Task<void> t = weave::create_task(awaits_future(f), "awaiting");
  co_await settle();
  g_text = weave::format_call_graph(weave::capture_call_graph(f));
  f.set_result(1);
  co_await t;
  g_text += "\n" + weave::format_call_graph(t);
}

TEST(CallGraph, FutureAwaitedByTaskAndFinishedTask) {
  run_bounded(future_main());
  const std::string expected =
      "* Future(id=0xID)\n"
      "  + Awaited by:\n"
      "    * Task(name='awaiting', id=0xID)\n"
      "      + Call stack:\n"
      "      |   in async (anonymous namespace)::awaits_future(weave::Future<int>)\n"
      "* Task(name='awaiting', id=0xID)";
  EXPECT_EQ(normalise(g_text), expected);
}

}  // namespace
