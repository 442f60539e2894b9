// weave::File: each operation is one io_uring request where the backend has them, and otherwise
// the same syscall on the default executor. The thread path owns copies of everything it
// touches, so that a cancelled caller can go away while the thread finishes.

#include "weave/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <coroutine>
#include <string_view>
#include <utility>

#include "core/loop_impl.hpp"
#include "io/backend.hpp"
#include "weave/detail/multi_wait.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/weave.hpp"

namespace weave {

namespace {

constexpr std::size_t kChunk = std::size_t{64} * 1024;
constexpr std::size_t kMaxOp = 1U << 30;  ///< one request moves at most 1 GiB

/// A task waiting for one native file operation. Cancellation asks the kernel to cancel and
/// still waits for the completion: the operation's memory lives in this frame until then.
class FileOpWait final : public detail::Withdrawable, public io::OpListener {
 public:
  FileOpWait(detail::LoopImpl& loop, const io::FileOp& op) noexcept : loop_(loop), op_(op) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    task_ = detail::require_task("await a file operation");
    loop_.backend_->submit_file_op(op_, this);
    detail::begin_wait(task_, h, detail::WaitKind::Custom,
                       static_cast<detail::Withdrawable*>(this));
  }
  int await_resume() const {
    detail::checkpoint(task_);
    return result_;
  }

  void on_complete(int result) noexcept override {
    result_ = result;
    if (cancelling_) {
      detail::wake_cancelled(task_);
    } else {
      detail::wake(task_);
    }
  }
  bool withdraw(std::string_view) override {
    if (!cancelling_) {
      cancelling_ = true;
      loop_.backend_->cancel_file_op(this);
    }
    return true;  // ends in CancelledError, once the kernel has let go of the operation
  }

 private:
  detail::LoopImpl& loop_;
  io::FileOp op_;
  detail::TaskCore* task_ = nullptr;
  int result_ = 0;
  bool cancelling_ = false;
};

bool native(EventLoop& loop) {
  detail::LoopImpl& impl = loop.impl();
  return impl.backend_ && impl.backend_->native_files();
}

int check(int result, const char* what) {
  if (result < 0) throw os_error(-result, what);
  return result;
}

// ---- the thread path: plain syscalls on owned data ----

int open_blocking(const std::string& path, int flags, unsigned mode) {
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) throw os_error(errno, "open");
  return fd;
}

std::string read_blocking(int fd, std::size_t n, std::int64_t offset) {
  std::string data(n, '\0');
  ssize_t got;
  do {
    got = offset < 0 ? ::read(fd, data.data(), n) : ::pread(fd, data.data(), n, offset);
  } while (got < 0 && errno == EINTR);
  if (got < 0) throw os_error(errno, "read");
  data.resize(static_cast<std::size_t>(got));
  return data;
}

std::size_t write_blocking(int fd, std::string data, std::int64_t offset) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = offset < 0 ? ::write(fd, data.data() + done, data.size() - done)
                                 : ::pwrite(fd, data.data() + done, data.size() - done,
                                            offset + static_cast<std::int64_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw os_error(errno, "write");
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void fsync_blocking(int fd) {
  if (::fsync(fd) < 0) throw os_error(errno, "fsync");
}

void close_blocking(int fd) {
  if (::close(fd) < 0 && errno != EINTR) throw os_error(errno, "close");
}

// ---- one operation, either way ----

Coro<std::string> read_once(int fd, std::size_t n, std::int64_t offset) {
  n = std::min(n, kMaxOp);
  EventLoop& loop = get_running_loop();
  if (!native(loop)) co_return co_await to_thread(read_blocking, fd, n, offset);
  std::string data(n, '\0');
  io::FileOp op;
  op.kind = io::FileOp::Kind::Read;
  op.fd = fd;
  op.data = data.data();
  op.size = static_cast<unsigned>(n);
  op.offset = offset;
  const int got = check(co_await FileOpWait(loop.impl(), op), "read");
  data.resize(static_cast<std::size_t>(got));
  co_return data;
}

Coro<std::size_t> write_all(int fd, std::string_view data, std::int64_t offset) {
  EventLoop& loop = get_running_loop();
  if (!native(loop)) co_return co_await to_thread(write_blocking, fd, std::string(data), offset);
  std::size_t done = 0;
  while (done < data.size()) {
    io::FileOp op;
    op.kind = io::FileOp::Kind::Write;
    op.fd = fd;
    op.data = const_cast<char*>(data.data() + done);
    op.size = static_cast<unsigned>(std::min(data.size() - done, kMaxOp));
    op.offset = offset < 0 ? -1 : offset + static_cast<std::int64_t>(done);
    done += static_cast<std::size_t>(check(co_await FileOpWait(loop.impl(), op), "write"));
  }
  co_return done;
}

void require_open(int fd) {
  if (fd < 0) throw os_error(EBADF, "file is closed");
}

int parse_mode(std::string_view mode) {
  int access = -1;
  int flags = 0;
  bool plus = false;
  for (char c : mode) {
    switch (c) {
      case 'r':
        if (access != -1)
          access = -2;
        else
          access = O_RDONLY;
        break;
      case 'w':
        if (access != -1)
          access = -2;
        else
          access = O_WRONLY, flags |= O_CREAT | O_TRUNC;
        break;
      case 'a':
        if (access != -1)
          access = -2;
        else
          access = O_WRONLY, flags |= O_CREAT | O_APPEND;
        break;
      case 'x':
        if (access != -1)
          access = -2;
        else
          access = O_WRONLY, flags |= O_CREAT | O_EXCL;
        break;
      case '+':
        plus = true;
        break;
      case 'b':
        break;
      default:
        access = -2;
    }
  }
  if (access < 0) throw ValueError("invalid mode: '" + std::string(mode) + "'");
  return (plus ? O_RDWR : access) | flags;
}

}  // namespace

Coro<File> File::open(std::string path, std::string_view mode) {
  return open(std::move(path), parse_mode(mode), 0666);
}

Coro<File> File::open(std::string path, int flags, unsigned permissions) {
  flags |= O_CLOEXEC;
  EventLoop& loop = get_running_loop();
  if (!native(loop)) co_return File(co_await to_thread(open_blocking, path, flags, permissions));
  io::FileOp op;
  op.kind = io::FileOp::Kind::Open;
  op.path = path.c_str();
  op.flags = flags;
  op.mode = permissions;
  co_return File(check(co_await FileOpWait(loop.impl(), op), "open"));
}

File::File(File&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

Coro<std::string> File::read(std::ptrdiff_t n) {
  require_open(fd_);
  if (n >= 0) co_return co_await read_once(fd_, static_cast<std::size_t>(n), -1);
  std::string all;
  for (;;) {
    std::string chunk = co_await read_once(fd_, kChunk, -1);
    if (chunk.empty()) break;
    all += chunk;
  }
  co_return all;
}

Coro<std::size_t> File::write(std::string_view data) {
  require_open(fd_);
  co_return co_await write_all(fd_, data, -1);
}

Coro<std::string> File::pread(std::size_t n, std::uint64_t offset) {
  require_open(fd_);
  co_return co_await read_once(fd_, n, static_cast<std::int64_t>(offset));
}

Coro<std::size_t> File::pwrite(std::string_view data, std::uint64_t offset) {
  require_open(fd_);
  co_return co_await write_all(fd_, data, static_cast<std::int64_t>(offset));
}

Coro<void> File::fsync() {
  require_open(fd_);
  EventLoop& loop = get_running_loop();
  if (!native(loop)) {
    co_await to_thread(fsync_blocking, fd_);
    co_return;
  }
  io::FileOp op;
  op.kind = io::FileOp::Kind::Fsync;
  op.fd = fd_;
  check(co_await FileOpWait(loop.impl(), op), "fsync");
}

Coro<void> File::close() {
  if (fd_ < 0) co_return;  // closing twice is harmless, as in Python
  const int fd = std::exchange(fd_, -1);
  EventLoop& loop = get_running_loop();
  if (!native(loop)) {
    co_await to_thread(close_blocking, fd);
    co_return;
  }
  io::FileOp op;
  op.kind = io::FileOp::Kind::Close;
  op.fd = fd;
  check(co_await FileOpWait(loop.impl(), op), "close");
}

}  // namespace weave
