#pragma once
// The state shared by Future<T> and Task<T> (asyncio's Future), and the task state that every
// coroutine promise embeds so that a task is one allocation: its coroutine frame.
//
// State machine (asyncio's _PENDING/_CANCELLED/_FINISHED):
//   Pending --set_result/set_exception--> Finished
//   Pending --cancel / CancelledError escapes the coroutine--> Cancelled
// A done future never changes again. Completing it moves every done-waiter to the ready queue in
// registration order, as asyncio's call_soon of each callback does.
//
// A task's wait: while suspended, `wait_kind`/`waiting_on` say what it waits on, so that
// cancel() can withdraw exactly that (asyncio's _fut_waiter): a waiter list it is linked into, a
// timer, a future (cancelling the future, as asyncio does), or a custom Withdrawable.

#include <coroutine>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "weave/detail/node.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

enum class FutureState : std::uint8_t { Pending, Cancelled, Finished };

/// Bits of Node::flags for futures and tasks.
namespace fflag {
inline constexpr std::uint8_t kIsTask = 1;      ///< a task root: `link_` is the loop
inline constexpr std::uint8_t kMustCancel = 2;  ///< throw CancelledError at the next resume
inline constexpr std::uint8_t kRetrieved = 4;   ///< exception seen by someone: do not report it
inline constexpr std::uint8_t kHasValue = 8;    ///< the result value is constructed
inline constexpr std::uint8_t kCancelMsg = 16;  ///< extras->cancel_message is meaningful
inline constexpr std::uint8_t kStarted = 32;    ///< the task's coroutine has been entered
inline constexpr std::uint8_t kHasExtras = 64;  ///< FutureExtras exist for it (see extras())
}  // namespace fflag

enum class WaitKind : std::uint8_t {
  None,        ///< not waiting, or waiting on nothing that can be withdrawn (a yield)
  List,        ///< linked into the WaiterList at `waiting_on`
  Timer,       ///< asleep: the task itself is in the loop's timer heap, its slot in `waiting_on`
  TimerFired,  ///< the sleep's deadline passed: the task is queued, to be woken when run
  Future,      ///< in the done-waiters of the FutureCore at `waiting_on`
  Custom,      ///< `waiting_on` is a Withdrawable
};

/// A wait with its own withdrawal rule (gather, wait, ...).
struct Withdrawable {
  /// asyncio's fut_waiter.cancel(msg): true when the wait will end in CancelledError.
  virtual bool withdraw(std::string_view msg) = 0;

 protected:
  ~Withdrawable() = default;
};

/// Where a weave call was made, for call graphs: filled by `CallSite::here()` as a default
/// argument, so that it names the caller's line (a trivial type: g++ 12 destroys a braced default
/// argument inside co_await twice, and clang 14 has no std::source_location).
///
/// One word, because the argument lives in the caller's coroutine frame for as long as the call
/// is awaited: the file's address in the low 48 bits (user-space addresses on x86-64 and AArch64
/// Linux fit in 47 and 48), the line in the high 16 (saturated at 65535).
struct CallSite {
  std::uintptr_t bits;

  static constexpr unsigned kLineShift = 48;
  static constexpr std::uintptr_t kFileMask = (std::uintptr_t{1} << kLineShift) - 1;
  static constexpr unsigned kMaxLine = 0xffff;

  static CallSite here(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE()) noexcept {
    return make(f, l);
  }
  static CallSite make(const char* f, unsigned l) noexcept {
    const std::uintptr_t line = l < kMaxLine ? l : kMaxLine;
    return CallSite{(reinterpret_cast<std::uintptr_t>(f) & kFileMask) | (line << kLineShift)};
  }
  static constexpr CallSite none() noexcept { return CallSite{0}; }
  const char* file() const noexcept { return reinterpret_cast<const char*>(bits & kFileMask); }
  unsigned line() const noexcept { return static_cast<unsigned>(bits >> kLineShift); }
};
static_assert(sizeof(CallSite) == sizeof(void*) && sizeof(void*) == 8,
              "CallSite packs a 48-bit address and a line into one 64-bit word");

/// Rarely used fields, allocated on first use and kept in a table beside the futures (future.cpp),
/// so that the common task carries no pointer to them: a million idle tasks save 8 MB.
struct FutureExtras {
  std::string name;
  std::string cancel_message;
  CallSite created_at = CallSite::none();  ///< a task's create_task call, kept in debug mode
  std::uint32_t cancel_requests = 0;       ///< asyncio's _num_cancels_requested (tasks)
};

struct FutureCore : Node {
  explicit FutureCore(NodeKind k) noexcept : Node(k) {}
  ~FutureCore() {
    if ((flags & fflag::kHasExtras) != 0) drop_extras();
  }
  FutureCore(const FutureCore&) = delete;
  FutureCore& operator=(const FutureCore&) = delete;

  FutureState fstate() const noexcept { return static_cast<FutureState>(state); }
  bool done() const noexcept { return fstate() != FutureState::Pending; }
  bool cancelled() const noexcept { return fstate() == FutureState::Cancelled; }
  bool is_task() const noexcept { return (flags & fflag::kIsTask) != 0; }
  EventLoop* loop() const noexcept { return static_cast<EventLoop*>(link_); }
  std::coroutine_handle<> continuation() const noexcept {
    return std::coroutine_handle<>::from_address(link_);
  }
  /// The extras, created on first use.
  FutureExtras& extras();
  /// The extras, or nullptr when there are none.
  const FutureExtras* find_extras() const noexcept;

  void* link_ = nullptr;  ///< the loop (futures, task roots) or the awaiting coroutine (nested)
  WaiterList done_waiters;
  std::exception_ptr exception;  ///< the exception, or the CancelledError when cancelled
  /// Handles (Future<T>, Task<T>, TaskRef) alive. Last, so that a TaskCore's first field fills
  /// the 4 bytes after it (a derived class may use a non-POD base's tail padding).
  std::uint32_t refs = 0;

 private:
  void drop_extras() noexcept;
};

struct TaskCore : FutureCore {
  TaskCore() noexcept : FutureCore(NodeKind::Task) {}

  /// When the current wait began: the loop's clock_ms (CLOCK_MONOTONIC in milliseconds, modulo
  /// 2^32) at begin_wait/begin_sleep, for `weave ps`; meaningful while the wait kind is not None.
  std::uint32_t wait_since = 0;

  /// The innermost coroutine: where a step resumes it, and while it runs the frame running now
  /// (a nested Coro's start and return move it), so that a call graph starts there.
  std::coroutine_handle<> leaf;
  void* waiting_on = nullptr;    ///< see WaitKind
  TaskCore* reg_prev = nullptr;  ///< links in the loop's registry of pending tasks
  TaskCore* reg_next = nullptr;
  /// The task's context (contextvars.hpp): a persistent map, or a tagged shared Context; 0 for
  /// the empty context, so that a task with no variable set allocates nothing for it.
  std::uintptr_t context = 0;
  /// The weave call the task is suspended in (sleep, a queue's get, wait_for, ...), in the
  /// awaiting frame; set by begin_wait/begin_sleep, meaningful only while the task is suspended
  /// on something (a yield, wait kind None, leaves it stale).
  const CallSite* wait_site = nullptr;
};
// Every coroutine frame embeds one (the promise): each word here is 8 MB for a million tasks.
static_assert(sizeof(TaskCore) == 112, "TaskCore grew: mind the bytes of every frame");

// ---- operations, defined in src/core ----------------------------------------------------------
EventLoop* running_loop_or_null() noexcept;
/// A Coro's frame is destroyed without ever having been awaited or made a task: debug mode
/// reports it (asyncio's "coroutine ... was never awaited"); a cold call (stats.cpp).
[[gnu::cold]] void coro_never_awaited(void* frame) noexcept;
/// The running task (task.cpp defines it); constinit, so other files read it with no TLS wrapper.
/// The library is position-independent, where a thread_local is reached through the general
/// dynamic model (three instructions after the linker relaxes it, in every await); the hot ones
/// are initial-exec, one load: a few words of static TLS, which a dlopen of the library can get.
#define WEAVE_HOT_TLS __attribute__((tls_model("initial-exec")))
extern constinit thread_local TaskCore* t_current WEAVE_HOT_TLS;
inline TaskCore* current_task_core() noexcept {
  return t_current;
}
/// The running task, for an awaiter that is about to suspend; throws RuntimeError outside one.
TaskCore* require_task(const char* what);

/// Pushes `n` to the end of the loop's ready queue.
void schedule(EventLoop* loop, Node* n) noexcept;
/// Records that `task` suspends in `leaf` on `target`; withdraws at once if a cancel is pending.
/// `site`, if given, is the caller's weave call, kept for call graphs while the task waits.
void begin_wait(TaskCore* task, std::coroutine_handle<> leaf, WaitKind kind, void* target,
                const CallSite* site = nullptr);
/// Ends the task's wait and queues its next step (the wait completed normally).
void wake(TaskCore* task) noexcept;
/// Every await_resume calls this first: it raises a pending cancellation at the await point.
[[noreturn]] void throw_cancelled(TaskCore* task);
inline void checkpoint(TaskCore* task) {
  if ((task->flags & fflag::kMustCancel) != 0) throw_cancelled(task);
}

/// asyncio's Task.cancel / Future.cancel.
bool task_cancel(TaskCore* task, std::string_view msg);
bool future_cancel(FutureCore* f, std::string_view msg);
/// Any future or task: dispatches on kIsTask.
bool cancel_any(FutureCore* f, std::string_view msg);
/// Marks a pending future done (state already chosen) and queues its waiters.
void future_complete(FutureCore* f, FutureState s) noexcept;
/// Rethrows the stored exception (CancelledError when cancelled); marks it retrieved.
[[noreturn]] void rethrow(FutureCore* f);
/// The CancelledError a cancelled future raises, built from its message.
std::exception_ptr make_cancelled(FutureCore* f);
/// Reports an exception nobody retrieved ("... exception was never retrieved").
void report_unretrieved(FutureCore* f, const char* what) noexcept;
/// Called when a task's last handle goes: destroys the frame if the task is done.
void task_release(TaskCore* task) noexcept;
/// Called from a task root's final suspend.
void task_finish(TaskCore* task) noexcept;
/// Destroys a task's frames (root and the nested ones it owns) with the task current, so that
/// awaiters torn down while suspended can find it.
void destroy_frames(TaskCore* task) noexcept;
/// The root frame of a task (its promise embeds `task` at offset 0).
inline std::coroutine_handle<> task_root(TaskCore* task) noexcept {
  return std::coroutine_handle<TaskCore>::from_promise(*task);
}

}  // namespace weave::detail
