// The epoll backend. Facts it relies on:
// - An eventfd registered for EPOLLIN is the cross-thread wakeup: a write makes epoll_wait return;
//   the counter is drained here so that the fd stops being readable (level-triggered on purpose:
//   a wakeup that races with the drain is never lost, it only costs one more return).
// - Watched fds are registered level-triggered with the union of their interests; the
//   registration changes only when that union changes, and goes when it is empty. Events carry
//   the fd, which indexes entries_, so a listener that unwatches during dispatch is never called
//   through a stale pointer.
// - Stream sockets (attach_stream) are registered edge-triggered once, for as long as they live:
//   an edge marks the socket readable, and while receiving the backend reads it at once into one
//   loop-wide buffer. A read shorter than the buffer means the socket is drained (the next
//   arrival raises a new edge), so a message costs one recv and no epoll_ctl. A socket left
//   readable (paused, or read a few times already this round, for fairness) is kept on a
//   pending list that the next poll() serves without blocking.
// - epoll_pwait2 takes a nanosecond timeout, so timers neither fire early nor spin a few times
//   through a rounded-down millisecond; kernels before 5.11 get epoll_wait, rounded up.

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string_view>
#include <vector>

#include "io/backend.hpp"
#include "weave/errors.hpp"

namespace weave::io {
namespace {

class EpollBackend final : public Backend {
 public:
  EpollBackend() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw os_error(errno, "epoll_create1");
    wakefd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakefd_ < 0) {
      int err = errno;
      close(epfd_);
      throw os_error(err, "eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wakefd_;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  }
  ~EpollBackend() override {
    close(wakefd_);
    close(epfd_);
  }

  const char* name() const noexcept override { return "epoll"; }

  void poll(std::optional<std::chrono::nanoseconds> timeout) override {
    if (!pending_.empty()) timeout = std::chrono::nanoseconds(0);
    epoll_event events[128];
    int n = wait(events, 128, timeout);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wakefd_) {
        eventfd_t value;
        (void)eventfd_read(wakefd_, &value);
        continue;
      }
      dispatch(fd, events[i].events);
    }
    serve_pending();
  }

  bool attach_stream(int fd, StreamListener* listener) override {
    if (fd < 0) return false;
    if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1);
    Entry& e = entries_[fd];
    e.stream = listener;
    e.receiving = false;
    e.readable = false;
    e.hung_up = false;
    update(fd, e);
    return true;
  }

  void set_receiving(int fd, bool on) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Entry& e = entries_[fd];
    if (e.stream == nullptr) return;
    e.receiving = on;
    if (on && e.readable) make_pending(fd, e);
  }

  void detach_stream(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Entry& e = entries_[fd];
    if (e.stream == nullptr) return;
    e.stream = nullptr;
    e.receiving = false;
    e.readable = false;
    try {
      update(fd, e);
    } catch (...) {
      e.registered = 0;
    }
  }

  void wakeup() noexcept override { (void)eventfd_write(wakefd_, 1); }

  void watch(int fd, Interest interest, ReadyListener* listener) override {
    if (fd < 0) throw os_error(EBADF, "watch");
    if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1);
    Entry& e = entries_[fd];
    ReadyListener* before = e.listeners[index(interest)];
    e.listeners[index(interest)] = listener;
    try {
      update(fd, e);
    } catch (...) {
      e.listeners[index(interest)] = before;
      throw;
    }
  }

  void unwatch(int fd, Interest interest) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Entry& e = entries_[fd];
    e.listeners[index(interest)] = nullptr;
    try {
      update(fd, e);
    } catch (...) {
      // The fd was closed under us: the kernel dropped the registration already.
      e.registered = 0;
    }
  }

  bool watched(int fd, Interest interest) const noexcept override {
    return fd >= 0 && static_cast<std::size_t>(fd) < entries_.size() &&
           entries_[fd].listeners[index(interest)] != nullptr;
  }

 private:
  struct Entry {
    ReadyListener* listeners[2] = {nullptr, nullptr};
    StreamListener* stream = nullptr;  ///< an attached stream: registered edge-triggered
    std::uint32_t registered = 0;      ///< the events epoll holds for this fd (0: not registered)
    bool receiving = false;
    bool readable = false;  ///< an edge came and the socket was not read empty since
    bool hung_up = false;   ///< the peer closed (or failed): read until EOF or the error
    bool pending = false;   ///< on pending_
  };

  static constexpr std::size_t kReadSize = std::size_t{256} * 1024;
  static constexpr int kReadsPerRound = 4;  ///< then other sockets get their turn

  void make_pending(int fd, Entry& e) {
    if (e.pending) return;
    e.pending = true;
    pending_.push_back(fd);
  }

  void serve_pending() {
    if (pending_.empty()) return;
    serving_.clear();
    serving_.swap(pending_);
    for (int fd : serving_) {
      if (static_cast<std::size_t>(fd) >= entries_.size()) continue;
      Entry& e = entries_[fd];
      e.pending = false;
      if (e.stream != nullptr && e.receiving && e.readable) read_stream(fd);
    }
  }

  /// Reads while the socket has data and the stream wants it, at most kReadsPerRound times.
  void read_stream(int fd) {
    if (!read_buffer_) read_buffer_.reset(new char[kReadSize]);
    for (int round = 0; round < kReadsPerRound; ++round) {
      Entry* e = &entries_[fd];
      if (e->stream == nullptr || !e->receiving) return;  // paused: stays readable
      const ssize_t n = ::recv(fd, read_buffer_.get(), kReadSize, 0);
      if (n > 0) {
        // A short read drained the socket, unless the peer also closed: then the EOF (or the
        // error) is still to be read, and no further edge will announce it.
        const bool drained = static_cast<std::size_t>(n) < kReadSize && !e->hung_up;
        if (drained) e->readable = false;
        e->stream->on_data(std::string_view(read_buffer_.get(), static_cast<std::size_t>(n)));
        if (drained) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        e->readable = false;
        return;
      }
      const int error = n == 0 ? 0 : errno;
      e->readable = false;
      e->receiving = false;
      e->stream->on_read_end(error);
      return;
    }
    Entry& e = entries_[fd];
    if (e.stream != nullptr && e.readable) make_pending(fd, e);
  }
  static constexpr int index(Interest i) noexcept { return static_cast<int>(i); }

  void update(int fd, Entry& e) {
    const bool reads = e.listeners[0] != nullptr || e.stream != nullptr;
    const std::uint32_t want = (reads ? EPOLLIN | EPOLLRDHUP : 0u) |
                               (e.listeners[1] != nullptr ? EPOLLOUT : 0u) |
                               (e.stream != nullptr ? static_cast<std::uint32_t>(EPOLLET) : 0u);
    if (want == e.registered) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = fd;
    const int op = want == 0 ? EPOLL_CTL_DEL : e.registered == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(epfd_, op, fd, &ev) < 0) {
      const int err = errno;
      if (op == EPOLL_CTL_DEL && (err == EBADF || err == ENOENT)) {
        e.registered = 0;
        return;
      }
      throw os_error(err, "epoll_ctl");
    }
    e.registered = want;
  }

  void dispatch(int fd, std::uint32_t events) {
    if (static_cast<std::size_t>(fd) >= entries_.size()) return;
    constexpr std::uint32_t kFailed = EPOLLERR | EPOLLHUP;
    if ((events & (EPOLLIN | EPOLLRDHUP | kFailed)) != 0) {
      Entry& e = entries_[fd];
      if (e.stream != nullptr) {
        e.readable = true;
        if ((events & (EPOLLRDHUP | kFailed)) != 0) e.hung_up = true;
        if (e.receiving) read_stream(fd);
      } else if (ReadyListener* l = e.listeners[0]) {
        l->on_ready();
      }
    }
    if ((events & (EPOLLOUT | kFailed)) != 0) {
      if (ReadyListener* l = entries_[fd].listeners[1]) l->on_ready();
    }
  }

  int wait(epoll_event* events, int max, std::optional<std::chrono::nanoseconds> timeout) {
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout) {
      auto ns = timeout->count() < 0 ? 0 : timeout->count();
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    if (have_pwait2_) {
      int n = epoll_pwait2(epfd_, events, max, tsp, nullptr);
      if (n >= 0 || errno == EINTR) return n < 0 ? 0 : n;
      if (errno != ENOSYS) throw os_error(errno, "epoll_pwait2");
      have_pwait2_ = false;
    }
    int ms = -1;
    if (timeout) ms = static_cast<int>((timeout->count() + 999999) / 1000000);
    int n = epoll_wait(epfd_, events, max, ms);
    if (n < 0 && errno != EINTR) throw os_error(errno, "epoll_wait");
    return n < 0 ? 0 : n;
  }

  std::vector<Entry> entries_;  ///< indexed by fd
  std::vector<int> pending_;    ///< streams still readable, served by the next poll()
  std::vector<int> serving_;
  std::unique_ptr<char[]> read_buffer_;
  int epfd_ = -1;
  int wakefd_ = -1;
  bool have_pwait2_ = true;
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend() {
  return std::make_unique<EpollBackend>();
}

}  // namespace weave::io
