#pragma once
// gather / gather_settled / wait / as_completed / shield, after asyncio.tasks. Included by
// task.hpp. Children given as Coro are wrapped in tasks at the call, as asyncio's ensure_future
// does, so they start running before the combinator is awaited.

#include <cstddef>
#include <memory>
#include <optional>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "weave/detail/multi_wait.hpp"

namespace weave {

/// One child's result in gather_settled: a value or an exception.
template <class T>
class Outcome {
 public:
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  explicit Outcome(value_type v) : v_(std::move(v)) {}
  explicit Outcome(std::exception_ptr e) : v_(std::move(e)) {}
  bool has_value() const noexcept { return v_.index() == 0; }
  /// The value. Errors: rethrows the child's exception.
  const value_type& value() const& {
    if (!has_value()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(v_);
  }
  /// The value, moved out (for move-only results). Errors: rethrows the child's exception.
  value_type&& value() && {
    if (!has_value()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(std::move(v_));
  }
  std::exception_ptr error() const noexcept { return has_value() ? nullptr : std::get<1>(v_); }

 private:
  std::variant<value_type, std::exception_ptr> v_;
};

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
using ReturnWhen::ALL_COMPLETED;
using ReturnWhen::FIRST_COMPLETED;
using ReturnWhen::FIRST_EXCEPTION;

struct WaitResult {
  std::vector<TaskRef> done;
  std::vector<TaskRef> pending;
};

namespace detail {

template <class A>
auto as_future(A&& a) {
  using D = std::decay_t<A>;
  if constexpr (is_coro<D>::value) {
    return create_task(std::forward<A>(a));
  } else {
    return D(std::forward<A>(a));
  }
}

template <class F>
using slot_t = typename Outcome<typename F::value_type>::value_type;

template <class F>
slot_t<F> value_of(const F& f) {
  if constexpr (std::is_void_v<typename F::value_type>) {
    f.result();
    return {};
  } else {
    return f.result();
  }
}

template <class F>
Outcome<typename F::value_type> outcome_of(const F& f) {
  using O = Outcome<typename F::value_type>;
  if (f.core()->exception || f.cancelled()) {
    try {
      value_of(f);
    } catch (...) {
      return O(std::current_exception());
    }
  }
  return O(value_of(f));
}

/// asyncio's _GatheringFuture: the first failure ends the wait (unless settled); cancelling
/// the gather cancels every child.
class GatherWait final : public MultiWait {
 public:
  GatherWait(std::vector<FutureCore*> children, bool settled)
      : MultiWait(std::move(children)), settled_(settled) {}
  bool withdraw(std::string_view msg) override;
  std::exception_ptr error;

 protected:
  void on_done(std::size_t index) override;

 private:
  bool settled_;
  bool cancel_requested_ = false;
};

struct GatherAwaiter {
  GatherWait* state;
  const CallSite* site = nullptr;  ///< the caller's gather, for call graphs
  GatherAwaiter(std::vector<FutureCore*> children, bool settled)
      : state(new GatherWait(std::move(children), settled)) {}
  GatherAwaiter(const GatherAwaiter&) = delete;
  ~GatherAwaiter() { state->abandon(/*retrieved=*/true); }
  bool await_ready() {
    if (state->children().empty()) return true;
    state->arm(/*done_now=*/true);
    return state->finished();
  }
  void await_suspend(std::coroutine_handle<> h) { state->suspend(require_task("gather"), h, site); }
  void await_resume() const {
    if (TaskCore* t = current_task_core()) checkpoint(t);
    if (state->error) std::rethrow_exception(state->error);
  }
};

// The site is a parameter, so it lives in this frame for the whole wait.
template <bool Settled, class... F>
auto gather_tuple(CallSite site, F... futs)
    -> Coro<std::conditional_t<Settled, std::tuple<Outcome<typename F::value_type>...>,
                               std::tuple<slot_t<F>...>>> {
  std::vector<FutureCore*> cores{futs.core()...};
  GatherAwaiter waiting(std::move(cores), Settled);
  waiting.site = &site;
  co_await waiting;
  if constexpr (Settled) {
    co_return std::make_tuple(outcome_of(futs)...);
  } else {
    co_return std::make_tuple(value_of(futs)...);
  }
}

// The site is a parameter, so it lives in this frame for the whole wait.
template <bool Settled, class F>
auto gather_vector(std::vector<F> futs, CallSite site)
    -> Coro<std::vector<std::conditional_t<Settled, Outcome<typename F::value_type>, slot_t<F>>>> {
  std::vector<FutureCore*> cores;
  cores.reserve(futs.size());
  for (const F& f : futs) cores.push_back(f.core());
  GatherAwaiter waiting(std::move(cores), Settled);
  waiting.site = &site;
  co_await waiting;
  std::vector<std::conditional_t<Settled, Outcome<typename F::value_type>, slot_t<F>>> out;
  out.reserve(futs.size());
  for (const F& f : futs) {
    if constexpr (Settled) {
      out.push_back(outcome_of(f));
    } else {
      out.push_back(value_of(f));
    }
  }
  co_return out;
}

template <class T>
std::vector<Task<T>> to_tasks(std::vector<Coro<T>> coros) {
  std::vector<Task<T>> tasks;
  tasks.reserve(coros.size());
  for (Coro<T>& c : coros) tasks.push_back(create_task(std::move(c)));
  return tasks;
}

/// asyncio.wait's state: done when `when` says so, or at the timeout; never raises.
class WaitState final : public MultiWait {
 public:
  WaitState(std::vector<FutureCore*> children, ReturnWhen when)
      : MultiWait(std::move(children)), when_(when) {}
  bool withdraw(std::string_view msg) override;
  void expire() noexcept { finish(); }

 protected:
  void on_done(std::size_t index) override;

 private:
  ReturnWhen when_;
};

/// Shared state of one as_completed() iteration.
class CompletionQueue final : public MultiWait {
 public:
  explicit CompletionQueue(std::vector<FutureCore*> children) : MultiWait(std::move(children)) {}
  bool withdraw(std::string_view msg) override;
  /// Index of the next finished child, or nullopt if none yet.
  std::optional<std::size_t> pop();
  void expire() noexcept;
  bool expired() const noexcept { return expired_; }
  void release_waiter() noexcept { waiting_ = false; }
  bool waiting_ = false;
  std::size_t owners = 1;
  std::optional<TimerHandle> timer;

 protected:
  void on_done(std::size_t index) override;

 private:
  std::vector<std::size_t> done_;
  std::size_t next_ = 0;
  bool expired_ = false;
};

template <bool Settled, class... A>
auto gather_at(CallSite site, A&&... awaitables) {
  // A braced list evaluates left to right, so the children start in argument order.
  std::tuple<decltype(as_future(std::forward<A>(awaitables)))...> futs{
      as_future(std::forward<A>(awaitables))...};
  return std::apply([site](auto... f) { return gather_tuple<Settled>(site, std::move(f)...); },
                    std::move(futs));
}

}  // namespace detail

// A default argument cannot follow a pack, so the caller's line reaches gather(a, b, ...) through
// fixed-arity overloads of up to six children (partial ordering prefers them to the pack); a
// longer gather has no line in call graphs.
#define WEAVE_SITED_GATHER(name, settled)                                                        \
  template <class A1>                                                                            \
  auto name(A1&& a1, detail::CallSite site = detail::CallSite::here()) {                         \
    return detail::gather_at<settled>(site, std::forward<A1>(a1));                               \
  }                                                                                              \
  template <class A1, class A2>                                                                  \
  auto name(A1&& a1, A2&& a2, detail::CallSite site = detail::CallSite::here()) {                \
    return detail::gather_at<settled>(site, std::forward<A1>(a1), std::forward<A2>(a2));         \
  }                                                                                              \
  template <class A1, class A2, class A3>                                                        \
  auto name(A1&& a1, A2&& a2, A3&& a3, detail::CallSite site = detail::CallSite::here()) {       \
    return detail::gather_at<settled>(site, std::forward<A1>(a1), std::forward<A2>(a2),          \
                                      std::forward<A3>(a3));                                     \
  }                                                                                              \
  template <class A1, class A2, class A3, class A4>                                              \
  auto name(A1&& a1, A2&& a2, A3&& a3, A4&& a4,                                                  \
            detail::CallSite site = detail::CallSite::here()) {                                  \
    return detail::gather_at<settled>(site, std::forward<A1>(a1), std::forward<A2>(a2),          \
                                      std::forward<A3>(a3), std::forward<A4>(a4));               \
  }                                                                                              \
  template <class A1, class A2, class A3, class A4, class A5>                                    \
  auto name(A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5,                                         \
            detail::CallSite site = detail::CallSite::here()) {                                  \
    return detail::gather_at<settled>(site, std::forward<A1>(a1), std::forward<A2>(a2),          \
                                      std::forward<A3>(a3), std::forward<A4>(a4),                \
                                      std::forward<A5>(a5));                                     \
  }                                                                                              \
  template <class A1, class A2, class A3, class A4, class A5, class A6>                          \
  auto name(A1&& a1, A2&& a2, A3&& a3, A4&& a4, A5&& a5, A6&& a6,                                \
            detail::CallSite site = detail::CallSite::here()) {                                  \
    return detail::gather_at<settled>(site, std::forward<A1>(a1), std::forward<A2>(a2),          \
                                      std::forward<A3>(a3), std::forward<A4>(a4),                \
                                      std::forward<A5>(a5), std::forward<A6>(a6));               \
  }                                                                                              \
  template <class... A>                                                                          \
  auto name(A&&... awaitables) {                                                                 \
    return detail::gather_at<settled>(detail::CallSite::none(), std::forward<A>(awaitables)...); \
  }

/// asyncio.gather: runs the children concurrently and returns their results in argument order
/// (std::monostate for void children). Children may be Coro (wrapped in a task at once), Task or
/// Future. Errors: the first child exception propagates at once; the other children keep running.
/// Cancellation: cancelling the awaiting task cancels every child. `site`: the caller's line, for
/// call graphs (leave it defaulted).
WEAVE_SITED_GATHER(gather, false)
/// The vector forms take the caller's line too.
template <class T>
Coro<std::vector<detail::slot_t<Task<T>>>> gather(
    std::vector<Coro<T>> coros, detail::CallSite site = detail::CallSite::here()) {
  return detail::gather_vector<false>(detail::to_tasks(std::move(coros)), site);
}
template <class T>
Coro<std::vector<detail::slot_t<Task<T>>>> gather(
    std::vector<Task<T>> tasks, detail::CallSite site = detail::CallSite::here()) {
  return detail::gather_vector<false>(std::move(tasks), site);
}

/// gather(return_exceptions=True): each result is an Outcome holding a value or the exception.
WEAVE_SITED_GATHER(gather_settled, true)
#undef WEAVE_SITED_GATHER
template <class T>
Coro<std::vector<Outcome<T>>> gather_settled(std::vector<Coro<T>> coros,
                                             detail::CallSite site = detail::CallSite::here()) {
  return detail::gather_vector<true>(detail::to_tasks(std::move(coros)), site);
}
template <class T>
Coro<std::vector<Outcome<T>>> gather_settled(std::vector<Task<T>> tasks,
                                             detail::CallSite site = detail::CallSite::here()) {
  return detail::gather_vector<true>(std::move(tasks), site);
}

/// asyncio.wait: waits until `return_when` holds or `timeout` passes; splits the tasks into
/// done and pending. Never raises the tasks' exceptions and never cancels them.
/// Errors: ValueError for an empty set. Cancellation: the wait is withdrawn; tasks keep running.
/// `site` is the caller's line, for call graphs (leave it defaulted).
Coro<WaitResult> wait(std::vector<TaskRef> tasks, ReturnWhen return_when = ALL_COMPLETED,
                      std::optional<Clock::duration> timeout = std::nullopt,
                      detail::CallSite site = detail::CallSite::here());
template <class T>
Coro<WaitResult> wait(const std::vector<Task<T>>& tasks, ReturnWhen return_when = ALL_COMPLETED,
                      std::optional<Clock::duration> timeout = std::nullopt,
                      detail::CallSite site = detail::CallSite::here()) {
  return wait(std::vector<TaskRef>(tasks.begin(), tasks.end()), return_when, timeout, site);
}

/// wait() over plain Futures (asyncio.wait accepts futures as well as tasks).
template <class T>
struct FutureWaitResult {
  std::vector<Future<T>> done;
  std::vector<Future<T>> pending;
};
namespace detail {
/// wait()'s wait over any futures and tasks; the caller splits them afterwards.
/// `site` lives in the caller's frame (wait()'s parameter) for the whole wait.
Coro<void> wait_cores(std::vector<FutureCore*> cores, ReturnWhen return_when,
                      std::optional<Clock::duration> timeout, const CallSite* site);
}  // namespace detail
template <class T>
Coro<FutureWaitResult<T>> wait(std::vector<Future<T>> futures,
                               ReturnWhen return_when = ALL_COMPLETED,
                               std::optional<Clock::duration> timeout = std::nullopt,
                               detail::CallSite site = detail::CallSite::here()) {
  if (futures.empty()) throw ValueError("Set of Tasks/Futures is empty.");
  std::vector<detail::FutureCore*> cores;
  cores.reserve(futures.size());
  for (const Future<T>& f : futures) cores.push_back(f.core());
  co_await detail::wait_cores(std::move(cores), return_when, timeout, &site);
  FutureWaitResult<T> result;
  for (Future<T>& f : futures) (f.done() ? result.done : result.pending).push_back(std::move(f));
  co_return result;
}

/// asyncio.as_completed: `for (auto next : as_completed(tasks)) { T r = co_await next; }`
/// yields results in completion order. Errors: each `next` raises its task's exception;
/// TimeoutError for every remaining `next` once `timeout` passed.
template <class T>
class AsCompleted {
 public:
  AsCompleted(std::vector<Task<T>> tasks, std::optional<Clock::duration> timeout,
              detail::CallSite site = detail::CallSite::none())
      : tasks_(std::move(tasks)), site_(site) {
    std::vector<detail::FutureCore*> cores;
    for (const Task<T>& t : tasks_) cores.push_back(t.core());
    state_ = new detail::CompletionQueue(std::move(cores));
    state_->arm();
    if (timeout) {
      auto* s = state_;
      state_->timer = get_running_loop().call_later(*timeout, [s] { s->expire(); });
    }
  }
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;
  ~AsCompleted() {
    if (state_->timer) state_->timer->cancel();
    state_->abandon();
  }

  /// One step of the iteration: awaiting it gives the next result to complete.
  class Next {
   public:
    Next(AsCompleted* owner) : owner_(owner) {}  // NOLINT(google-explicit-constructor)
    bool await_ready() { return ready_index().has_value(); }
    void await_suspend(std::coroutine_handle<> h) {
      owner_->state_->waiting_ = true;
      owner_->state_->suspend(detail::require_task("await as_completed()"), h, &owner_->site_);
    }
    T await_resume() {
      if (detail::TaskCore* t = detail::current_task_core()) detail::checkpoint(t);
      auto index = ready_index();
      if (!index) throw TimeoutError();
      return owner_->tasks_[*index].result();
    }

    /// The next finished child's index (nullopt if none yet). Errors: TimeoutError once expired.
    std::optional<std::size_t> ready_index() {
      if (!index_) index_ = owner_->state_->pop();
      if (!index_ && owner_->state_->expired()) throw TimeoutError();
      return index_;
    }

   private:
    AsCompleted* owner_;
    std::optional<std::size_t> index_;
  };

  /// One step of Python 3.13's `async for task in as_completed(tasks)`: the next task to
  /// finish, itself (done, its result unread); nullopt once every task was given.
  class NextTask {
   public:
    explicit NextTask(AsCompleted* owner) : owner_(owner) {}
    bool await_ready() {
      if (owner_->given_ == owner_->tasks_.size()) return true;
      return next_.ready_index().has_value();
    }
    void await_suspend(std::coroutine_handle<> h) { next_.await_suspend(h); }
    std::optional<Task<T>> await_resume() {
      if (owner_->given_ == owner_->tasks_.size()) return std::nullopt;
      if (detail::TaskCore* t = detail::current_task_core()) detail::checkpoint(t);
      auto index = next_.ready_index();
      if (!index) throw TimeoutError();
      ++owner_->given_;
      return owner_->tasks_[*index];
    }

   private:
    AsCompleted* owner_;
    Next next_{owner_};
  };
  /// `while (auto task = co_await it.next())`: the tasks in the order they finish.
  /// Errors: TimeoutError once `timeout` passed. Cancellation: the tasks are not cancelled.
  NextTask next() { return NextTask(this); }

  class iterator {
   public:
    iterator(AsCompleted* owner, std::size_t i) : owner_(owner), i_(i) {}
    Next operator*() const { return Next(owner_); }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const iterator& o) const { return i_ != o.i_; }

   private:
    AsCompleted* owner_;
    std::size_t i_;
  };
  iterator begin() { return iterator(this, 0); }
  iterator end() { return iterator(this, tasks_.size()); }

 private:
  std::vector<Task<T>> tasks_;
  detail::CallSite site_;  ///< as_completed()'s caller, for call graphs
  detail::CompletionQueue* state_;
  std::size_t given_ = 0;  ///< tasks next() gave out
};

template <class T>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks,
                            std::optional<Clock::duration> timeout = std::nullopt,
                            detail::CallSite site = detail::CallSite::here()) {
  return AsCompleted<T>(std::move(tasks), timeout, site);
}

namespace detail {
template <class F>
Coro<typename F::value_type> shield_impl(F inner, CallSite site) {
  using T = typename F::value_type;
  if (inner.done()) co_return inner.result();
  Future<T> outer = get_running_loop().template create_future<T>();
  const CallbackId id = inner.add_done_callback([outer](F f) mutable {
    if (outer.cancelled()) {
      if (!f.cancelled()) (void)f.exception();  // mark retrieved, as asyncio
      return;
    }
    if (f.cancelled()) {
      outer.cancel();
    } else if (auto e = f.exception()) {
      outer.set_exception(e);
    } else if constexpr (std::is_void_v<T>) {
      outer.set_result();
    } else {
      outer.set_result(f.result());
    }
  });
  // For call graphs: the inner future is awaited by the outer one (asyncio's awaited_by).
  set_callback_awaiter(id, outer.core());
  auto waiting = outer.operator co_await();
  waiting.site = &site;
  co_return co_await waiting;
}
}  // namespace detail

/// asyncio.shield: cancelling the awaiting task does not cancel `awaitable` (a Coro is wrapped
/// in a task at once); the awaiting task still gets CancelledError.
/// `site` is the caller's line, for call graphs (leave it defaulted).
template <class A>
auto shield(A&& awaitable, detail::CallSite site = detail::CallSite::here()) {
  return detail::shield_impl(detail::as_future(std::forward<A>(awaitable)), site);
}

}  // namespace weave
