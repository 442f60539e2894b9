// The loop's side of child processes: a pidfd watch per running child, the reaping, and the
// loop-close rules described in child_state.hpp.

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <unordered_map>

#include "core/loop_impl.hpp"
#include "proc/child_watcher.hpp"

namespace weave::detail {

namespace {

/// waitid's P_PIDFD (Linux 5.4); glibc's idtype_t names it only from 2.36 on.
constexpr auto kPidfd = static_cast<idtype_t>(3);

/// The exit status as asyncio reports it: the code, or minus the killing signal.
int status_of(const siginfo_t& info) noexcept {
  if (info.si_code == CLD_EXITED) return info.si_status;
  return -info.si_status;  // CLD_KILLED, CLD_DUMPED
}

class ChildWatcher final : public LoopService {
 public:
  void add(std::shared_ptr<ChildState> s) { live_.emplace(s.get(), std::move(s)); }
  /// Drops the watcher's reference; `s` may be destroyed by the call.
  void remove(ChildState* s) noexcept { live_.erase(s); }

  void close() noexcept override {
    auto live = std::move(live_);
    live_.clear();
    for (auto& [raw, s] : live) {
      s->unwatch();
      s->waiters.clear();
      s->on_exit = nullptr;
      if (s->orphaned) s->reap(true);
      s->loop = nullptr;
      s->owner_ref.reset();  // may release the last Process handle: it kills and reaps
    }
  }

 private:
  std::unordered_map<ChildState*, std::shared_ptr<ChildState>> live_;
};

}  // namespace

ChildState::~ChildState() {
  if (pidfd >= 0) ::close(pidfd);
}

void ChildState::unwatch() noexcept {
  if (!watched) return;
  watched = false;
  if (loop != nullptr && loop->backend_) loop->backend_->unwatch(pidfd, io::Interest::Read);
}

bool ChildState::reap(bool block) noexcept {
  if (returncode) return true;
  siginfo_t info{};
  int rc;
  while ((rc = ::waitid(kPidfd, static_cast<id_t>(pidfd), &info, WEXITED | (block ? 0 : WNOHANG))) <
             0 &&
         errno == EINTR) {
  }
  if (rc < 0) {
    // ECHILD: somebody else reaped it (a waitpid(-1) elsewhere in the program); the status is
    // lost, as subprocess reports it: 255.
    if (errno != ECHILD) return false;
    returncode = 255;
  } else if (info.si_pid == 0) {
    return false;  // not exited yet
  } else {
    returncode = status_of(info);
  }
  unwatch();
  ::close(pidfd);
  pidfd = -1;
  return true;
}

void ChildState::on_ready() noexcept {
  if (!reap(false)) return;
  for (Future<int>& w : waiters) {
    if (!w.done()) w.set_result(*returncode);
  }
  waiters.clear();
  if (auto exited = std::move(on_exit)) {
    try {
      exited();
    } catch (...) {
      loop->owner.call_exception_handler(
          {"process_exited callback failed", std::current_exception(), std::nullopt});
    }
  }
  // A state with an owner stays registered until release_owner(), so that close() can still
  // drop the owner if the loop closes first.
  if (loop != nullptr && loop->children && !owner_ref) {
    static_cast<ChildWatcher*>(loop->children.get())->remove(this);  // may free *this
  }
}

void watch_child(LoopImpl& loop, const std::shared_ptr<ChildState>& s) {
  if (!loop.children) loop.children = std::make_unique<ChildWatcher>();
  loop.backend_->watch(s->pidfd, io::Interest::Read, s.get());
  s->watched = true;
  static_cast<ChildWatcher*>(loop.children.get())->add(s);
}

int send_to_child(ChildState& s, int sig) noexcept {
  if (s.returncode || s.pidfd < 0) return 0;
  if (::syscall(SYS_pidfd_send_signal, s.pidfd, sig, nullptr, 0) < 0) {
    // ESRCH: exited, not reaped yet: nothing to signal, as for a reaped child.
    return errno == ESRCH ? 0 : errno;
  }
  return 0;
}

void release_owner(ChildState& s) noexcept {
  auto owner = std::move(s.owner_ref);
  if (s.returncode && s.loop != nullptr && s.loop->children) {
    static_cast<ChildWatcher*>(s.loop->children.get())->remove(&s);
  }
  // `owner` goes last: it may hold the last reference to `s`.
}

void release_child(std::shared_ptr<ChildState> s) noexcept {
  if (s->returncode) return;
  send_to_child(*s, SIGKILL);
  if (s->loop != nullptr && s->watched) {
    s->orphaned = true;  // the watcher still holds it and reaps it when it exits
    return;
  }
  s->reap(true);
}

}  // namespace weave::detail
