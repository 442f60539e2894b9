#pragma once
/// \file files.hpp
/// Asynchronous files (beyond asyncio, which has none): io_uring reads and writes files natively;
/// under epoll, where the kernel offers no readiness for regular files, each operation runs on
/// the loop's default executor, as asyncio code does with to_thread.
///
///   weave::File f = co_await weave::File::open("data.txt", "r");
///   std::string text = co_await f.read();
///   co_await f.close();
///
/// Errors: std::system_error with the errno (ENOENT, EACCES, EBADF, ...). Cancellation: the
/// operation is withdrawn (io_uring cancel) or abandoned to its thread before CancelledError is
/// raised; a write may have happened.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "weave/coro.hpp"

namespace weave {

class File {
 public:
  /// Opens with a Python mode: "r", "w" (create, truncate), "a" (create, append), "x" (create,
  /// must not exist), each with an optional "+" (read and write) and "b" (ignored).
  /// Errors: ValueError for another mode.
  static Coro<File> open(std::string path, std::string_view mode = "r");
  /// Opens with open(2) flags (O_CLOEXEC is added) and permissions for a created file.
  static Coro<File> open(std::string path, int flags, unsigned permissions = 0644);

  File() noexcept = default;
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  /// Closes a file that is still open, synchronously.
  ~File();

  /// Up to `n` bytes from the file position (n < 0: to the end); empty at the end.
  Coro<std::string> read(std::ptrdiff_t n = -1);
  /// All of `data` at the file position; returns data.size().
  Coro<std::size_t> write(std::string_view data);
  /// Up to `n` bytes at `offset`; the file position does not move.
  Coro<std::string> pread(std::size_t n, std::uint64_t offset);
  /// All of `data` at `offset`; the file position does not move.
  Coro<std::size_t> pwrite(std::string_view data, std::uint64_t offset);
  Coro<void> fsync();
  Coro<void> close();

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }

 private:
  explicit File(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace weave
