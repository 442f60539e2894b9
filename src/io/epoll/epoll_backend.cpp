// The epoll backend. Facts it relies on:
// - An eventfd registered for EPOLLIN is the cross-thread wakeup: a write makes epoll_wait return;
//   the counter is drained here so that the fd stops being readable (level-triggered on purpose:
//   a wakeup that races with the drain is never lost, it only costs one more return).
// - epoll_pwait2 takes a nanosecond timeout, so timers neither fire early nor spin a few times
//   through a rounded-down millisecond; kernels before 5.11 get epoll_wait, rounded up.

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

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
    epoll_event events[64];
    int n = wait(events, 64, timeout);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wakefd_) {
        eventfd_t value;
        (void)eventfd_read(wakefd_, &value);
      }
    }
  }

  void wakeup() noexcept override { (void)eventfd_write(wakefd_, 1); }

 private:
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

  int epfd_ = -1;
  int wakefd_ = -1;
  bool have_pwait2_ = true;
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend() {
  return std::make_unique<EpollBackend>();
}

}  // namespace weave::io
