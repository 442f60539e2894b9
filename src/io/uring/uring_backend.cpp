// The io_uring backend. Facts it relies on:
// - The ring is set up SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them (6.1+): completions
//   are then processed only when this thread enters the kernel to wait, which is what the loop
//   does once per iteration; COOP_TASKRUN, then no flags, are the fallbacks.
// - The cross-thread wakeup is an eventfd with a read armed on the ring: a write completes the
//   read, which wakes io_uring_submit_and_wait_timeout; the read is re-armed when reaped.
// - One io_uring_enter per iteration: submissions and the wait go in the same call.

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "io/backend.hpp"
#include "weave/errors.hpp"

namespace weave::io {
namespace {

constexpr std::uint64_t kWakeTag = 1;

class UringBackend final : public Backend {
 public:
  bool init() {
    // A single-issuer ring belongs to the first thread that submits; R_DISABLED defers that to
    // the first poll, so a loop may be built on one thread and run on another.
    const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_COOP_TASKRUN, 0};
    int rc = -1;
    for (unsigned flags : modes) {
      rc = io_uring_queue_init(256, &ring_, flags);
      if (rc == 0) {
        disabled_ = (flags & IORING_SETUP_R_DISABLED) != 0;
        break;
      }
    }
    if (rc != 0) return false;
    ring_ok_ = true;
    wakefd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakefd_ < 0) return false;
    arm_wake();
    return true;
  }
  ~UringBackend() override {
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (wakefd_ >= 0) close(wakefd_);
  }

  const char* name() const noexcept override { return "io_uring"; }

  void poll(std::optional<std::chrono::nanoseconds> timeout) override {
    if (disabled_) {
      // liburing 2.3 declares io_uring_enable_rings but does not export it: the raw call.
      if (syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) <
          0) {
        throw os_error(errno, "io_uring_register(ENABLE_RINGS)");
      }
      disabled_ = false;
    }
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{};
    __kernel_timespec* tsp = nullptr;
    if (timeout) {
      auto ns = timeout->count() < 0 ? 0 : timeout->count();
      ts.tv_sec = ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      tsp = &ts;
    }
    int rc;
    if (tsp != nullptr && ts.tv_sec == 0 && ts.tv_nsec == 0) {
      io_uring_submit_and_get_events(&ring_);
      rc = io_uring_peek_cqe(&ring_, &cqe);
    } else {
      rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      throw os_error(-rc, "io_uring_submit_and_wait_timeout");
    }
    reap();
  }

  void wakeup() noexcept override { (void)eventfd_write(wakefd_, 1); }

 private:
  void reap() {
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    bool rearm = false;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      if (io_uring_cqe_get_data64(cqe) == kWakeTag) rearm = true;
    }
    io_uring_cq_advance(&ring_, count);
    if (rearm) arm_wake();
  }

  void arm_wake() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data64(sqe, kWakeTag);
  }

  io_uring ring_{};
  bool ring_ok_ = false;
  bool disabled_ = false;  ///< created R_DISABLED: enabled by the first poll, on the loop thread
  int wakefd_ = -1;
  std::uint64_t wake_value_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_uring_backend() {
  auto backend = std::make_unique<UringBackend>();
  if (!backend->init()) return nullptr;
  return backend;
}

}  // namespace weave::io
