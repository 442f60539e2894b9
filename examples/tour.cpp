// The tour: each asyncio idea, working and measured. Run it with `make tour`.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sections.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave::Coro;

namespace {
using tour::since;
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
  clients.reserve(kClients);
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
// UDP: a DatagramProtocol answers each datagram; the client's protocol puts what arrives on a
// Queue, so that a coroutine can await the answers one by one.
class UdpEcho final : public weave::DatagramProtocol {
 public:
  void connection_made(weave::DatagramTransport& transport) override { transport_ = &transport; }
  void datagram_received(std::string_view data, const weave::SocketAddress& addr) override {
    transport_->sendto(data, addr);
  }

 private:
  weave::DatagramTransport* transport_ = nullptr;
};
class UdpInbox final : public weave::DatagramProtocol {
 public:
  void datagram_received(std::string_view data, const weave::SocketAddress&) override {
    inbox.put_nowait(std::string(data));
  }
  weave::Queue<std::string> inbox;
};
Coro<void> udp_section() {
  constexpr int kPings = 1000;
  std::printf("\n== UDP: %d datagrams to an echo endpoint, one at a time\n", kPings);
  auto& loop = weave::get_running_loop();
  weave::DatagramEndpointOptions server_opts;
  server_opts.local_addr = weave::HostPort("127.0.0.1", 0);
  weave::DatagramEndpoint server = co_await loop.create_datagram_endpoint(
      [] { return std::make_shared<UdpEcho>(); }, server_opts);
  weave::DatagramEndpointOptions client_opts;
  client_opts.remote_addr = weave::HostPort(server.transport->get_extra_info("sockname").host(),
                                            server.transport->get_extra_info("sockname").port());
  auto inbox = std::make_shared<UdpInbox>();
  weave::DatagramEndpoint client =
      co_await loop.create_datagram_endpoint([inbox] { return inbox; }, client_opts);
  int answered = 0;
  const auto t0 = weave::Clock::now();
  for (int i = 0; i < kPings; ++i) {
    const std::string ping = "ping " + std::to_string(i);
    client.transport->sendto(ping);
    answered += co_await inbox->inbox.get() == ping;
  }
  const double elapsed = since(t0);
  std::printf("%d answers in %.1f ms: %.1f us per round trip\n", answered, elapsed,
              elapsed * 1000 / kPings);
  client.transport->close();
  server.transport->close();
}
Coro<void> core_tour() {
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
  co_await udp_section();

  std::puts("\n== timeout(20 ms, sleep(1 s))");
  t0 = weave::Clock::now();
  try {
    co_await weave::timeout(20ms, weave::sleep(1s));
  } catch (const weave::TimeoutError&) {
    std::printf("TimeoutError after %.1f ms\n", since(t0));
  }

  co_await tour::http_section();
  co_await tour::pg_section();
}

// ---- blocking calls and threads ----------------------------------------------------------------
void block_200ms() {
  std::this_thread::sleep_for(200ms);
}
Coro<void> tick_every_20ms(std::vector<double>& ticks, weave::Clock::time_point t0) {
  for (;;) {
    co_await weave::sleep(20ms);
    ticks.push_back(since(t0));
  }
}
// A ticker runs while the main task makes a 200 ms blocking call, inline or through to_thread.
Coro<std::vector<double>> ticks_around(bool in_thread) {
  std::vector<double> ticks;
  auto ticker = weave::create_task(tick_every_20ms(ticks, weave::Clock::now()));
  co_await weave::sleep(50ms);
  if (in_thread) {
    co_await weave::to_thread(block_200ms);
  } else {
    block_200ms();  // the loop is stuck here: nothing else runs
  }
  co_await weave::sleep(50ms);
  ticker.cancel();
  try {
    co_await ticker;
  } catch (const weave::CancelledError&) {
  }
  co_return ticks;
}
void print_ticks(const std::vector<double>& ticks) {
  std::printf("ticks (ms):");
  for (double t : ticks) std::printf(" %.0f", t);
  std::printf("\n");
}
Coro<void> blocking_calls() {
  std::puts("\n== a 200 ms blocking call freezes the loop; to_thread() keeps it ticking");
  std::vector<double> ticks = co_await ticks_around(false);
  print_ticks(ticks);
  double gap = 0;
  for (std::size_t i = 1; i < ticks.size(); ++i) gap = std::max(gap, ticks[i] - ticks[i - 1]);
  std::printf("inline: the ticker froze, longest gap %.0f ms\n", gap);
  ticks = co_await ticks_around(true);
  print_ticks(ticks);
  double jitter = 0;
  for (std::size_t i = 1; i < ticks.size(); ++i) {
    jitter = std::max(jitter, std::abs(ticks[i] - ticks[i - 1] - 20.0));
  }
  std::printf("to_thread: %zu ticks, max jitter %.2f ms\n", ticks.size(), jitter);
}

// A plain function: ProcessPoolExecutor sends it to a worker process by address.
double burn(int rounds) {
  double acc = 0;
  for (int i = 1; i <= rounds; ++i) acc += std::sqrt(static_cast<double>(i)) / i;
  return acc;
}
constexpr int kCalls = 4;
constexpr int kRounds = 25'000'000;
template <class Executor>
Coro<double> burn_on(Executor& executor) {
  weave::EventLoop& loop = weave::get_running_loop();
  co_await loop.run_in_executor(&executor, &burn, 1);  // the workers are up before timing
  auto t0 = weave::Clock::now();
  std::vector<weave::Future<double>> calls;
  calls.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) calls.push_back(loop.run_in_executor(&executor, &burn, kRounds));
  double total = 0;
  for (auto& call : calls) total += co_await call;
  co_return total > 0 ? since(t0) : 0;
}
Coro<void> cpu_bound_work() {
  const int workers = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  std::printf("\n== %d CPU-bound calls: in the loop, then on %d threads, then on %d processes\n",
              kCalls, workers, workers);
  auto t0 = weave::Clock::now();
  double total = 0;  // used, so that the calls are not optimised away
  for (int i = 0; i < kCalls; ++i) total += burn(kRounds);
  double sequential = since(t0);
  weave::concurrent::ThreadPoolExecutor threads(workers);
  double threaded = co_await burn_on(threads);
  weave::concurrent::ProcessPoolExecutor processes(workers);
  double in_processes = co_await burn_on(processes);
  std::printf("sequential:          %6.0f ms  (sum %.1f)\n", sequential, total);
  std::printf("ThreadPoolExecutor:  %6.0f ms  (%.1fx; C++ threads have no GIL)\n", threaded,
              sequential / threaded);
  std::printf("ProcessPoolExecutor: %6.0f ms  (%.1fx)\n", in_processes, sequential / in_processes);
}
Coro<void> threads_tour() {
  co_await blocking_calls();
  co_await cpu_bound_work();
}
}  // namespace

int main() {
  weave::run(core_tour());
  weave::run(threads_tour());
  weave::run(tour::pipeline_section());
  weave::run(tour::trace_section());
  weave::run(tour::graph_section());
  weave::run(tour::ps_section());
  return 0;
}
