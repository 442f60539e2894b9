// add_signal_handler / remove_signal_handler, as asyncio's unix loop has them, through a signalfd.
//
// How a signal reaches the handler:
//   - the loop (main) thread blocks the signal, so the kernel leaves it pending instead of running
//     a disposition there, and the loop's signalfd, watched for reading on the backend, reports it;
//   - a process-directed signal may still be given to another thread that does not block it
//     (threads started before the handler was added, a pool's workers). The disposition installed
//     for it is a tiny forwarder that re-sends the signal to the main thread with tgkill(), where
//     it is blocked and so lands in the signalfd; tgkill is async-signal-safe.
//   - reading the signalfd schedules the handler with call_soon, so it runs as an ordinary loop
//     callback on the loop thread (asyncio's _handle_signal + _add_callback_signalsafe).
//
// asyncio allows signal handlers only in the main thread (set_wakeup_fd's rule); weave keeps that
// rule, which also keeps the forwarding target fixed: the main thread, whose tid is the pid.
//
// remove_signal_handler (and close()) put back what add found: the previous sigaction and the
// previous blocked state of the signal in the thread's mask. A signal already pending when the
// handler goes is dropped (sigtimedwait with a zero timeout) before the signal is unblocked, so
// that it does not hit the restored disposition late.
//
// Children: blocked signals are inherited through exec, so create_subprocess_* empties the
// child's mask (see subprocess.cpp).

#include "proc/signals.hpp"

#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/loop_impl.hpp"
#include "weave/errors.hpp"

namespace weave::detail {

namespace {

extern "C" void forward_to_main_thread(int sig) {
  const int saved = errno;
  const pid_t pid = ::getpid();
  ::syscall(SYS_tgkill, pid, pid, sig);
  errno = saved;
}

/// asyncio's _check_signal: ValueError outside signal.valid_signals() (1..NSIG-1 without the
/// signals glibc reserves for its threads).
void check_signal(int sig) {
  sigset_t all;
  sigfillset(&all);
  if (sig < 1 || sig >= NSIG || sigismember(&all, sig) != 1) {
    throw ValueError("invalid signal number " + std::to_string(sig));
  }
}

class SignalRegistry final : public LoopService, public io::ReadyListener {
 public:
  explicit SignalRegistry(LoopImpl& loop) : loop_(loop) { sigemptyset(&mask_); }
  ~SignalRegistry() override { close(); }

  void add(int sig, std::function<void()> fn) {
    if (auto it = handlers_.find(sig); it != handlers_.end()) {
      it->second.fn = std::make_shared<std::function<void()>>(std::move(fn));
      return;
    }
    Entry e;
    e.fn = std::make_shared<std::function<void()>>(std::move(fn));
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigset_t old_mask;
    pthread_sigmask(SIG_BLOCK, &one, &old_mask);
    e.was_blocked = sigismember(&old_mask, sig) == 1;
    struct sigaction sa {};
    sa.sa_handler = &forward_to_main_thread;
    sa.sa_flags = SA_RESTART;  // asyncio: siginterrupt(sig, False)
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, &e.previous) < 0) {
      const int err = errno;
      if (!e.was_blocked) pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
      if (err == EINVAL) throw RuntimeError("sig " + std::to_string(sig) + " cannot be caught");
      throw os_error(err, "sigaction");
    }
    sigaddset(&mask_, sig);
    try {
      update_fd();
    } catch (...) {
      sigdelset(&mask_, sig);
      restore(sig, e);
      throw;
    }
    handlers_.emplace(sig, std::move(e));
  }

  bool remove(int sig) {
    auto it = handlers_.find(sig);
    if (it == handlers_.end()) return false;
    Entry e = std::move(it->second);
    handlers_.erase(it);
    sigdelset(&mask_, sig);
    if (handlers_.empty()) {
      close_fd();
    } else {
      update_fd();
    }
    restore(sig, e);
    return true;
  }

  const void* identity(int sig) const noexcept {
    auto it = handlers_.find(sig);
    return it == handlers_.end() ? nullptr : it->second.fn.get();
  }

  void close() noexcept override {
    while (!handlers_.empty()) {
      try {
        remove(handlers_.begin()->first);
      } catch (...) {
        handlers_.erase(handlers_.begin());
      }
    }
    close_fd();
  }

  void on_ready() noexcept override {
    signalfd_siginfo info[16];
    for (;;) {
      const ssize_t n = ::read(fd_, info, sizeof info);
      if (n <= 0) return;  // EAGAIN: drained
      for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof info[0]; ++i) {
        dispatch(static_cast<int>(info[i].ssi_signo));
      }
    }
  }

 private:
  struct Entry {
    std::shared_ptr<std::function<void()>> fn;
    struct sigaction previous {};
    bool was_blocked = false;  ///< blocked in the thread's mask before add
  };

  void dispatch(int sig) noexcept {
    auto it = handlers_.find(sig);
    if (it == handlers_.end()) return;
    try {
      // The handler may remove or replace itself: the callback keeps its own reference.
      loop_.owner.call_soon([fn = it->second.fn] { (*fn)(); });
    } catch (...) {
      loop_.owner.call_exception_handler(
          {"failed to schedule a signal handler", std::current_exception(), std::nullopt});
    }
  }

  /// Creates the signalfd or gives it the new mask.
  void update_fd() {
    if (fd_ >= 0) {
      if (::signalfd(fd_, &mask_, 0) < 0) throw os_error(errno, "signalfd");
      return;
    }
    const int fd = ::signalfd(-1, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) throw os_error(errno, "signalfd");
    try {
      loop_.backend_->watch(fd, io::Interest::Read, this);
    } catch (...) {
      ::close(fd);
      throw;
    }
    fd_ = fd;
  }

  void close_fd() noexcept {
    if (fd_ < 0) return;
    if (loop_.backend_) loop_.backend_->unwatch(fd_, io::Interest::Read);
    ::close(fd_);
    fd_ = -1;
  }

  /// Puts back the disposition and the mask bit that add() found; drops a pending instance.
  static void restore(int sig, const Entry& e) noexcept {
    sigaction(sig, &e.previous, nullptr);
    if (e.was_blocked) return;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    const timespec zero{};
    while (sigtimedwait(&one, nullptr, &zero) == sig) {
    }
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  }

  LoopImpl& loop_;
  std::map<int, Entry> handlers_;
  sigset_t mask_;  ///< the signals with a handler: the signalfd's mask
  int fd_ = -1;    ///< the signalfd, watched for reading while a handler exists
};

SignalRegistry* registry(LoopImpl& l, bool create) {
  if (!l.signals && create) l.signals = std::make_unique<SignalRegistry>(l);
  return static_cast<SignalRegistry*>(l.signals.get());
}

}  // namespace

bool in_main_thread() noexcept {
  return ::getpid() == static_cast<pid_t>(::syscall(SYS_gettid));
}

// ---- Runner's SIGINT ---------------------------------------------------------------------------
//
// Not a signalfd: a blocked signal waits for the loop, and a main task stuck in a loop that never
// awaits would then never see a second Ctrl-C. So this is a real handler, which does only
// async-signal-safe things: the first SIGINT writes to an eventfd the loop reads (and the loop
// callback cancels the main task); the second restores SIG_DFL and raises SIGINT again, which
// ends the process as soon as the handler returns (SIGINT is blocked while its handler runs).
// One run() at a time can own SIGINT (the main thread runs one loop), so the state is global.

namespace {

std::atomic<int> g_sigint_fd{-1};    ///< the eventfd of the SigintGuard in charge, or -1
std::atomic<int> g_sigint_count{0};  ///< SIGINTs since it took over

/// Default disposition, SIGINT unblocked, SIGINT raised: the process dies by SIGINT as Python
/// does on an uncaught KeyboardInterrupt. Async-signal-safe.
void die_by_sigint() noexcept {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(SIGINT, &dfl, nullptr);
  ::raise(SIGINT);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SIGINT);
  sigprocmask(SIG_UNBLOCK, &one, nullptr);
}

extern "C" void on_sigint(int) {
  const int saved = errno;
  if (g_sigint_count.fetch_add(1) == 0) {
    const std::uint64_t one = 1;
    const int fd = g_sigint_fd.load();
    if (fd >= 0) (void)!::write(fd, &one, sizeof one);
  } else {
    die_by_sigint();
  }
  errno = saved;
}

}  // namespace

SigintGuard::SigintGuard(EventLoop& loop, TaskRef main) : loop_(loop), main_(std::move(main)) {
  if (!in_main_thread()) return;
  struct sigaction current {};
  if (sigaction(SIGINT, nullptr, &current) < 0) return;
  if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) return;
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return;  // asyncio goes on without Ctrl-C handling when it cannot install it
  try {
    loop_.add_reader(fd, [this] { on_interrupt(); });
  } catch (const std::exception&) {
    ::close(fd);
    return;
  }
  fd_ = fd;
  g_sigint_count = 0;
  g_sigint_fd = fd;
  struct sigaction sa {};
  sa.sa_handler = &on_sigint;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &previous_);
}

SigintGuard::~SigintGuard() {
  if (fd_ < 0) return;
  struct sigaction current {};
  sigaction(SIGINT, nullptr, &current);
  if (current.sa_handler == &on_sigint) sigaction(SIGINT, &previous_, nullptr);
  g_sigint_fd = -1;
  loop_.remove_reader(fd_);
  ::close(fd_);
}

int SigintGuard::interrupts() const noexcept {
  return fd_ < 0 ? 0 : g_sigint_count.load();
}

void SigintGuard::on_interrupt() {
  std::uint64_t count = 0;
  (void)!::read(fd_, &count, sizeof count);
  if (main_.done()) die_by_sigint();  // asyncio: KeyboardInterrupt when main is already done
  main_.cancel();
}

}  // namespace weave::detail

namespace weave {

void EventLoop::add_signal_handler(int sig, std::function<void()> fn) {
  detail::check_signal(sig);
  detail::LoopImpl& l = *impl_;
  if (l.closed) throw RuntimeError("Event loop is closed");
  if (!detail::in_main_thread()) {
    throw RuntimeError("add_signal_handler() only works in the main thread");
  }
  if (sig == SIGKILL || sig == SIGSTOP) {
    throw RuntimeError("sig " + std::to_string(sig) + " cannot be caught");
  }
  detail::registry(l, true)->add(sig, std::move(fn));
}

bool EventLoop::remove_signal_handler(int sig) {
  detail::check_signal(sig);
  detail::SignalRegistry* r = detail::registry(*impl_, false);
  return r != nullptr && r->remove(sig);
}

}  // namespace weave
