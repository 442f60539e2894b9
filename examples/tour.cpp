// The tour: each asyncio idea, working and measured. Run it with `make tour`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::Coro;

namespace {
double since(weave::Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(weave::Clock::now() - t0).count();
}
Coro<void> foo() {
  std::puts("Running in foo");
  co_await weave::sleep(0s);
  std::puts("Explicit context switch to foo again");
}
Coro<void> bar() {
  std::puts("Explicit context to bar");
  co_await weave::sleep(0s);
  std::puts("Implicit context switch back to bar");
}
Coro<int> query(int id) {
  co_await weave::sleep(50ms);
  co_return id;
}
// A named coroutine, not a temporary lambda: a lambda's captures die with the lambda object.
Coro<int> consume(weave::Queue<int>& q, int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await q.get();
  co_return sum;
}
Coro<void> worker(const char* name, std::chrono::milliseconds work) {
  try {
    co_await weave::sleep(work);
    std::printf("  %s finished\n", name);
  } catch (const weave::CancelledError&) {
    std::printf("  %s cancelled\n", name);
    throw;
  }
}
Coro<void> failing_worker(std::chrono::milliseconds after) {
  co_await weave::sleep(after);
  std::puts("  failing child raises ValueError");
  throw weave::ValueError("bad input");
}
Coro<void> taskgroup_section() {
  std::puts("\n== TaskGroup: a failing child cancels its siblings");
  const auto t0 = weave::Clock::now();
  try {
    co_await weave::task_group([](weave::TaskGroup& tg) -> Coro<void> {
      tg.create_task(worker("fast child", 5ms));
      tg.create_task(worker("slow child", 1s));
      tg.create_task(failing_worker(20ms));
      co_return;
    });
  } catch (const weave::ExceptionGroup& group) {
    std::printf("ExceptionGroup: %s, after %.1f ms (not 1 s)\n", group.what(), since(t0));
  }
}
// A server whose every answer takes 10 ms (a database behind it, say), and clients that ask it
// one question each: one client after another, then all at once.
Coro<void> slow_echo(weave::StreamReader reader, weave::StreamWriter writer) {
  std::string line = co_await reader.readline();
  co_await weave::sleep(10ms);
  writer.write(line);
  co_await writer.drain();
  writer.close();
}
Coro<bool> ask(std::uint16_t port, int id) {
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port);
  const std::string question = "question " + std::to_string(id) + "\n";
  writer.write(question);
  const bool answered = co_await reader.readline() == question;
  writer.close();
  co_await writer.wait_closed();
  co_return answered;
}
Coro<void> echo_clients_section() {
  constexpr int kClients = 100;
  std::printf("\n== %d clients of an echo server that takes 10 ms per answer\n", kClients);
  weave::Server server = co_await weave::start_server(slow_echo, "127.0.0.1", 0);
  const std::uint16_t port = server.sockets().at(0).getsockname().port();
  auto t0 = weave::Clock::now();
  int answered = 0;
  for (int i = 0; i < kClients; ++i) answered += co_await ask(port, i);
  const double one_by_one = since(t0);
  std::printf("one after another: %d answers in %.1f ms\n", answered, one_by_one);
  std::vector<Coro<bool>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(ask(port, i));
  t0 = weave::Clock::now();
  auto results = co_await weave::gather(std::move(clients));
  const double together = since(t0);
  answered = static_cast<int>(std::count(results.begin(), results.end(), true));
  std::printf("all at once:       %d answers in %.1f ms (%.0fx faster, %s backend)\n", answered,
              together, one_by_one / together, weave::get_running_loop().backend_name());
  server.close();
  co_await server.wait_closed();
}
Coro<void> tour() {
  std::puts("== gather(foo(), bar())");
  co_await weave::gather(foo(), bar());

  std::puts("\n== two 50 ms queries, one after the other, then gathered");
  auto t0 = weave::Clock::now();
  co_await query(1);
  co_await query(2);
  std::printf("sequential: %.1f ms\n", since(t0));
  t0 = weave::Clock::now();
  co_await weave::gather(query(1), query(2));
  std::printf("gathered:   %.1f ms\n", since(t0));

  std::puts("\n== producer/consumer over a Queue");
  weave::Queue<int> q(2);
  auto consumer = weave::create_task(consume(q, 5));
  for (int i = 1; i <= 5; ++i) co_await q.put(i);
  std::printf("consumer summed %d\n", co_await consumer);

  co_await taskgroup_section();
  co_await echo_clients_section();

  std::puts("\n== timeout(20 ms, sleep(1 s))");
  t0 = weave::Clock::now();
  try {
    co_await weave::timeout(20ms, weave::sleep(1s));
  } catch (const weave::TimeoutError&) {
    std::printf("TimeoutError after %.1f ms\n", since(t0));
  }
}
}  // namespace

int main() {
  weave::run(tour());
  return 0;
}
