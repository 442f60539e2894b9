// add_reader / add_writer: a persistent callback per (fd, direction), run once per iteration
// while the fd is ready, as asyncio's selector loop appends the reader's Handle each select().
// The callback node is queued at most once; removing it while queued defers the free to its run.

#include <utility>

#include "core/loop_impl.hpp"
#include "weave/errors.hpp"

namespace weave::detail {

void FdCallback::on_ready() noexcept {
  if (queued) return;
  queued = true;
  loop->schedule(this);
}

void FdCallback::run(CallbackNode* node) {
  auto* self = static_cast<FdCallback*>(node);
  self->queued = false;
  if (self->removed) {
    delete self;
    return;
  }
  ContextScope scope(&self->context);
  self->fn();
}

void LoopImpl::add_fd_callback(int fd, io::Interest interest, std::function<void()> fn) {
  if (closed) throw RuntimeError("Event loop is closed");
  auto& map = fd_callbacks_[static_cast<int>(interest)];
  if (auto it = map.find(fd); it != map.end()) {
    FdCallback* cb = it->second;  // asyncio replaces the earlier callback, and its context
    cb->fn = std::move(fn);
    ctx_release(std::exchange(cb->context, ctx_capture()));
    return;
  }
  if (backend_->watched(fd, interest)) {
    throw RuntimeError("fd " + std::to_string(fd) + " is awaited by a sock_* call");
  }
  auto* cb = new FdCallback(this, fd, interest, std::move(fn));
  try {
    backend_->watch(fd, interest, cb);
    map.emplace(fd, cb);
  } catch (...) {
    backend_->unwatch(fd, interest);
    delete cb;
    throw;
  }
}

bool LoopImpl::remove_fd_callback(int fd, io::Interest interest) noexcept {
  auto& map = fd_callbacks_[static_cast<int>(interest)];
  auto it = map.find(fd);
  if (it == map.end()) return false;
  FdCallback* cb = it->second;
  map.erase(it);
  if (backend_) backend_->unwatch(fd, interest);
  if (cb->queued) {
    cb->removed = true;
  } else {
    delete cb;
  }
  return true;
}

void LoopImpl::drop_fd_callbacks() noexcept {
  for (auto& map : fd_callbacks_) {
    for (auto& [fd, cb] : map) {
      if (backend_) backend_->unwatch(fd, cb->interest);
      if (cb->queued) {
        cb->removed = true;  // freed by its run, or with the ready queue's nodes below
        orphaned_.push_back(cb);
      } else {
        delete cb;
      }
    }
    map.clear();
  }
}

}  // namespace weave::detail

namespace weave {

void EventLoop::add_reader(int fd, std::function<void()> fn) {
  impl_->add_fd_callback(fd, io::Interest::Read, std::move(fn));
}
bool EventLoop::remove_reader(int fd) {
  return impl_->remove_fd_callback(fd, io::Interest::Read);
}
void EventLoop::add_writer(int fd, std::function<void()> fn) {
  impl_->add_fd_callback(fd, io::Interest::Write, std::move(fn));
}
bool EventLoop::remove_writer(int fd) {
  return impl_->remove_fd_callback(fd, io::Interest::Write);
}

}  // namespace weave
