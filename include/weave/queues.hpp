#pragma once
/// \file queues.hpp
/// asyncio.queues: Queue<T> (FIFO), PriorityQueue<T, Compare> (smallest first, as heapq) and
/// LifoQueue<T>, with Python 3.13's shutdown(). Not thread-safe; a queue binds to the loop of its
/// first wait. PriorityQueue and LifoQueue derive from Queue<T>, as in asyncio, so code taking a
/// `Queue<T>&` accepts all three.
///
/// Items are never handed to a waiting getter directly: a woken getter re-checks the queue when it
/// runs and takes the item itself (asyncio's design). So an item is never lost to a getter that is
/// cancelled after being woken; that getter wakes the next one instead. Putters work the same way
/// with free slots. get() and put() do not suspend, and allocate nothing, when they need not wait;
/// a wait runs in a small coroutine frame taken from the frame pool, because a woken waiter that
/// finds its item taken by someone else has to wait again.

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "weave/coro.hpp"
#include "weave/detail/sync_wait.hpp"
#include "weave/errors.hpp"
#include "weave/generator.hpp"
#include "weave/locks.hpp"

namespace weave {

template <class T>
class Queue {
 public:
  using value_type = T;

  /// A queue holding at most `maxsize` items; unbounded when `maxsize` <= 0.
  explicit Queue(int maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  virtual ~Queue() = default;

  std::size_t qsize() const noexcept { return stored(); }
  int maxsize() const noexcept { return maxsize_; }
  bool empty() const noexcept { return stored() == 0; }
  bool full() const noexcept {
    return maxsize_ > 0 && stored() >= static_cast<std::size_t>(maxsize_);
  }

  /// Adds `item` without waiting and wakes the first getter.
  /// Errors: QueueShutDown after shutdown(); QueueFull when full.
  void put_nowait(T item) {
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
    push(std::move(item));
    ++unfinished_;
    finished_.clear();
    getters_.wake_first(true);
  }

  /// Removes and returns the next item without waiting, and wakes the first putter.
  /// Errors: QueueShutDown when empty after shutdown(); QueueEmpty when empty.
  T get_nowait() {
    if (empty()) {
      if (shutdown_) throw QueueShutDown();
      throw QueueEmpty();
    }
    T item = pop();
    putters_.wake_first(true);
    return item;
  }

  class PutAwaiter;
  class GetAwaiter;

  /// `co_await q.put(item)` adds `item`, waiting while the queue is full.
  ///
  /// **Cancellation**: the wait is withdrawn and CancelledError raised here; the item is not
  /// added (it is destroyed with the awaiter). A free slot that was signalled to this task is
  /// signalled to the next putter, so no wake-up is lost.
  ///
  /// **Errors**: QueueShutDown when the queue is shut down before or while this waits;
  /// CancelledError; RuntimeError outside a task when it has to wait, or when the queue is bound
  /// to another event loop.
  [[nodiscard]] PutAwaiter put(T item, detail::CallSite site = detail::CallSite::here()) {
    return PutAwaiter(*this, std::move(item), site);
  }

  /// `T item = co_await q.get()` removes and returns the next item, waiting while it is empty.
  ///
  /// **Cancellation**: the wait is withdrawn and CancelledError raised here; no item is taken, so
  /// none is lost. An item that was signalled to this task stays in the queue and the next
  /// getter is woken for it.
  ///
  /// **Errors**: QueueShutDown once the queue is shut down and empty (at once after
  /// shutdown(true)); CancelledError; RuntimeError outside a task when it has to wait, or when
  /// the queue is bound to another event loop.
  [[nodiscard]] GetAwaiter get(detail::CallSite site = detail::CallSite::here()) noexcept {
    return GetAwaiter(*this, site);
  }

  /// Marks one item taken by get() as processed, for join().
  /// Errors: ValueError when called more times than items were put.
  void task_done() {
    if (unfinished_ == 0) throw ValueError("task_done() called too many times");
    if (--unfinished_ == 0) finished_.set();
  }

  /// `co_await q.join()` waits until every item put has been marked task_done() (or dropped by
  /// shutdown(true)).
  ///
  /// **Cancellation**: the wait is withdrawn and CancelledError raised; nothing else changes.
  ///
  /// **Errors**: CancelledError; RuntimeError outside a task when it has to wait, or when the
  /// queue is bound to another event loop.
  [[nodiscard]] Event::WaitAwaiter join(detail::CallSite site = detail::CallSite::here()) noexcept {
    return finished_.wait(site);
  }

  /// The queue drained as a generator: `while (auto item = co_await items.next())` gets each
  /// item as get() does and ends (nullopt) once the queue is shut down and empty. An item given
  /// out is marked task_done() when the consumer asks for the next one, or when the generator
  /// ends or is closed or destroyed, so join() waits for the consumer to be done with it. The
  /// queue must outlive the generator. Errors, cancellation: as get().
  AsyncGenerator<T> items() { return drain(*this); }

  /// Python 3.13's Queue.shutdown: put() and put_nowait() raise QueueShutDown from now on, and
  /// every waiting putter is woken to raise it. Getters drain what is left, then raise it. With
  /// `immediate`, the items left are dropped (each counting as task_done(), which may release
  /// join()) and waiting getters raise at once.
  void shutdown(bool immediate = false) {
    shutdown_ = true;
    if (immediate) {
      while (!empty()) {
        pop();
        if (unfinished_ > 0) --unfinished_;
      }
      if (unfinished_ == 0) finished_.set();
    }
    while (getters_.wake_first(true)) {
    }
    while (putters_.wake_first(true)) {
    }
  }

 private:
  static AsyncGenerator<T> drain(Queue& q) {
    struct Done {
      Queue* q = nullptr;
      ~Done() {
        if (q != nullptr) q->task_done();
      }
    };
    for (;;) {
      std::optional<T> item;
      try {
        item.emplace(co_await q.get());
      } catch (const QueueShutDown&) {
        co_return;
      }
      Done done{&q};
      co_yield std::move(*item);
    }
  }

 protected:
  /// The storage discipline, asyncio's _put/_get/_qsize: FIFO here, overridden by the others.
  virtual void push(T&& item) { items_.push_back(std::move(item)); }
  virtual T pop() {
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }
  virtual std::size_t stored() const noexcept { return items_.size(); }

 private:
  // The waiting halves of get() and put(): loops, because a woken waiter may find that someone
  // else took the item or the slot first (get_nowait/put_nowait do not queue), and must wait again.
  Coro<T> get_slowly(const detail::CallSite* site) {
    while (empty()) {
      if (shutdown_) throw QueueShutDown();
      co_await detail::Park(
          getters_, binding_, "Queue",
          [this] {
            if (!empty()) getters_.wake_first(true);
          },
          site);
    }
    co_return get_nowait();
  }

  Coro<void> put_slowly(T& item, const detail::CallSite* site) {
    while (full()) {
      if (shutdown_) throw QueueShutDown();
      co_await detail::Park(
          putters_, binding_, "Queue",
          [this] {
            if (!full()) putters_.wake_first(true);
          },
          site);
      if (shutdown_) throw QueueShutDown();
    }
    put_nowait(std::move(item));
  }

  int maxsize_;
  bool shutdown_ = false;
  std::size_t unfinished_ = 0;  ///< items put and not yet task_done()
  std::deque<T> items_;
  detail::WaitQueue getters_;
  detail::WaitQueue putters_;
  detail::LoopBinding binding_;
  Event finished_;  ///< set while unfinished_ == 0
};

template <class T>
class Queue<T>::GetAwaiter {
 public:
  GetAwaiter(Queue& q, detail::CallSite site) noexcept : q_(q), site_(site) {}
  bool await_ready() const noexcept { return !q_.empty() || q_.shutdown_; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    slow_ = q_.get_slowly(&site_);
    return slow_.operator co_await().await_suspend(h);
  }
  T await_resume() {
    if (slow_.valid()) return slow_.operator co_await().await_resume();
    return q_.get_nowait();
  }

 private:
  Queue& q_;
  detail::CallSite site_;  ///< the caller's line, for call graphs
  Coro<T> slow_;
};

template <class T>
class Queue<T>::PutAwaiter {
 public:
  PutAwaiter(Queue& q, T&& item, detail::CallSite site)
      : q_(q), item_(std::move(item)), site_(site) {}
  bool await_ready() const noexcept { return !q_.full() || q_.shutdown_; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) {
    slow_ = q_.put_slowly(item_, &site_);
    return slow_.operator co_await().await_suspend(h);
  }
  void await_resume() {
    if (slow_.valid()) return slow_.operator co_await().await_resume();
    q_.put_nowait(std::move(item_));
  }

 private:
  Queue& q_;
  T item_;
  detail::CallSite site_;  ///< the caller's line, for call graphs
  Coro<void> slow_;
};

/// asyncio.PriorityQueue: get() returns the smallest item by `Compare` first, as heapq does (the
/// opposite of std::priority_queue). Items that compare equal come out in no defined order.
template <class T, class Compare = std::less<T>>
class PriorityQueue final : public Queue<T> {
 public:
  explicit PriorityQueue(int maxsize = 0, Compare compare = Compare())
      : Queue<T>(maxsize), compare_(std::move(compare)) {}

 protected:
  void push(T&& item) override {
    heap_.push_back(std::move(item));
    std::push_heap(heap_.begin(), heap_.end(), after());
  }
  T pop() override {
    std::pop_heap(heap_.begin(), heap_.end(), after());
    T item = std::move(heap_.back());
    heap_.pop_back();
    return item;
  }
  std::size_t stored() const noexcept override { return heap_.size(); }

 private:
  // std's heap algorithms keep the greatest on top; ordering by "comes after" keeps the smallest.
  auto after() {
    return [this](const T& a, const T& b) { return compare_(b, a); };
  }
  Compare compare_;
  std::vector<T> heap_;
};

/// asyncio.LifoQueue: get() returns the most recently put item first.
template <class T>
class LifoQueue final : public Queue<T> {
 public:
  explicit LifoQueue(int maxsize = 0) : Queue<T>(maxsize) {}

 protected:
  void push(T&& item) override { stack_.push_back(std::move(item)); }
  T pop() override {
    T item = std::move(stack_.back());
    stack_.pop_back();
    return item;
  }
  std::size_t stored() const noexcept override { return stack_.size(); }

 private:
  std::vector<T> stack_;
};

}  // namespace weave
