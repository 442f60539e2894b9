#pragma once
// FIFO of queued jobs for the executors: a ring buffer that doubles when full and never
// shrinks, so that once a pool has seen its peak backlog, queueing allocates nothing.
// Not thread-safe: the owning executor guards it with its own mutex.

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "weave/detail/concurrent_job.hpp"

namespace weave::concurrent::detail {

class JobQueue {
 public:
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  void push(std::shared_ptr<Job> job) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(job);
    ++size_;
  }

  /// Precondition: !empty().
  std::shared_ptr<Job> pop() noexcept {
    std::shared_ptr<Job> job = std::move(slots_[head_]);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return job;
  }

 private:
  void grow() {
    std::vector<std::shared_ptr<Job>> bigger(slots_.empty() ? 64 : slots_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i) {
      bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    }
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<std::shared_ptr<Job>> slots_;  // capacity is 0 or a power of two
  std::size_t head_ = 0;                     // index of the oldest job
  std::size_t size_ = 0;
};

}  // namespace weave::concurrent::detail
