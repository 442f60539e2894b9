// loop.sock_sendfile against a C loop of sendfile(2), same file, same run.
//
//   sendfile_bench [--size-mib N] [--repeats N]
//
// Writes a file of N MiB (default 1024) in a new temporary directory (removed at the end), then,
// for each repeat and in alternating order, sends the whole file over a fresh loopback TCP
// connection whose other end a thread drains with recv(2):
//   c_loop   a blocking socket and `while (left) sendfile(sock, file, &off, left)`
//   weave    a non-blocking socket and co_await loop.sock_sendfile(sock, file) on a weave loop
// Each figure is bytes / wall second from the first byte sent to the reader's last byte. Prints
// the medians, the spread (min..max) and weave / c_loop, with the target (>= 0.95).

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

struct Connection {
  int sender = -1;
  int receiver = -1;
};

/// A loopback TCP connection; the sender blocking or not as asked.
Connection connect_pair(bool nonblocking) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
  if (::listen(listener, 1) < 0) die("listen");
  if (::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0) die("getsockname");
  Connection c;
  c.sender = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(c.sender, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("connect");
  c.receiver = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (c.receiver < 0) die("accept");
  ::close(listener);
  if (nonblocking) ::fcntl(c.sender, F_SETFL, ::fcntl(c.sender, F_GETFL) | O_NONBLOCK);
  return c;
}

/// Reads until end of stream; returns the byte count.
std::size_t drain(int fd) {
  std::vector<char> buf(std::size_t{1} << 20);
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("recv");
    if (n == 0) return total;
    total += static_cast<std::size_t>(n);
  }
}

template <class Send>
double measure(int file, std::size_t size, bool nonblocking, Send send) {
  Connection c = connect_pair(nonblocking);
  std::size_t received = 0;
  const auto start = Clock::now();
  std::thread reader([&] { received = drain(c.receiver); });
  const std::size_t sent = send(c.sender, file, size);
  ::shutdown(c.sender, SHUT_WR);
  reader.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(c.sender);
  ::close(c.receiver);
  if (sent != size || received != size) {
    std::fprintf(stderr, "sent %zu, received %zu of %zu bytes\n", sent, received, size);
    std::exit(1);
  }
  return static_cast<double>(size) / seconds;
}

std::size_t c_loop(int sock, int file, std::size_t size) {
  off_t off = 0;
  std::size_t left = size;
  while (left > 0) {
    const ssize_t n = ::sendfile(sock, file, &off, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("sendfile");
    left -= static_cast<std::size_t>(n);
  }
  return size;
}

weave::Coro<std::size_t> weave_send(int sock, int file) {
  co_return co_await weave::get_running_loop().sock_sendfile(sock, file);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mib = 1024;
  int repeats = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--size-mib") == 0) mib = std::strtoul(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  }
  const std::size_t size = mib << 20;

  std::string dir_template = (std::filesystem::temp_directory_path() / "sendfile-bench-XXXXXX");
  if (::mkdtemp(dir_template.data()) == nullptr) die("mkdtemp");
  const std::filesystem::path dir = dir_template;
  const std::filesystem::path path = dir / "payload";
  const int file = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (file < 0) die("open");
  {
    std::vector<char> block(std::size_t{1} << 20);
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 131 + 7);
    for (std::size_t i = 0; i < mib; ++i) {
      if (::write(file, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
        die("write");
      }
    }
  }

  weave::EventLoop loop;
  std::vector<double> c_rates, weave_rates;
  for (int r = 0; r < repeats; ++r) {
    // Alternate which one goes first, so that drift in the machine's load hits both alike.
    for (int k = 0; k < 2; ++k) {
      if ((r + k) % 2 == 0) {
        c_rates.push_back(measure(file, size, false, c_loop));
      } else {
        weave_rates.push_back(measure(file, size, true, [&](int sock, int f, std::size_t) {
          return loop.run_until_complete(weave_send(sock, f));
        }));
      }
    }
  }
  loop.close();
  ::close(file);
  std::filesystem::remove_all(dir);

  auto row = [](const char* name, const std::vector<double>& v) {
    std::printf("%-8s median %7.2f GB/s   spread %.2f..%.2f GB/s\n", name, median(v) / 1e9,
                *std::min_element(v.begin(), v.end()) / 1e9,
                *std::max_element(v.begin(), v.end()) / 1e9);
  };
  std::printf("sendfile of a %zu MiB file over loopback TCP, %d interleaved repeats (backend %s)\n",
              mib, repeats, std::getenv("WEAVE_BACKEND") ? std::getenv("WEAVE_BACKEND") : "auto");
  row("c_loop", c_rates);
  row("weave", weave_rates);
  const double ratio = median(weave_rates) / median(c_rates);
  std::printf("weave / c_loop = %.3f (target >= 0.95): %s\n", ratio, ratio >= 0.95 ? "ok" : "MISS");
  return 0;
}
