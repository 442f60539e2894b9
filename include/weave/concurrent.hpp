#pragma once
/// \file concurrent.hpp
/// weave::concurrent: Python's concurrent.futures, usable with no event loop at all.
///
///   weave::concurrent::ThreadPoolExecutor pool(4);
///   auto f = pool.submit([](int x) { return x * x; }, 7);
///   int r = f.result(1s);                       // 49, or TimeoutError after a second
///
/// Future<T> is thread-safe and a cheap copyable handle; every handle sees the same state.
/// Executors run work in threads (ThreadPoolExecutor) or in separate processes of the same
/// program (ProcessPoolExecutor). wait() and as_completed() watch many futures at once.
///
/// Process pools send arguments and results through Serializer<T>; to send your own type,
/// specialize it (see detail/concurrent_serialization.hpp for the built-in ones):
///
///   template <> struct weave::concurrent::Serializer<Point> {
///     static void write(Writer& w, const Point& p) { w.write(p.x); w.write(p.y); }
///     static Point read(Reader& r) { return Point{r.read<int>(), r.read<int>()}; }
///   };

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "weave/clock.hpp"
#include "weave/detail/concurrent_future.hpp"
#include "weave/detail/concurrent_job.hpp"
#include "weave/detail/concurrent_portable.hpp"
#include "weave/detail/concurrent_serialization.hpp"
#include "weave/errors.hpp"

namespace weave::concurrent {

/// Python's BrokenThreadPool: a worker's initializer failed, so the pool runs nothing more.
class BrokenThreadPool : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// An exception thrown by a call in a process-pool worker, brought back by name and message.
class RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string message)
      : Error(type_name + ": " + message),
        type_name_(std::move(type_name)),
        message_(std::move(message)) {}
  /// The dynamic type of the original exception, demangled ("std::out_of_range").
  const std::string& type_name() const noexcept { return type_name_; }
  /// Its what().
  const std::string& message() const noexcept { return message_; }

 private:
  std::string type_name_;
  std::string message_;
};

/// Untyped handle to a future: what wait() and as_completed() need, and what every Future<T>
/// is. Copies share one state; == compares that identity.
class FutureBase {
 public:
  /// True once finished with a value, with an exception, or cancelled.
  bool done() const { return state_->done(); }
  bool cancelled() const { return state_->cancelled(); }
  /// True while an executor runs the call.
  bool running() const { return state_->running(); }
  /// Cancels a future that has not started. Returns false if it is running or finished;
  /// true if it is (now or already) cancelled. Done callbacks run here when it succeeds.
  bool cancel() const { return state_->cancel(state_); }

  /// Waits for completion and returns its exception, or null after a value.
  /// Errors: CancelledError if cancelled; TimeoutError if `timeout` passes first.
  std::exception_ptr exception(std::optional<Clock::duration> timeout = {}) const {
    return state_->exception(timeout);
  }

  /// For executors (and tests): moves Pending to Running and returns true, or returns false if
  /// the future was cancelled, in which case the call must not run.
  /// Errors: RuntimeError if the future is running or finished already.
  bool set_running_or_notify_cancel() const;

  /// Completes with an exception. Errors: InvalidStateError if already done.
  void set_exception(std::exception_ptr error) const;

  friend bool operator==(const FutureBase& a, const FutureBase& b) noexcept {
    return a.state_ == b.state_;
  }
  /// Identity of the shared state, for hashing.
  const void* id() const noexcept { return state_.get(); }

  /// The shared state (for executors and the event loop's bridges).
  const std::shared_ptr<detail::FutureStateBase>& state() const noexcept { return state_; }

 protected:
  explicit FutureBase(std::shared_ptr<detail::FutureStateBase> state) : state_(std::move(state)) {}

  std::shared_ptr<detail::FutureStateBase> state_;  // never null
};

/// concurrent.futures.Future: the eventual result of a call, safe to use from any thread.
template <class T = void>
class Future : public FutureBase {
 public:
  using value_type = T;

  /// A new pending future (Python's `Future()`), to be completed with set_result().
  Future() : FutureBase(std::make_shared<detail::FutureState<T>>()) {}
  explicit Future(std::shared_ptr<detail::FutureState<T>> state) : FutureBase(std::move(state)) {}

  /// Waits for the result. `timeout` empty waits forever; zero only looks.
  /// Errors: CancelledError if cancelled; TimeoutError if `timeout` passes first; otherwise the
  /// exception the call threw, re-thrown.
  decltype(auto) result(std::optional<Clock::duration> timeout = {}) const& {
    state_->wait_for_value(timeout);
    if constexpr (!std::is_void_v<T>) return std::as_const(typed().value());
  }
  /// On a temporary handle the value is returned by value (moved if T cannot be copied).
  auto result(std::optional<Clock::duration> timeout = {}) && -> T {
    state_->wait_for_value(timeout);
    if constexpr (!std::is_void_v<T>) {
      if constexpr (std::is_copy_constructible_v<T>) {
        return typed().value();
      } else {
        return std::move(typed().value());
      }
    }
  }

  /// Completes with a value. Errors: InvalidStateError if already done.
  template <class... A>
  void set_result(A&&... value) const {
    if (!typed().try_set_result(state_, std::forward<A>(value)...)) {
      throw InvalidStateError("Future is already done");
    }
  }

  /// Calls `fn(future)` (or `fn()`) when the future is done: at once, in this thread, if it is
  /// done already; otherwise in the thread that completes or cancels it. An exception thrown by
  /// `fn` is reported on stderr and otherwise ignored, as Python logs it.
  template <class F>
  void add_done_callback(F&& fn) const {
    state_->add_done_callback(
        state_,
        [fn = std::forward<F>(fn)](const std::shared_ptr<detail::FutureStateBase>& s) mutable {
          if constexpr (std::is_invocable_v<std::decay_t<F>&, Future&>) {
            fn(Future(std::static_pointer_cast<detail::FutureState<T>>(s)));
          } else {
            fn();
          }
        });
  }

 private:
  detail::FutureState<T>& typed() const noexcept {
    return static_cast<detail::FutureState<T>&>(*state_);
  }
};

namespace detail {
template <class Fn, class... Args>
using call_result_t = std::invoke_result_t<std::decay_t<Fn>, std::decay_t<Args>...>;
}  // namespace detail

/// The keyword arguments of Executor::map (Python's timeout=, chunksize=, buffersize=).
struct MapOptions {
  std::optional<Clock::duration> timeout{};
  std::size_t chunksize = 1;
  std::optional<std::size_t> buffersize{};
};

/// What Executor::map returns: the results in input order, taken one at a time (Python's
/// result iterator). An input range: `for (auto& r : results)`, or next() -> nullopt at the
/// end. A `void` function's results are std::monostate. Not copyable; the executor must
/// outlive it. Destroying it cancels the calls not started yet.
template <class T>
class MapResults {
 public:
  using value_type = T;

  /// The calls behind a MapResults: pending futures, oldest first, and the calls to submit.
  class Source {
   public:
    virtual ~Source() = default;
    /// Submits one more call; false when a range is exhausted.
    virtual bool submit_one() = 0;
    virtual bool idle() const noexcept = 0;  ///< no pending future
    /// Waits for the oldest future and appends its values to `out`. Errors: its exception;
    /// TimeoutError.
    virtual void take_oldest(std::deque<T>& out, std::optional<Clock::duration> timeout) = 0;
    virtual void cancel_all() noexcept = 0;
  };

  MapResults(std::unique_ptr<Source> source, std::optional<Clock::time_point> deadline,
             bool bounded)
      : source_(std::move(source)), deadline_(deadline), bounded_(bounded) {}
  MapResults(MapResults&&) noexcept = default;
  MapResults& operator=(MapResults&&) noexcept = default;
  ~MapResults() {
    if (source_) source_->cancel_all();
  }

  /// The next result, nullopt after the last. Errors: as Executor::map; after one, the
  /// results are over (next() returns nullopt).
  std::optional<T> next() {
    if (ready_.empty()) {
      if (!source_ || source_->idle()) return std::nullopt;
      try {
        if (bounded_) source_->submit_one();
        source_->take_oldest(ready_, remaining());
      } catch (...) {
        source_->cancel_all();
        source_.reset();
        throw;
      }
      if (ready_.empty()) return next();  // an empty chunk
    }
    T value = std::move(ready_.front());
    ready_.pop_front();
    return value;
  }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = T&;
    iterator() = default;
    explicit iterator(MapResults* owner) : owner_(owner) { advance(); }
    T& operator*() const { return *current_; }
    T* operator->() const { return &*current_; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator& a, std::default_sentinel_t) noexcept {
      return a.owner_ == nullptr;
    }

   private:
    void advance() {
      current_ = owner_->next();
      if (!current_) owner_ = nullptr;
    }
    MapResults* owner_ = nullptr;
    mutable std::optional<T> current_;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::optional<Clock::duration> remaining() const {
    if (!deadline_) return std::nullopt;
    return std::max(Clock::duration::zero(), *deadline_ - Clock::now());
  }

  std::unique_ptr<Source> source_;
  std::deque<T> ready_;
  std::optional<Clock::time_point> deadline_;
  bool bounded_;
};

namespace detail {
template <class R>
using map_value_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

/// Zipped ranges read one tuple at a time: views over them (owning for rvalues).
template <class... Ranges>
class Zipped {
 public:
  explicit Zipped(Ranges&&... ranges)
      : views_(std::views::all(std::forward<Ranges>(ranges))...),
        its_(std::apply([](auto&... v) { return std::tuple(std::ranges::begin(v)...); }, views_)) {}
  Zipped(const Zipped&) = delete;
  Zipped& operator=(const Zipped&) = delete;

  /// Calls `f(items...)` with the next item of each range and advances them; false when one is
  /// exhausted.
  template <class F>
  bool next(F&& f) {
    if (exhausted()) return false;
    std::apply([&](auto&... it) { f(*it...); }, its_);
    std::apply([](auto&... it) { (++it, ...); }, its_);
    return true;
  }

 private:
  template <std::size_t... I>
  bool exhausted_at(std::index_sequence<I...>) {
    return ((std::get<I>(its_) == std::ranges::end(std::get<I>(views_))) || ...);
  }
  bool exhausted() { return exhausted_at(std::index_sequence_for<Ranges...>{}); }

  std::tuple<std::views::all_t<Ranges>...> views_;
  std::tuple<std::ranges::iterator_t<std::views::all_t<Ranges>>...> its_;
};

/// A MapResults source that submits one call per tuple with `submit_call`.
template <class T, class Part, class Submit, class... Ranges>
class CallSource final : public MapResults<T>::Source {
 public:
  CallSource(Submit submit, Ranges&&... ranges)
      : submit_(std::move(submit)), zipped_(std::forward<Ranges>(ranges)...) {}
  ~CallSource() override { cancel_all(); }

  bool submit_one() override {
    return zipped_.next([&](auto&&... items) { pending_.push_back(submit_(items...)); });
  }
  bool idle() const noexcept override { return pending_.empty(); }
  void take_oldest(std::deque<T>& out, std::optional<Clock::duration> timeout) override {
    auto& oldest = pending_.front();
    if constexpr (std::is_void_v<Part>) {
      oldest.result(timeout);
      out.emplace_back();
    } else if constexpr (std::is_same_v<Part, T>) {
      out.push_back(std::move(oldest).result(timeout));
    } else {
      Part part = std::move(oldest).result(timeout);
      if constexpr (std::is_same_v<Part, std::size_t>) {  // a chunk of void calls
        out.resize(out.size() + part);
      } else {
        std::move(part.begin(), part.end(), std::back_inserter(out));
      }
    }
    pending_.pop_front();
  }
  void cancel_all() noexcept override {
    for (auto& f : pending_) f.cancel();
    pending_.clear();
  }

 private:
  Submit submit_;
  Zipped<Ranges...> zipped_;
  std::deque<Future<Part>> pending_;
};

template <class T, class Part, class Submit, class... Ranges>
MapResults<T> make_map_results(Submit submit, std::optional<Clock::duration> timeout,
                               std::optional<std::size_t> buffersize, Ranges&&... ranges) {
  if (buffersize && *buffersize == 0) throw ValueError("buffersize must be >= 1");
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout;
  auto source = std::make_unique<CallSource<T, Part, Submit, Ranges...>>(
      std::move(submit), std::forward<Ranges>(ranges)...);
  // Python submits buffersize calls at once (or all of them), then one more per result taken.
  const std::size_t ahead = buffersize.value_or(static_cast<std::size_t>(-1));
  for (std::size_t i = 0; i < ahead && source->submit_one(); ++i) {
  }
  return MapResults<T>(std::move(source), deadline, buffersize.has_value());
}
}  // namespace detail

/// concurrent.futures.Executor: runs calls asynchronously and hands back futures.
class Executor {
 public:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  virtual ~Executor() = default;

  /// Schedules `fn(args...)` and returns its future. Arguments are copied or moved into the
  /// call (as std::thread does); an exception thrown by the call is stored in the future.
  /// Errors: RuntimeError after shutdown(); BrokenExecutor (a subclass) if the pool is broken.
  template <class Fn, class... Args>
  Future<detail::call_result_t<Fn, Args...>> submit(Fn&& fn, Args&&... args) {
    using R = detail::call_result_t<Fn, Args...>;
    using Job = detail::job_for_t<Fn, Args...>;
    auto job = std::make_shared<Job>(std::forward<Fn>(fn), std::forward<Args>(args)...);
    Future<R> future(std::shared_ptr<detail::FutureState<R>>(job, job.get()));
    submit_job(std::move(job));
    return future;
  }

  /// Python 3.14's Executor.map: calls `fn(a, b, ...)` with one item of each range at a time
  /// (zipped, stopping at the shortest) and returns the results lazily, in input order, as a
  /// MapResults. Without `buffersize`, every call is submitted now (the ranges are read here);
  /// with it, at most that many calls are submitted ahead of the one whose result is taken
  /// next, the next call being submitted each time a result is taken (the ranges are then read
  /// as the results are, and lvalue ranges must outlive the MapResults). `timeout` counts from
  /// this call: taking a result after it raises TimeoutError. `chunksize` only matters to
  /// process pools. Errors from the results: the call's exception, at its place in the order,
  /// after every earlier result was taken; at that point the calls not started are cancelled,
  /// as they are when the MapResults is destroyed early. ValueError here if buffersize is 0.
  template <class Fn, std::ranges::input_range Range>
  auto map(Fn&& fn, Range&& items, std::optional<Clock::duration> timeout = {},
           std::size_t chunksize = 1, std::optional<std::size_t> buffersize = {}) {
    (void)chunksize;
    return map_calls(*this, std::forward<Fn>(fn), timeout, buffersize, std::forward<Range>(items));
  }
  /// The same over several ranges, with the options in a MapOptions.
  template <class Fn, std::ranges::input_range... Ranges>
  requires(sizeof...(Ranges) > 0) auto map(Fn&& fn, MapOptions opts, Ranges&&... ranges) {
    return map_calls(*this, std::forward<Fn>(fn), opts.timeout, opts.buffersize,
                     std::forward<Ranges>(ranges)...);
  }
  template <class Fn, std::ranges::input_range R1, std::ranges::input_range R2,
            std::ranges::input_range... Rest>
  auto map(Fn&& fn, R1&& first, R2&& second, Rest&&... rest) {
    return map_calls(*this, std::forward<Fn>(fn), std::nullopt, std::nullopt,
                     std::forward<R1>(first), std::forward<R2>(second),
                     std::forward<Rest>(rest)...);
  }

  /// Frees the executor's resources. `wait`: return only after every pending call has run and
  /// every worker has ended. `cancel_futures`: cancel the calls that have not started.
  /// Calling it again is harmless. Submitting afterwards throws RuntimeError.
  virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;

 protected:
  /// Queues a job. Errors: as submit().
  virtual void submit_job(std::shared_ptr<detail::Job> job) = 0;

  /// map()'s body: a MapResults over submit(fn, items...) calls on `ex`.
  template <class Ex, class Fn, class... Ranges>
  static auto map_calls(Ex& ex, Fn&& fn, std::optional<Clock::duration> timeout,
                        std::optional<std::size_t> buffersize, Ranges&&... ranges);
};

/// concurrent.futures.ThreadPoolExecutor. Threads start on demand, up to `max_workers`, and
/// block (no spinning) while idle. Each runs `initializer` first; if that throws, the pool is
/// broken: queued futures fail and submit() throws BrokenThreadPool.
class ThreadPoolExecutor final : public Executor {
 public:
  /// `max_workers` 0 means min(32, cpu count + 4), as Python. Errors: ValueError if negative.
  explicit ThreadPoolExecutor(int max_workers = 0, std::string thread_name_prefix = {},
                              std::function<void()> initializer = {});
  /// shutdown(wait = true).
  ~ThreadPoolExecutor() override;

  void shutdown(bool wait = true, bool cancel_futures = false) override;
  int max_workers() const noexcept;

 protected:
  void submit_job(std::shared_ptr<detail::Job> job) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

template <class Ex, class Fn, class... Ranges>
auto Executor::map_calls(Ex& ex, Fn&& fn, std::optional<Clock::duration> timeout,
                         std::optional<std::size_t> buffersize, Ranges&&... ranges) {
  using R = detail::call_result_t<Fn&, std::ranges::range_reference_t<Ranges>...>;
  using T = detail::map_value_t<R>;
  auto submit = [&ex, f = std::forward<Fn>(fn)](auto&&... items) {
    return ex.submit(f, std::forward<decltype(items)>(items)...);
  };
  return detail::make_map_results<T, R>(std::move(submit), timeout, buffersize,
                                        std::forward<Ranges>(ranges)...);
}

namespace detail {
template <class R>
using chunk_result_t = std::conditional_t<std::is_void_v<R>, std::size_t, std::vector<R>>;

/// One map() chunk, run in a worker: fn over every item.
template <class R, class P>
chunk_result_t<R> run_chunk(R (*fn)(P), std::vector<std::decay_t<P>> items) {
  if constexpr (std::is_void_v<R>) {
    for (auto& item : items) fn(std::forward<P>(item));
    return items.size();
  } else {
    std::vector<R> out;
    out.reserve(items.size());
    for (auto& item : items) out.push_back(fn(std::forward<P>(item)));
    return out;
  }
}

/// A range read `size` items at a time, as vectors (Python's itertools.batched): a one-range
/// source for ProcessPoolExecutor::map. A view over its range (owning for an rvalue).
template <class Item, class Range>
class Chunks {
 public:
  Chunks(Range&& range, std::size_t size)
      : view_(std::views::all(std::forward<Range>(range))), size_(size) {}

  class iterator {
   public:
    using value_type = std::vector<Item>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Chunks* c) : c_(c), it_(std::ranges::begin(c->view_)) {}
    std::vector<Item>& operator*() const {
      fill();
      return chunk_;
    }
    iterator& operator++() {
      fill();  // the current chunk, if nobody looked at it
      stale_ = true;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, std::default_sentinel_t) {
      a.fill();
      return a.chunk_.empty();
    }

   private:
    // The next chunk is read only when it is looked at, as itertools.batched reads.
    void fill() const {
      if (!stale_) return;
      chunk_.clear();
      while (chunk_.size() < c_->size_ && it_ != std::ranges::end(c_->view_)) {
        chunk_.emplace_back(*it_);
        ++it_;
      }
      stale_ = false;
    }
    Chunks* c_ = nullptr;
    mutable std::ranges::iterator_t<std::views::all_t<Range>> it_{};
    mutable std::vector<Item> chunk_;
    mutable bool stale_ = true;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::views::all_t<Range> view_;
  std::size_t size_;
};
}  // namespace detail

/// concurrent.futures.ProcessPoolExecutor: runs plain functions of this program in separate
/// worker processes. Workers are fresh executions of this same program, started on demand up
/// to `max_workers`; they take over before main() runs, so main() needs no change. A call is
/// `fn(args...)` with `fn` a plain function pointer (or a captureless lambda) whose parameter
/// and result types are serializable (see Serializer); an exception it throws comes back as
/// RemoteError. `initializer` must hold a plain function pointer (ValueError otherwise); it
/// runs first in every worker. `max_tasks_per_child` > 0 replaces a worker after that many
/// calls. A worker that dies (crash, signal, failed initializer) breaks the pool: every pending
/// future fails with BrokenProcessPool and so does every later submit().
class ProcessPoolExecutor final : public Executor {
 public:
  /// `max_workers` 0 means the number of CPUs this process may use. Errors: ValueError if
  /// max_workers or max_tasks_per_child is negative or the initializer is not a plain function.
  explicit ProcessPoolExecutor(int max_workers = 0, std::function<void()> initializer = {},
                               int max_tasks_per_child = 0);
  /// shutdown(wait = true): returns once every worker has exited and been reaped.
  ~ProcessPoolExecutor() override;

  /// Runs `fn(args...)` in a worker. Arguments are converted to the parameter types here.
  /// Errors: RuntimeError after shutdown(); BrokenProcessPool once the pool is broken.
  template <class R, class... P, class... A>
  Future<R> submit(R (*fn)(P...), A&&... args) {
    static_assert(sizeof...(P) == sizeof...(A), "wrong number of arguments");
    static_assert(detail::portable_signature<R, P...>,
                  "ProcessPoolExecutor: parameter and result types must be serializable "
                  "(specialize weave::concurrent::Serializer)");
    return Executor::submit(fn, std::forward<A>(args)...);
  }
  /// A captureless, non-generic lambda is a plain function too.
  template <class F, class... A>
  requires(std::is_class_v<F>&& std::is_empty_v<F>&& requires(F f) {
    +f;
  }) auto submit(F fn, A&&... args) {
    return submit(+fn, std::forward<A>(args)...);
  }

  /// Executor::map, sending `chunksize` items per message to the workers (Python's chunking;
  /// `buffersize` then counts chunks, as Python's does). Several ranges go one call per
  /// message. Errors: as Executor::map; ValueError if chunksize is 0, or above 1 with several
  /// ranges.
  template <class R, class P, std::ranges::input_range Range>
  auto map(R (*fn)(P), Range&& items, std::optional<Clock::duration> timeout = {},
           std::size_t chunksize = 1, std::optional<std::size_t> buffersize = {}) {
    if (chunksize == 0) throw ValueError("chunksize must be >= 1");
    using T = detail::map_value_t<R>;
    if (chunksize == 1) {
      auto call = [this, fn](auto&&... item) {
        return this->submit(fn, std::forward<decltype(item)>(item)...);
      };
      return detail::make_map_results<T, R>(std::move(call), timeout, buffersize,
                                            std::forward<Range>(items));
    }
    auto call = [this, fn](std::vector<std::decay_t<P>>& chunk) {
      return this->submit(&detail::run_chunk<R, P>, fn, std::move(chunk));
    };
    return detail::make_map_results<T, detail::chunk_result_t<R>>(
        std::move(call), timeout, buffersize,
        detail::Chunks<std::decay_t<P>, Range>(std::forward<Range>(items), chunksize));
  }
  template <class R, class... P, std::ranges::input_range... Ranges>
  requires(sizeof...(Ranges) == sizeof...(P)) auto map(R (*fn)(P...), MapOptions opts,
                                                       Ranges&&... ranges) {
    if (opts.chunksize == 0 || (opts.chunksize > 1 && sizeof...(Ranges) > 1)) {
      throw ValueError("chunksize must be 1 with several ranges, and >= 1");
    }
    if constexpr (sizeof...(Ranges) == 1) {
      return map(fn, std::forward<Ranges>(ranges)..., opts.timeout, opts.chunksize,
                 opts.buffersize);
    } else {
      auto call = [this, fn](auto&&... item) {
        return this->submit(fn, std::forward<decltype(item)>(item)...);
      };
      return detail::make_map_results<detail::map_value_t<R>, R>(
          std::move(call), opts.timeout, opts.buffersize, std::forward<Ranges>(ranges)...);
    }
  }
  template <class R, class... P, std::ranges::input_range R1, std::ranges::input_range R2,
            std::ranges::input_range... Rest>
  auto map(R (*fn)(P...), R1&& first, R2&& second, Rest&&... rest) {
    return map(fn, MapOptions(), std::forward<R1>(first), std::forward<R2>(second),
               std::forward<Rest>(rest)...);
  }

  void shutdown(bool wait = true, bool cancel_futures = false) override;
  /// Python 3.14's terminate_workers()/kill_workers(): shuts down without waiting for calls,
  /// cancelling queued ones, sends SIGTERM/SIGKILL to every worker, and waits until they are
  /// reaped. Running futures fail with BrokenProcessPool. For a worker stuck in a call.
  void terminate_workers();
  void kill_workers();
  int max_workers() const noexcept;

 protected:
  /// Errors: ValueError for a call that cannot leave this process.
  void submit_job(std::shared_ptr<detail::Job> job) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared: futures reach it as their Helper
};

/// Which completion wait() returns on.
enum class ReturnWhen {
  FIRST_COMPLETED,  // any future finishes or is cancelled
  FIRST_EXCEPTION,  // any future finishes with an exception, or all are done
  ALL_COMPLETED,    // all are done
};
/// Python's module-level spellings: `cf::wait(fs, {}, cf::FIRST_COMPLETED)`.
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

/// wait()'s answer, in input order within each half. Structured bindings work:
/// `auto [done, not_done] = wait(fs);`
template <class F>
struct DoneAndNotDoneFutures {
  std::vector<F> done;
  std::vector<F> not_done;
};

namespace detail {

template <class Range>
using future_of_t = std::remove_cvref_t<std::ranges::range_reference_t<Range>>;

/// Distinct futures of `fs`, in first-seen order (Python takes set(fs)).
template <class Range>
std::vector<future_of_t<Range>> distinct(const Range& fs) {
  std::vector<future_of_t<Range>> out;
  std::unordered_set<const void*> seen;
  for (const auto& f : fs) {
    if (seen.insert(f.id()).second) out.push_back(f);
  }
  return out;
}

/// Attaches `waiter` to every future not done yet; marks the done ones (and whether they
/// failed) and returns how many were attached.
template <class F>
std::size_t attach_all(Waiter& waiter, const std::vector<F>& fs, std::vector<char>& done,
                       bool& any_failed) {
  std::size_t attached = 0;
  for (std::size_t i = 0; i < fs.size(); ++i) {
    bool failed = false;
    if (fs[i].state()->attach(&waiter, i, failed)) {
      ++attached;
    } else {
      done[i] = 1;
      any_failed = any_failed || failed;
    }
  }
  return attached;
}

template <class F>
void detach_all(Waiter& waiter, const std::vector<F>& fs, const std::vector<char>& done) {
  for (std::size_t i = 0; i < fs.size(); ++i) {
    if (!done[i]) fs[i].state()->detach(&waiter);
  }
}

inline std::optional<Clock::time_point> deadline_after(std::optional<Clock::duration> timeout) {
  if (!timeout) return std::nullopt;
  return Clock::now() + *timeout;
}

}  // namespace detail

/// concurrent.futures.wait: blocks until `return_when` holds for the futures in `fs` (any
/// range of Future<T>/FutureBase), or `timeout` passes, and splits them into done and not done.
/// Duplicates count once. A cancelled future counts as done. Never throws on timeout: it then
/// returns what is done so far.
template <std::ranges::input_range Range>
requires std::derived_from<detail::future_of_t<Range>, FutureBase>
    DoneAndNotDoneFutures<detail::future_of_t<Range>> wait(
        const Range& fs, std::optional<Clock::duration> timeout = {},
        ReturnWhen return_when = ReturnWhen::ALL_COMPLETED) {
  auto futures = detail::distinct(fs);
  auto deadline = detail::deadline_after(timeout);
  auto mode = return_when == ReturnWhen::FIRST_COMPLETED   ? detail::Wake::Any
              : return_when == ReturnWhen::FIRST_EXCEPTION ? detail::Wake::FirstException
                                                           : detail::Wake::All;
  detail::Waiter waiter(mode, futures.size());
  std::vector<char> done(futures.size(), 0);
  bool any_failed = false;
  std::size_t already = futures.size() - detail::attach_all(waiter, futures, done, any_failed);
  waiter.forget(already);
  bool satisfied = (return_when == ReturnWhen::FIRST_COMPLETED && already > 0) ||
                   (return_when == ReturnWhen::FIRST_EXCEPTION && any_failed);
  if (!satisfied) waiter.wait_until(deadline);
  detail::detach_all(waiter, futures, done);
  for (std::size_t tag : waiter.finished()) done[tag] = 1;
  DoneAndNotDoneFutures<detail::future_of_t<Range>> out;
  for (std::size_t i = 0; i < futures.size(); ++i) {
    (done[i] ? out.done : out.not_done).push_back(std::move(futures[i]));
  }
  return out;
}

/// The iterable as_completed() returns. Iterating blocks until the next future is done and
/// yields it (already-done ones first). Single pass; movable, not copyable.
/// Errors: incrementing (or begin()) throws TimeoutError once the deadline given to
/// as_completed() has passed with futures still unfinished.
template <class F>
class AsCompleted {
  struct Shared;

 public:
  AsCompleted(std::vector<F> fs, std::optional<Clock::duration> timeout)
      : s_(std::make_unique<Shared>(std::move(fs), detail::deadline_after(timeout))) {}

  class iterator {
   public:
    using value_type = F;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    const F& operator*() const { return owner_->current(); }
    const F* operator->() const { return &owner_->current(); }
    iterator& operator++() {
      if (!owner_->advance()) owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.owner_ == nullptr;
    }

   private:
    friend class AsCompleted;
    explicit iterator(Shared* owner) : owner_(owner) {}
    Shared* owner_ = nullptr;  // null at the end
  };

  iterator begin() {
    iterator it(s_.get());
    if (!s_->advance()) it.owner_ = nullptr;
    return it;
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  struct Shared {
    Shared(std::vector<F> fs_in, std::optional<Clock::time_point> deadline_in)
        : fs(detail::distinct(fs_in)),
          deadline(deadline_in),
          waiter(detail::Wake::Any, fs.size()),
          done(fs.size(), 0) {
      bool failed = false;
      unfinished = detail::attach_all(waiter, fs, done, failed);
      // Already-done futures come out first, in input order.
      for (std::size_t i = 0; i < fs.size(); ++i) {
        if (done[i]) ready.push_back(i);
      }
    }
    ~Shared() { detail::detach_all(waiter, fs, done); }
    const F& current() const { return fs[at]; }

    /// Moves to the next completed future; false when all were yielded.
    bool advance() {
      if (next_ready < ready.size()) {
        at = ready[next_ready++];
        return true;
      }
      if (unfinished == 0) return false;
      auto tag = waiter.pop(deadline);
      if (!tag) {
        throw TimeoutError(std::to_string(unfinished) + " (of " + std::to_string(fs.size()) +
                           ") futures unfinished");
      }
      --unfinished;
      at = *tag;
      return true;
    }

    std::vector<F> fs;
    std::optional<Clock::time_point> deadline;
    detail::Waiter waiter;
    std::vector<char> done;          // 1 = not attached (done at the start)
    std::vector<std::size_t> ready;  // done at the start, yielded first
    std::size_t next_ready = 0;
    std::size_t unfinished = 0;  // attached futures not yielded yet
    std::size_t at = 0;          // index of the current future
  };
  std::unique_ptr<Shared> s_;
};

/// concurrent.futures.as_completed: yields the futures of `fs` as they complete.
///   for (auto& f : as_completed(fs, 5s)) use(f.result());
/// `timeout` counts from this call. Errors: TimeoutError while iterating, once it passes.
template <std::ranges::input_range Range>
requires std::derived_from<detail::future_of_t<Range>, FutureBase>
    AsCompleted<detail::future_of_t<Range>> as_completed(
        const Range& fs, std::optional<Clock::duration> timeout = {}) {
  return AsCompleted<detail::future_of_t<Range>>(
      std::vector<detail::future_of_t<Range>>(std::ranges::begin(fs), std::ranges::end(fs)),
      timeout);
}

}  // namespace weave::concurrent

template <class T>
struct std::hash<weave::concurrent::Future<T>> {
  std::size_t operator()(const weave::concurrent::Future<T>& f) const noexcept {
    return std::hash<const void*>()(f.id());
  }
};
