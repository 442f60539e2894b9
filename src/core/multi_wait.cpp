#include "weave/detail/multi_wait.hpp"

#include "weave/future.hpp"

namespace weave::detail {

MultiWait::MultiWait(std::vector<FutureCore*> children)
    : children_(std::move(children)), remaining_(children_.size()) {
  for (FutureCore* c : children_) ++c->refs;
}

MultiWait::~MultiWait() {
  for (FutureCore* c : children_) release_any(c);
}

void MultiWait::arm(bool done_now) {
  slots_ = std::make_unique<Slot[]>(children_.size());
  for (std::size_t i = 0; i < children_.size(); ++i) {
    Slot& s = slots_[i];
    s.owner = this;
    s.index = i;
    if (done_now && children_[i]->done()) {
      --remaining_;
      on_done(i);
      continue;
    }
    ++outstanding_;
    if (children_[i]->done()) {
      schedule(children_[i]->loop(), &s);
    } else {
      children_[i]->done_waiters.push_back(&s);
    }
  }
}

void MultiWait::suspend(TaskCore* task, std::coroutine_handle<> h, const CallSite* site) {
  task_ = task;
  begin_wait(task, h, WaitKind::Custom, this, site);
}

void MultiWait::finish() noexcept {
  finished_ = true;
  if (task_ != nullptr) {
    TaskCore* t = task_;
    task_ = nullptr;
    if (static_cast<WaitKind>(t->wait_kind) == WaitKind::Custom && t->waiting_on == this) wake(t);
  }
}

void MultiWait::abandon(bool retrieved) noexcept {
  abandoned_ = true;
  task_ = nullptr;
  for (std::size_t i = 0; slots_ && i < children_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.linked()) {
      children_[i]->done_waiters.remove(&s);
      --outstanding_;
    }
  }
  if (retrieved) {
    for (FutureCore* c : children_) c->flags |= fflag::kRetrieved;
  }
  if (outstanding_ == 0) delete this;
}

TaskCore* MultiWait::waiter_of(const Node* n) noexcept {
  if (n->kind != NodeKind::Callback) return nullptr;
  if (static_cast<const CallbackNode*>(n)->fn != &Slot::run) return nullptr;
  return static_cast<const Slot*>(n)->owner->task_;
}

void MultiWait::Slot::run(CallbackNode* n) {
  auto* slot = static_cast<Slot*>(n);
  MultiWait* self = slot->owner;
  --self->outstanding_;
  if (self->abandoned_) {
    if (self->outstanding_ == 0) delete self;
    return;
  }
  --self->remaining_;
  self->on_done(slot->index);
}

}  // namespace weave::detail
