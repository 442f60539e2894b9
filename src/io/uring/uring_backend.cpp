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
// - Stream sockets receive with one multishot recv into a ring of provided buffers (registered
//   lazily, on the first stream): no syscall per read, and no read buffer per idle connection.
//   Each chunk is handed to the stream's listener and its buffer goes straight back to the ring;
//   consecutive completions that filled adjacent buffers go over as one chunk.
//   A recv's user data names (fd, session, arm): a chunk is delivered only to the stream that
//   asked for it (session), even after a pause; a cancelled arm's final completion is ignored.
// - A multishot accept holds its own reference to the listening socket: closing the fd leaves the
//   socket listening until the accept is over. stop_accepting therefore either turns the accept
//   SQE into a no-op while it is still queued, or cancels it in the kernel at once and waits for
//   the kernel to finish it, so that the caller's close() really closes the socket.

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
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
constexpr std::uint64_t kIgnoreTag = 2;  ///< completions nobody waits for (poll removal, cancel)
constexpr std::uint64_t kKindMask = 3ULL << 62;
constexpr std::uint64_t kPollTag = 1ULL << 62;    ///< | gen << 33 | interest << 32 | fd
constexpr std::uint64_t kRecvTag = 2ULL << 62;    ///< | session << 40 | arm << 32 | fd
constexpr std::uint64_t kAcceptTag = 3ULL << 62;  ///< | session << 40 | fd
constexpr std::uint32_t kGenMask = 0x1fffffffU;
constexpr std::uint32_t kSessionMask = 0x3fffffU;  ///< bits 40..61, below the kind

constexpr unsigned kRingEntries = 1024;
constexpr unsigned kCqEntries = 16384;
constexpr unsigned kBufferCount = 1024;  ///< provided buffers (a power of two)
/// Not a power of two: buffer starts that are 16 KiB apart would all fall in the same few cache
/// sets, and every receive would write to a line just evicted. One line more staggers them.
constexpr unsigned kBufferSize = 16 * 1024 + 64;
constexpr std::size_t kMaxRun = 16;  ///< buffers handed over in one on_data, as epoll's 256 KiB
constexpr int kBufferGroup = 1;

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
      // A large CQ: thousands of connections may complete in one iteration.
      io_uring_params params{};
      params.flags = flags | IORING_SETUP_CQSIZE;
      params.cq_entries = kCqEntries;
      rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
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
    if (buffer_memory_ != nullptr) ::munmap(buffer_memory_, buffer_bytes_);
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

  bool attach_stream(int fd, StreamListener* listener) override {
    if (fd < 0 || !buffers_ready()) return false;
    if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1);
    Stream& st = entries_[fd].stream;
    if (st.armed) cancel_recv(fd, st);
    st.listener = listener;
    ++st.session;
    st.receiving = false;
    return true;
  }

  void set_receiving(int fd, bool on) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Stream& st = entries_[fd].stream;
    if (st.listener == nullptr) return;
    st.receiving = on;
    if (on && !st.armed) arm_recv(fd, st);
    if (!on && st.armed) cancel_recv(fd, st);
  }

  bool start_accepting(int fd, AcceptListener* listener) override {
    if (fd < 0) return false;
    if (static_cast<std::size_t>(fd) >= entries_.size()) entries_.resize(fd + 1);
    Acceptor& a = entries_[fd].acceptor;
    if (a.armed && a.listener == listener) return true;
    if (a.armed) stop_accepting(fd);
    a.listener = listener;
    ++a.session;
    arm_accept(fd, a);
    return true;
  }

  void stop_accepting(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Acceptor& a = entries_[fd].acceptor;
    if (a.armed && !unqueue(accept_tag(fd, a))) cancel_now(accept_tag(fd, a));
    a.armed = false;
    a.listener = nullptr;
    ++a.session;  // connections of the cancelled accept are closed on arrival
  }

  bool native_files() const noexcept override { return true; }

  bool submit_file_op(const FileOp& op, OpListener* listener) override {
    io_uring_sqe* sqe = next_sqe();
    const auto offset = static_cast<__u64>(op.offset);
    switch (op.kind) {
      case FileOp::Kind::Open:
        io_uring_prep_openat(sqe, AT_FDCWD, op.path, op.flags, op.mode);
        break;
      case FileOp::Kind::Read:
        io_uring_prep_read(sqe, op.fd, op.data, op.size, offset);
        break;
      case FileOp::Kind::Write:
        io_uring_prep_write(sqe, op.fd, op.data, op.size, offset);
        break;
      case FileOp::Kind::Fsync:
        io_uring_prep_fsync(sqe, op.fd, 0);
        break;
      case FileOp::Kind::Close:
        io_uring_prep_close(sqe, op.fd);
        break;
    }
    // A pointer tag: user space pointers leave the two kind bits clear, and are never 1 or 2.
    io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(listener));
    return true;
  }

  void cancel_file_op(OpListener* listener) noexcept override {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(listener), 0);
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
  }

  void detach_stream(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return;
    Stream& st = entries_[fd].stream;
    if (st.armed) cancel_recv(fd, st);
    st.listener = nullptr;
    st.receiving = false;
    ++st.session;
  }

 private:
  struct Watch {
    ReadyListener* listener = nullptr;
    std::uint32_t generation = 0;
    bool armed = false;  ///< a poll with this generation is in the kernel
  };
  struct Stream {
    StreamListener* listener = nullptr;
    std::uint32_t session = 0;
    std::uint8_t arm = 0;
    bool armed = false;  ///< a multishot recv of this arm is in the kernel
    bool receiving = false;
  };
  struct Acceptor {
    AcceptListener* listener = nullptr;
    std::uint32_t session = 0;
    bool armed = false;
  };
  struct Completion {
    std::uint64_t tag;
    int res;
    unsigned flags;
  };
  struct Entry {
    Watch watches[2];
    Stream stream;
    Acceptor acceptor;
  };

  // ---- multishot accept ----

  static std::uint64_t accept_tag(int fd, const Acceptor& a) noexcept {
    return kAcceptTag | (static_cast<std::uint64_t>(a.session & kSessionMask) << 40) |
           static_cast<std::uint32_t>(fd);
  }

  void arm_accept(int fd, Acceptor& a) noexcept {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, accept_tag(fd, a));
    a.armed = true;
  }

  void on_accept(std::uint64_t tag, int res, unsigned flags) noexcept {
    const int fd = static_cast<int>(tag & 0xffffffffU);
    const auto session = static_cast<std::uint32_t>((tag >> 40) & kSessionMask);
    auto current = [&]() -> Acceptor* {
      if (static_cast<std::size_t>(fd) >= entries_.size()) return nullptr;
      Acceptor& a = entries_[fd].acceptor;
      return a.listener != nullptr && (a.session & kSessionMask) == session ? &a : nullptr;
    };
    Acceptor* a = current();
    if (res >= 0) {
      if (a != nullptr) {
        a->listener->on_accepted(res);
      } else {
        ::close(res);  // accepted after stop_accepting: nobody wants it
      }
    }
    if ((flags & IORING_CQE_F_MORE) != 0) return;
    a = current();
    if (a == nullptr || !a->armed) return;
    a->armed = false;
    if (res >= 0 || res == -ECONNABORTED || res == -EINTR || res == -EAGAIN) {
      arm_accept(fd, *a);  // the kernel ended the multishot: go on
    } else {
      a->listener->on_accept_error(-res);
    }
  }

  /// Turns a queued SQE the kernel has not taken yet into a no-op; false when there is none.
  /// Without the ring's SQPOLL the kernel takes SQEs only inside our io_uring_enter, so the
  /// entries from its head to our tail are ours to rewrite.
  bool unqueue(std::uint64_t tag) noexcept {
    io_uring_sq& sq = ring_.sq;
    for (unsigned i = io_uring_smp_load_acquire(sq.khead); i != sq.sqe_tail; ++i) {
      io_uring_sqe* sqe = &sq.sqes[i & sq.ring_mask];
      if (sqe->user_data != tag) continue;
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kIgnoreTag);
      return true;
    }
    return false;
  }

  /// Cancels a request in the kernel and lets the kernel finish it before returning, so that
  /// it no longer holds the file it works on: a multishot accept keeps its listening socket
  /// open (and completing handshakes) after the fd is closed for as long as it is armed. The
  /// completions this produces wait in the CQ for the next reap.
  void cancel_now(std::uint64_t tag) noexcept {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, tag, 0);
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
    // Submits the cancel, then runs the deferred task work in which the request completes.
    if (!disabled_) io_uring_submit_and_get_events(&ring_);
  }

  // ---- provided buffers and multishot receive ----

  /// Registers the buffer ring on first use. False when the kernel has no provided-buffer rings
  /// (before 5.19): streams then read on readiness.
  bool buffers_ready() {
    if (buffer_ring_ != nullptr) return true;
    if (buffers_failed_) return false;
    const std::size_t ring_bytes = kBufferCount * sizeof(io_uring_buf);
    buffer_bytes_ = ring_bytes + static_cast<std::size_t>(kBufferCount) * kBufferSize;
    void* memory =
        ::mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
      buffers_failed_ = true;
      return false;
    }
    // Receives walk the whole ring: on 4 KiB pages each one would miss the TLB. Only a hint.
    (void)::madvise(memory, buffer_bytes_, MADV_HUGEPAGE);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(memory);
    reg.ring_entries = kBufferCount;
    reg.bgid = kBufferGroup;
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
      ::munmap(memory, buffer_bytes_);
      buffers_failed_ = true;
      return false;
    }
    buffer_memory_ = memory;
    buffer_ring_ = static_cast<io_uring_buf_ring*>(memory);
    buffers_ = static_cast<char*>(memory) + ring_bytes;
    io_uring_buf_ring_init(buffer_ring_);
    for (unsigned i = 0; i < kBufferCount; ++i) {
      io_uring_buf_ring_add(buffer_ring_, buffers_ + static_cast<std::size_t>(i) * kBufferSize,
                            kBufferSize, static_cast<unsigned short>(i),
                            io_uring_buf_ring_mask(kBufferCount), static_cast<int>(i));
    }
    io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(kBufferCount));
    return true;
  }

  void recycle(unsigned bid) noexcept {
    io_uring_buf_ring_add(buffer_ring_, buffers_ + static_cast<std::size_t>(bid) * kBufferSize,
                          kBufferSize, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kBufferCount), 0);
    io_uring_buf_ring_advance(buffer_ring_, 1);
  }

  static std::uint64_t recv_tag(int fd, const Stream& st) noexcept {
    return kRecvTag | (static_cast<std::uint64_t>(st.session & kSessionMask) << 40) |
           (static_cast<std::uint64_t>(st.arm) << 32) | static_cast<std::uint32_t>(fd);
  }

  void arm_recv(int fd, Stream& st) noexcept {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, recv_tag(fd, st));
    st.armed = true;
  }

  void cancel_recv(int fd, Stream& st) noexcept {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, recv_tag(fd, st), 0);
    io_uring_sqe_set_data64(sqe, kIgnoreTag);
    st.armed = false;
    ++st.arm;  // the cancelled arm's final completion must not disarm a newer one
  }

  static bool has_buffer(const Completion& c) noexcept {
    return (c.flags & IORING_CQE_F_BUFFER) != 0;
  }
  static unsigned buffer_id(const Completion& c) noexcept {
    return c.flags >> IORING_CQE_BUFFER_SHIFT;
  }

  /// How many completions, from completed_[i] on, carry one contiguous run of a stream's bytes:
  /// a full buffer followed by the next buffer in memory, from the same arm of the same recv.
  std::size_t recv_run_length(std::size_t i) const noexcept {
    std::size_t n = 1;
    while (i + n < completed_.size() && n < kMaxRun) {
      const Completion& prev = completed_[i + n - 1];
      const Completion& next = completed_[i + n];
      if (next.tag != prev.tag || prev.res != static_cast<int>(kBufferSize) || next.res <= 0 ||
          !has_buffer(prev) || !has_buffer(next) || buffer_id(next) != buffer_id(prev) + 1) {
        break;
      }
      ++n;
    }
    return n;
  }

  /// Handles completed_[i] and the completions that continue its bytes (one on_data for the
  /// run, so a bulk transfer costs one send per run rather than per buffer); returns how many.
  std::size_t on_recv(std::size_t i) noexcept {
    const std::size_t n = recv_run_length(i);
    const Completion& first = completed_[i];
    const Completion& last = completed_[i + n - 1];
    const std::uint64_t tag = first.tag;
    const int fd = static_cast<int>(tag & 0xffffffffU);
    const auto session = static_cast<std::uint32_t>((tag >> 40) & kSessionMask);
    const auto arm = static_cast<std::uint8_t>((tag >> 32) & 0xffU);
    auto current = [&]() -> Stream* {
      if (static_cast<std::size_t>(fd) >= entries_.size()) return nullptr;
      Stream& st = entries_[fd].stream;
      return st.listener != nullptr && (st.session & kSessionMask) == session ? &st : nullptr;
    };
    if (first.res > 0 && has_buffer(first)) {
      const std::size_t bytes = (n - 1) * kBufferSize + static_cast<std::size_t>(last.res);
      if (Stream* st = current()) {
        st->listener->on_data(std::string_view(
            buffers_ + static_cast<std::size_t>(buffer_id(first)) * kBufferSize, bytes));
      }
    }
    for (std::size_t k = i; k < i + n; ++k) {
      if (has_buffer(completed_[k])) recycle(buffer_id(completed_[k]));
    }
    const int res = last.res;
    if ((last.flags & IORING_CQE_F_MORE) != 0) return n;
    // This arm is over.
    Stream* st = current();
    if (st == nullptr || !st->armed || st->arm != arm) return n;
    st->armed = false;
    if (res == 0) {
      st->receiving = false;
      st->listener->on_read_end(0);
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
      st->receiving = false;
      st->listener->on_read_end(-res);
    } else if (Stream* again = current(); again != nullptr && again->receiving && !again->armed) {
      arm_recv(fd, *again);  // out of buffers for a moment, or the kernel ended it: go on
    }
    return n;
  }

  static std::uint64_t poll_tag(int fd, Interest interest, std::uint32_t generation) noexcept {
    return kPollTag | (static_cast<std::uint64_t>(generation & kGenMask) << 33) |
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
    const auto generation = static_cast<std::uint32_t>((tag >> 33) & kGenMask);
    if (static_cast<std::size_t>(fd) >= entries_.size()) return;
    Watch& w = entries_[fd].watches[static_cast<int>(interest)];
    if (!w.armed || (w.generation & kGenMask) != generation) return;  // stale
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
      } else if (tag != kIgnoreTag) {
        completed_.push_back({tag, cqe->res, cqe->flags});
      }
    }
    io_uring_cq_advance(&ring_, count);
    if (rearm) arm_wake();
    for (std::size_t i = 0; i < completed_.size(); ++i) {
      const Completion& c = completed_[i];
      switch (c.tag & kKindMask) {
        case 0:
          if (c.tag != 0) {
            // NOLINTNEXTLINE(performance-no-int-to-ptr): the tag is the listener's address
            reinterpret_cast<OpListener*>(static_cast<std::uintptr_t>(c.tag))->on_complete(c.res);
          }
          break;
        case kPollTag:
          on_poll(c.tag, c.res);
          break;
        case kRecvTag:
          i += on_recv(i) - 1;
          break;
        default:
          on_accept(c.tag, c.res, c.flags);
          break;
      }
    }
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

  std::vector<Entry> entries_;  ///< indexed by fd
  std::vector<Completion> completed_;
  void* buffer_memory_ = nullptr;
  std::size_t buffer_bytes_ = 0;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  char* buffers_ = nullptr;
  bool buffers_failed_ = false;

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
