#pragma once
// A unit of work queued in an executor, allocated together with the future it completes.
//
// CallJob<R, Fn, Args...> *is* the future's shared state (it derives from FutureState<R>), so a
// submit costs one allocation: make_shared of the job. The executor holds the job through a
// shared_ptr<Job>; the user's Future<R> aliases the same control block. After the call has run
// (or been dropped as cancelled) the callable and its arguments are destroyed at once, so that
// what they own is released even while futures are kept around.
//
// Process pools need more than run(): a job that can leave the process (a plain function pointer
// and serializable arguments and result) also says so through portable(), writes the call with
// encode() and reads the result back with deliver(). Those live in concurrent_portable.hpp.

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weave/detail/concurrent_future.hpp"

namespace weave::concurrent {
class Writer;
class Reader;
}  // namespace weave::concurrent

namespace weave::concurrent::detail {

class Job {
 public:
  Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  virtual ~Job() = default;

  /// Runs the call in this thread and completes the future (or drops it if cancelled).
  virtual void run(const std::shared_ptr<Job>& self) = 0;
  virtual FutureStateBase& state() noexcept = 0;

  /// True if the call may run in another process (see concurrent_portable.hpp).
  virtual bool portable() const noexcept { return false; }
  /// Writes the call (code addresses and arguments); only for portable jobs.
  virtual void encode(Writer&) const {}
  /// Reads the result written by the worker and completes the future.
  virtual void deliver(const std::shared_ptr<Job>&, Reader&) {}
};

/// The future half of a job, sharing its control block.
inline std::shared_ptr<FutureStateBase> state_of(const std::shared_ptr<Job>& job) {
  return std::shared_ptr<FutureStateBase>(job, &job->state());
}

/// Runs `call` and stores what it returns (or throws) in `state`.
/// An exception is stored after its handler has ended: this thread lets go of it before the
/// future wakes anyone, so the last reference is never dropped here while another thread reads
/// the exception (which ThreadSanitizer, blind to libstdc++'s reference count, would report).
template <class R, class Call>
void complete_with(FutureState<R>& state, const std::shared_ptr<FutureStateBase>& self,
                   Call&& call) {
  std::exception_ptr error;
  try {
    if constexpr (std::is_void_v<R>) {
      std::forward<Call>(call)();
      state.try_set_result(self);
    } else {
      state.try_set_result(self, std::forward<Call>(call)());
    }
    return;
  } catch (...) {
    error = std::current_exception();
  }
  state.try_set_exception(self, std::move(error));
}

/// A job for any callable, run in-process only (std::thread-like decay-copy of the arguments).
template <class R, class Fn, class... Args>
class CallJob final : public FutureState<R>, public Job {
 public:
  template <class F, class... A>
  explicit CallJob(F&& fn, A&&... args)
      : call_(std::in_place, std::forward<F>(fn), std::forward<A>(args)...) {}

  void run(const std::shared_ptr<Job>& self) override {
    if (this->set_running_or_notify_cancel()) {
      complete_with<R>(*this, state_of(self), [this]() -> R {
        return std::apply(
            [](auto&& fn, auto&&... args) -> R {
              return std::invoke(std::move(fn), std::move(args)...);
            },
            std::move(*call_));
      });
    }
    call_.reset();
  }
  FutureStateBase& state() noexcept override { return *this; }

 private:
  std::optional<std::tuple<Fn, Args...>> call_;  // reset once run or dropped
};

}  // namespace weave::concurrent::detail
