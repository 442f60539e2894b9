#pragma once
// Real HTTP servers for the client's tests, each started on a free port on 127.0.0.1 in a temp
// directory and stopped by its pid (SIGKILL and waitpid in the destructor, so that a failed test
// leaves neither a process nor a file behind): Python's http.server running
// support/http_peer.py, and nginx with a generated configuration.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace weave_test {

/// A child process whose stdout is a pipe read without blocking.
class PeerProcess {
 public:
  /// Spawns `argv` (argv[0] a path); `stop_signal` ends it (SIGTERM lets nginx's master take
  /// its worker down with it).
  explicit PeerProcess(std::vector<std::string> argv, int stop_signal = SIGKILL)
      : stop_signal_(stop_signal) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      ::close(stdout_);
      throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv[0]);
    }
  }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  ~PeerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, stop_signal_);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }

  /// The first line of stdout starting with `prefix` (blocking, bounded by `limit`).
  std::string read_line(const std::string& prefix, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    ::fcntl(stdout_, F_SETFL, ::fcntl(stdout_, F_GETFL) | O_NONBLOCK);
    for (;;) {
      const std::size_t at = output_.find(prefix);
      const std::size_t end = at == std::string::npos ? at : output_.find('\n', at);
      if (end != std::string::npos) return output_.substr(at, end - at);
      char buf[512];
      const ssize_t n = ::read(stdout_, buf, sizeof buf);
      if (n > 0) {
        output_.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("peer did not print " + prefix);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
  pid_t pid() const noexcept { return pid_; }

 private:
  int stop_signal_;
  pid_t pid_ = -1;
  int stdout_ = -1;
  std::string output_;
};

/// A fresh temporary directory, removed with its contents by the destructor.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/weave-http-XXXXXX";
    if (::mkdtemp(templ) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
    std::filesystem::permissions(
        path_, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                   std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                   std::filesystem::perms::others_exec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// A port nothing listens on right now (bound, then closed).
inline std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Blocks until something accepts TCP connections on 127.0.0.1:`port`.
inline void wait_listening(std::uint16_t port, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(fd);
    if (rc == 0) return;
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("not listening");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

/// support/http_peer.py on Debian's python3.
class PythonPeer {
 public:
  /// On 127.0.0.1, or on ::1 when `ipv6`.
  explicit PythonPeer(bool ipv6 = false)
      : process_({"/usr/bin/python3",
                  (std::filesystem::path(__FILE__).parent_path() / "http_peer.py").string(),
                  ipv6 ? "--ipv6" : "--ipv4"}),
        host_(ipv6 ? "[::1]" : "127.0.0.1") {
    const std::string line = process_.read_line("PORT ", std::chrono::seconds(10));
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(5)));
  }
  std::uint16_t port() const noexcept { return port_; }
  std::string url(const std::string& path) const {
    return "http://" + host_ + ":" + std::to_string(port_) + path;
  }

 private:
  PeerProcess process_;
  std::string host_;
  std::uint16_t port_ = 0;
};

/// nginx serving `files` (name -> content) from a temp directory, gzip on, keep-alive, with
/// stub_status at /status; also https on a second port when given a certificate and key.
class NginxPeer {
 public:
  NginxPeer(const std::vector<std::pair<std::string, std::string>>& files,
            const std::string& cert_file = {}, const std::string& key_file = {})
      : port_(free_port()), tls_port_(cert_file.empty() ? 0 : free_port()) {
    std::filesystem::create_directories(dir_.path() + "/www");
    std::filesystem::create_directories(dir_.path() + "/logs");
    for (const auto& [name, content] : files) {
      std::ofstream(dir_.path() + "/www/" + name, std::ios::binary) << content;
    }
    std::string conf =
        "worker_processes 1;\n"
        "pid " +
        dir_.path() +
        "/nginx.pid;\n"
        "error_log " +
        dir_.path() +
        "/logs/error.log;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "  access_log off;\n"
        "  client_body_temp_path " +
        dir_.path() +
        "/body;\n"
        "  proxy_temp_path " +
        dir_.path() +
        "/proxy;\n"
        "  fastcgi_temp_path " +
        dir_.path() +
        "/fastcgi;\n"
        "  uwsgi_temp_path " +
        dir_.path() +
        "/uwsgi;\n"
        "  scgi_temp_path " +
        dir_.path() +
        "/scgi;\n"
        "  keepalive_requests 10000;\n"
        "  keepalive_timeout 60s;\n"
        "  gzip on; gzip_min_length 0; gzip_types text/plain application/octet-stream;\n"
        "  default_type text/plain;\n"
        "  server {\n"
        "    listen 127.0.0.1:" +
        std::to_string(port_) + ";\n";
    if (tls_port_ != 0) {
      conf += "    listen 127.0.0.1:" + std::to_string(tls_port_) +
              " ssl;\n"
              "    ssl_certificate " +
              cert_file +
              ";\n"
              "    ssl_certificate_key " +
              key_file + ";\n";
    }
    conf += "    root " + dir_.path() +
            "/www;\n"
            "    location = /status { stub_status; }\n"
            "  }\n"
            "}\n";
    std::ofstream(dir_.path() + "/nginx.conf") << conf;
    process_ = std::make_unique<PeerProcess>(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", dir_.path(), "-c",
                                 dir_.path() + "/nginx.conf", "-g", "daemon off;"},
        SIGTERM);
    wait_listening(port_, std::chrono::seconds(10));
    if (tls_port_ != 0) wait_listening(tls_port_, std::chrono::seconds(10));
  }
  std::uint16_t port() const noexcept { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string https_url(const std::string& path) const {
    return "https://localhost:" + std::to_string(tls_port_) + path;
  }

 private:
  TempDir dir_;
  std::uint16_t port_;
  std::uint16_t tls_port_;
  std::unique_ptr<PeerProcess> process_;
};

}  // namespace weave_test
