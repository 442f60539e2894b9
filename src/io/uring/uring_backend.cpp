// The io_uring backend. Facts it relies on:
// - The ring is set up SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them (6.1+): completions
//   are then processed only when this thread enters the kernel to wait, which is what the loop
//   does once per iteration; COOP_TASKRUN, then no flags, are the fallbacks.
// - The cross-thread wakeup is an eventfd with a read armed on the ring: a write completes the
//   read, which wakes io_uring_submit_and_wait_timeout; the read is re-armed when reaped.
// - One io_uring_enter per iteration: submissions and the wait go in the same call.
// - Readiness (watch) is a one-shot POLL_ADD, re-armed after each completion while the fd is still
//   watched: level-triggered, and arming costs an SQE, not a syscall. A poll's user data names
//   (fd, interest, generation) rather than a pointer; unwatch bumps the generation and removes the
//   poll, so a late completion is recognised as stale and never reaches freed memory.

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "io/backend.hpp"
#include "weave/errors.hpp"

namespace weave::io {
namespace {

constexpr std::uint64_t kWakeTag = 1;
constexpr std::uint64_t kIgnoreTag = 2;         ///< completions nobody waits for (poll removal)
constexpr std::uint64_t kPollTag = 1ULL << 63;  ///< | gen << 33 | interest << 32 | fd

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

  void watch(int fd, Interest interest, ReadyListener* listener) override {
    if (fd < 0) throw os_error(EBADF, "watch");
    if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1);
    Watch& w = entries_[fd].watches[static_cast<int>(interest)];
    w.listener = listener;
    if (!w.armed) arm_poll(fd, interest, w);
  }

  void unwatch(int fd, Interest interest) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Watch& w = entries_[fd].watches[static_cast<int>(interest)];
    w.listener = nullptr;
    if (!w.armed) return;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_remove(sqe, poll_tag(fd, interest, w.generation));
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
    w.armed = false;
    ++w.generation;  // the removed poll's completion, if it comes, is stale
  }

  bool watched(int fd, Interest interest) const noexcept override {
    return fd >= 0 && static_cast<std::size_t>(fd) < entries_.size() &&
           entries_[fd].watches[static_cast<int>(interest)].listener != nullptr;
  }

 private:
  struct Watch {
    ReadyListener* listener = nullptr;
    std::uint32_t generation = 0;
    bool armed = false;  ///< a poll with this generation is in the kernel
  };
  struct Entry {
    Watch watches[2];
  };

  static std::uint64_t poll_tag(int fd, Interest interest, std::uint32_t generation) noexcept {
    return kPollTag | (static_cast<std::uint64_t>(generation & 0x3fffffffU) << 33) |
           (static_cast<std::uint64_t>(interest) << 32) | static_cast<std::uint32_t>(fd);
  }

  void arm_poll(int fd, Interest interest, Watch& w) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_add(sqe, fd, interest == Interest::Read ? POLLIN | POLLRDHUP : POLLOUT);
    io_uring_sqe_set_data64(sqe, poll_tag(fd, interest, w.generation));
    w.armed = true;
  }

  void on_poll(std::uint64_t tag, int res) {
    const int fd = static_cast<int>(tag & 0xffffffffU);
    const auto interest = static_cast<Interest>((tag >> 32) & 1U);
    const auto generation = static_cast<std::uint32_t>((tag >> 33) & 0x3fffffffU);
    if (static_cast<std::size_t>(fd) >= entries_.size()) return;
    Watch& w = entries_[fd].watches[static_cast<int>(interest)];
    if (!w.armed || (w.generation & 0x3fffffffU) != generation) return;  // stale
    w.armed = false;
    ++w.generation;
    if (w.listener == nullptr) return;
    w.listener->on_ready();
    // Still watched (a persistent callback): level-triggered means asking again. A failed poll
    // (the fd was closed) is not re-armed: the listener's next syscall reports the error.
    Watch& again = entries_[fd].watches[static_cast<int>(interest)];
    if (again.listener != nullptr && !again.armed && res >= 0) arm_poll(fd, interest, again);
  }

  void reap() {
    // Completions are copied out first: a listener may queue SQEs, which never disturbs the CQ,
    // but the CQ is advanced before any of them run so that none is seen twice.
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    bool rearm = false;
    completed_.clear();
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      const std::uint64_t tag = io_uring_cqe_get_data64(cqe);
      if (tag == kWakeTag) {
        rearm = true;
      } else if ((tag & kPollTag) != 0) {
        completed_.push_back({tag, cqe->res});
      }
    }
    io_uring_cq_advance(&ring_, count);
    if (rearm) arm_wake();
    for (const Completion& c : completed_) on_poll(c.tag, c.res);
  }

  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
      io_uring_submit(&ring_);  // the SQ is full: hand it to the kernel now
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void arm_wake() {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_read(sqe, wakefd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data64(sqe, kWakeTag);
  }

  struct Completion {
    std::uint64_t tag;
    int res;
  };
  std::vector<Entry> entries_;  ///< indexed by fd
  std::vector<Completion> completed_;

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
