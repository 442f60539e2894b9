#pragma once
// Jobs that may run in another process of the same program.
//
// A call `fn(args...)` with fn a plain function pointer `R (*)(P...)` and every decay_t<P> and R
// serializable is portable. The request a process-pool worker receives is:
//   trampoline address, fn address, args...
// where the trampoline is remote_call<R, P...>, instantiated in the user's program: it reads fn
// and the arguments with the same Serializers that wrote them, calls fn, and writes the result.
// The worker itself knows no types; both code addresses are translated through
// (module, offset) so that ASLR does not matter. Arguments are converted to the parameter types
// at submit time, so what the worker decodes has exactly the types that were encoded.

#include <cstddef>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weave/detail/concurrent_job.hpp"
#include "weave/detail/concurrent_serialization.hpp"

namespace weave::concurrent::detail {

/// The trampoline's type: reads a call from `in`, writes its result to `out`.
using RemoteEntry = void (*)(Reader& in, Writer& out);

template <class R, class... P>
using stored_args_t = std::tuple<std::decay_t<P>...>;

template <class R, class... P, std::size_t... I>
R invoke_stored(R (*fn)(P...), stored_args_t<R, P...>& args, std::index_sequence<I...>) {
  return fn(std::forward<P>(std::get<I>(args))...);
}

template <class R, class... P>
void remote_call(Reader& in, Writer& out) {
  auto fn = in.read<R (*)(P...)>();
  stored_args_t<R, P...> args{in.read<std::decay_t<P>>()...};  // braces: left to right
  if constexpr (std::is_void_v<R>) {
    invoke_stored(fn, args, std::index_sequence_for<P...>());
    out.write_nil();
  } else {
    out.write(invoke_stored(fn, args, std::index_sequence_for<P...>()));
  }
}

template <class R, class... P>
concept portable_signature = (std::is_void_v<R> || serializable<std::remove_cvref_t<R>>)&&(
                                 serializable<std::decay_t<P>>&&...) &&
                             !std::is_reference_v<R>;

template <class R, class... P>
class PortableJob final : public FutureState<R>, public Job {
 public:
  template <class... A>
  explicit PortableJob(R (*fn)(P...), A&&... args)
      : fn_(fn), args_(std::in_place, std::forward<A>(args)...) {}

  void run(const std::shared_ptr<Job>& self) override {
    if (this->set_running_or_notify_cancel()) {
      complete_with<R>(*this, state_of(self),
                       [this]() -> R { return invoke_stored(fn_, *args_, indices()); });
    }
    args_.reset();
  }
  FutureStateBase& state() noexcept override { return *this; }

  bool portable() const noexcept override { return true; }

  void encode(Writer& w) const override {
    w.write(&remote_call<R, P...>);
    w.write(fn_);
    std::apply([&](const auto&... a) { (w.write(a), ...); }, *args_);
  }

  void deliver(const std::shared_ptr<Job>& self, Reader& r) override {
    args_.reset();
    complete_with<R>(*this, state_of(self), [&r]() -> R {
      if constexpr (std::is_void_v<R>) {
        r.read_nil();
      } else {
        return r.read<R>();
      }
    });
  }

 private:
  static constexpr auto indices() { return std::index_sequence_for<P...>(); }

  R (*fn_)(P...);
  std::optional<stored_args_t<R, P...>> args_;  // reset once run, sent and answered, or dropped
};

/// The job Executor::submit builds: portable when it can be, in-process otherwise.
template <class Fn, class... Args>
struct JobFor {
  using R = std::invoke_result_t<std::decay_t<Fn>, std::decay_t<Args>...>;
  using type = CallJob<R, std::decay_t<Fn>, std::decay_t<Args>...>;
};

template <class R, class... P, class... Args>
requires(sizeof...(P) == sizeof...(Args) && portable_signature<R, P...> &&
         (std::is_constructible_v<std::decay_t<P>, Args&&> &&
          ...)) struct JobFor<R (*)(P...), Args...> {
  using type = PortableJob<R, P...>;
};

template <class Fn, class... Args>
using job_for_t = typename JobFor<std::decay_t<Fn>, Args...>::type;

}  // namespace weave::concurrent::detail
