#pragma once
// One process-pool worker as the pool sees it: the child process, the pool's end of its socket
// (non-blocking), the calls sent and not answered yet (in order), and the bytes not yet sent or
// not yet parsed. Not thread-safe: the pool uses it under its mutex.
//
// Starting: posix_spawn of /proc/self/exe (the running program, even if its file was replaced)
// with kWorkerEnv set; posix_spawn is vfork+exec, safe in a multi-threaded parent, and the
// child's end of the socket is the only descriptor it gets beyond the inherited stdio. Ending:
// closing our end is the worker's signal to exit; reap() then collects it, so no zombie stays.

#include <sys/types.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "concurrent/job_queue.hpp"

namespace weave::concurrent::detail {

class WorkerProcess {
 public:
  /// Starts a worker that first runs `initializer` (if not null). Throws std::system_error.
  static std::unique_ptr<WorkerProcess> spawn(void (*initializer)());

  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;
  ~WorkerProcess();  // closes the socket; the pool reaps before destroying

  pid_t pid() const noexcept { return pid_; }
  bool reaped() const noexcept { return reaped_; }
  int fd() const noexcept { return fd_; }

  /// Encodes the call and queues it for sending. If encoding throws, queues nothing and returns
  /// the exception, for the caller to complete the future with once it holds no lock.
  std::exception_ptr queue_call(const std::shared_ptr<Job>& job);
  bool wants_write() const noexcept { return sent_pos_ < out_.size(); }
  /// Sends what the socket takes now; false if the worker is gone.
  bool flush();
  /// Reads what is available now; false at end-of-file or on error (the worker is gone).
  bool receive();
  /// The next whole reply, if one has arrived.
  bool next_reply(std::string_view& payload);
  /// Where next_reply() stands, and going back there (to leave a reply to someone else).
  std::size_t read_mark() const noexcept { return read_pos_; }
  void rewind(std::size_t mark) noexcept { read_pos_ = mark; }
  /// Closes the socket (a live worker exits on that) and waits for the process; returns its
  /// wait status. Idempotent.
  int reap();

  JobQueue inflight;          // calls sent, replies pending, in sending order
  int calls = 0;              // calls queued over its lifetime (for max_tasks_per_child)
  bool retiring = false;      // reached its quota: no more calls; reaped once they are answered
  bool watching_out = false;  // the pool's wait includes writability of the socket

 private:
  WorkerProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}

  pid_t pid_;
  int fd_;  // -1 once closed
  bool reaped_ = false;
  int status_ = 0;   // wait status, once reaped
  std::string out_;  // frames to send; out_[sent_pos_..] not sent yet
  std::size_t sent_pos_ = 0;
  std::string in_;  // bytes received; in_[read_pos_..] not parsed yet
  std::size_t read_pos_ = 0;
};

/// "exit status 3" / "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

}  // namespace weave::concurrent::detail
