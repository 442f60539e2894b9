// Idle connections must cost memory, not CPU per loop iteration: the time of one loop iteration
// (a task sleeping 10 µs, so that every iteration blocks in the backend's poll, which a
// sleep(0) loop skips)
// with 10 idle connections, then with 10,000, on the backend
// WEAVE_BACKEND names. Prints both and their ratio; 1.0 means idle connections cost nothing.
//   io_idle [connections]
// The client ends live in a child process (one process could not hold both ends of 10,000).

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "weave/weave.hpp"

namespace {

using namespace std::chrono_literals;

[[noreturn]] void hold_connections(std::uint16_t port, int count) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) _exit(2);
    fds.push_back(fd);
  }
  ::pause();  // until the parent kills us
  _exit(0);
}

class Idle final : public weave::Protocol {
 public:
  explicit Idle(int* open) : open_(open) {}
  void connection_made(weave::Transport&) override { ++*open_; }
  void connection_lost(std::exception_ptr) override { --*open_; }

 private:
  int* open_;
};

weave::Coro<double> ns_per_iteration(int iterations) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) co_await weave::sleep(std::chrono::microseconds(10));
  co_return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0)
          .count() /
      iterations;
}

weave::Coro<double> measure(int connections) {
  int open = 0;
  weave::Server server = co_await weave::get_running_loop().create_server(
      [&] { return std::make_shared<Idle>(&open); }, "127.0.0.1", 0,
      weave::ServerOptions{.backlog = 4096});
  const pid_t child = ::fork();
  if (child == 0) hold_connections(server.sockets().at(0).getsockname().port(), connections);
  // The loop must run while the child connects: it accepts, so that the backlog never fills.
  while (open < connections) co_await weave::sleep(1ms);
  double best = 1e18;
  for (int round = 0; round < 5; ++round) best = std::min(best, co_await ns_per_iteration(20000));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  while (open > 0) co_await weave::sleep(1ms);
  server.close();
  co_await server.wait_closed();
  co_return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int many = argc > 1 ? std::atoi(argv[1]) : 10000;
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(many) + 200);
  setrlimit(RLIMIT_NOFILE, &lim);
  const double few_ns = weave::run(measure(10));
  const double many_ns = weave::run(measure(many));
  weave::EventLoop probe;
  std::printf("backend=%s idle=10 ns_per_iteration=%.1f idle=%d ns_per_iteration=%.1f ratio=%.2f\n",
              probe.backend_name(), few_ns, many, many_ns, many_ns / few_ns);
  return 0;
}
