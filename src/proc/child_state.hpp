#pragma once
// One child process as the loop sees it, shared by its Process and the loop's ChildWatcher.
//
// Life of a child:
//   running   pidfd watched for reading on the loop's backend; `returncode` empty;
//   reaped    the pidfd became readable, waitid(P_PIDFD) collected the status into `returncode`,
//             the watch and the pidfd are gone, the pending wait()s got the code.
// The watcher holds a reference while the child runs and the loop is open, so that a child whose
// Process was destroyed (and which got SIGKILL then) is still reaped. When the loop closes, the
// watcher reaps such orphans synchronously and detaches the others (`loop` = null): their
// Process reaps them when it is destroyed.

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "io/backend.hpp"
#include "weave/future.hpp"

namespace weave::detail {

class LoopImpl;

struct ChildState final : io::ReadyListener {
  ChildState(LoopImpl* l, pid_t p, int fd) noexcept : loop(l), pid(p), pidfd(fd) {}
  ~ChildState();
  ChildState(const ChildState&) = delete;
  ChildState& operator=(const ChildState&) = delete;

  /// The pidfd is readable: the child exited.
  void on_ready() noexcept override;
  /// Collects the exit status; `block` waits for it. True once reaped.
  bool reap(bool block) noexcept;
  /// Ends the watch (the loop is open and the child was being watched).
  void unwatch() noexcept;

  LoopImpl* loop;  ///< null once the loop closed
  pid_t pid;
  int pidfd;  ///< -1 once reaped
  std::optional<int> returncode;
  std::vector<Future<int>> waiters;  ///< pending wait()s, completed when the child is reaped
  bool orphaned = false;             ///< the Process is gone (the child got SIGKILL)
  bool watched = false;              ///< pidfd watched on loop's backend
  /// Called on the loop thread once the child is reaped (a SubprocessTransport's
  /// process_exited), after the waiters got the code.
  std::function<void()> on_exit;
  /// What must live while the child runs under an open loop (a SubprocessTransport keeps itself
  /// here until its connection_lost); dropped when the loop closes.
  std::shared_ptr<void> owner_ref;
};

}  // namespace weave::detail
