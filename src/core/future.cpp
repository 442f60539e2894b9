// The non-template half of Future<T> and Task<T>: completion, cancellation, done-waiters, the
// "exception was never retrieved" report.

#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/loop_impl.hpp"
#include "debug/debug_mode.hpp"
#include "debug/debug_offsets.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"

namespace weave::detail {

namespace {
/// The extras of every future that has some, by address. Futures and task handles may be
/// released on any thread, so the table is shared and locked; only futures flagged kHasExtras
/// (named tasks, cancel messages) ever look here. Never destroyed, so that a future released
/// during static destruction still finds it.
struct ExtrasTable {
  std::mutex mutex;
  std::unordered_map<const FutureCore*, FutureExtras> map;
};
ExtrasTable& extras_table() {
  static auto* table = [] {
    auto* t = new ExtrasTable;
    dbg::g_extras_map = &t->map;  // for outside readers (debug_offsets.hpp)
    return t;
  }();
  return *table;
}
}  // namespace

FutureExtras& FutureCore::extras() {
  ExtrasTable& t = extras_table();
  std::lock_guard lock(t.mutex);
  flags |= fflag::kHasExtras;
  const std::uint64_t g = dbg::g_extras_generation.begin();
  FutureExtras& e = t.map[this];
  dbg::g_extras_generation.end(g);
  return e;  // node-based: the reference stays valid until drop_extras
}

const FutureExtras* FutureCore::find_extras() const noexcept {
  if ((flags & fflag::kHasExtras) == 0) return nullptr;
  ExtrasTable& t = extras_table();
  std::lock_guard lock(t.mutex);
  auto it = t.map.find(this);
  return it != t.map.end() ? &it->second : nullptr;
}

void FutureCore::drop_extras() noexcept {
  ExtrasTable& t = extras_table();
  std::lock_guard lock(t.mutex);
  const std::uint64_t g = dbg::g_extras_generation.begin();
  t.map.erase(this);
  dbg::g_extras_generation.end(g);
}

void schedule(EventLoop* loop, Node* n) noexcept {
  if (loop != nullptr) loop->impl().schedule(n);
}

namespace {
bool is_user_callback(const Node* n) noexcept {
  return n->kind == NodeKind::Callback && (n->flags & UserCallbackBase::kUserCallbackFlag) != 0;
}

std::string cancel_message(const FutureCore* f) {
  return (f->flags & fflag::kCancelMsg) != 0 ? f->find_extras()->cancel_message : std::string();
}
}  // namespace

void future_complete(FutureCore* f, FutureState s) noexcept {
  f->state = static_cast<std::uint8_t>(s);
  EventLoop* loop = f->loop();
  while (Node* n = f->done_waiters.pop_front()) {
    if (is_user_callback(n)) ++f->refs;  // held until the callback ran
    if (n->kind == NodeKind::Task) {
      auto* t = static_cast<TaskCore*>(n);
      t->wait_kind = static_cast<std::uint8_t>(WaitKind::None);
      t->waiting_on = nullptr;
    }
    schedule(loop, n);
  }
}

std::exception_ptr make_cancelled(FutureCore* f) {
  return std::make_exception_ptr(CancelledError(cancel_message(f)));
}

bool future_cancel(FutureCore* f, std::string_view msg) {
  f->flags |= fflag::kRetrieved;
  if (f->done()) return false;
  if (!msg.empty()) {
    f->extras().cancel_message = std::string(msg);
    f->flags |= fflag::kCancelMsg;
  }
  f->exception = make_cancelled(f);
  future_complete(f, FutureState::Cancelled);
  return true;
}

bool cancel_any(FutureCore* f, std::string_view msg) {
  return f->is_task() ? task_cancel(static_cast<TaskCore*>(f), msg) : future_cancel(f, msg);
}

void rethrow(FutureCore* f) {
  f->flags |= fflag::kRetrieved;
  if (!f->exception) f->exception = make_cancelled(f);
  std::rethrow_exception(f->exception);
}

void require_pending(FutureCore* f) {
  if (f->done()) throw InvalidStateError("invalid state: the future is already done");
}

void require_done(FutureCore* f) {
  if (!f->done()) throw InvalidStateError("Result is not set.");
}

void report_unretrieved(FutureCore* f, const char* what) noexcept {
  if (!f->exception || f->fstate() != FutureState::Finished) return;
  if ((f->flags & fflag::kRetrieved) != 0) return;
  f->flags |= fflag::kRetrieved;
  std::string message = std::string(what) + " exception was never retrieved";
  if (f->is_task()) {
    const FutureExtras* extras = f->find_extras();
    const std::string name = extras != nullptr ? extras->name : std::string();
    message += " (" + (name.empty() ? "Task-" + std::to_string(f->id) : name) + ")";
    message += dbg::created_at(f);
  }
  EventLoop* loop = f->loop();
  if (loop != nullptr && loop_alive(loop)) {
    std::optional<TaskRef> task;
    if (f->is_task()) task = TaskRef::from_core(f);  // destroy_task_frame holds the frame
    loop->call_exception_handler({message, f->exception, std::move(task)});
  } else {
    std::fprintf(stderr, "weave: %s\n", message.c_str());
  }
}

void add_done_waiter(FutureCore* f, CallbackNode* node) {
  if (f->done()) {
    // A done future's handle may outlive its loop: call_soon on a closed or destroyed loop
    // raises, as asyncio's does, instead of queueing where nothing will ever run (or free) it.
    EventLoop* loop = f->loop();
    if (loop == nullptr || !loop_alive(loop) || loop->is_closed()) {
      auto* cb = static_cast<UserCallbackBase*>(node);
      cb->drop(cb);
      throw RuntimeError("Event loop is closed");
    }
    ++f->refs;
    schedule(loop, node);
  } else {
    f->done_waiters.push_back(node);
  }
}

std::size_t remove_done_waiter(FutureCore* f, CallbackId id) noexcept {
  auto* target = reinterpret_cast<Node*>(id);
  Node* found = nullptr;
  f->done_waiters.for_each([&](Node* n) {
    if (n == target && is_user_callback(n)) found = n;
  });
  if (found == nullptr) return 0;
  f->done_waiters.remove(found);
  auto* cb = static_cast<UserCallbackBase*>(found);
  cb->drop(cb);
  return 1;
}

/// Callbacks of a future that will never complete are freed with it.
static void drop_pending_callbacks(FutureCore* f) noexcept {
  std::vector<Node*> doomed;
  f->done_waiters.for_each([&](Node* n) {
    if (is_user_callback(n)) doomed.push_back(n);
  });
  for (Node* n : doomed) {
    f->done_waiters.remove(n);
    auto* cb = static_cast<UserCallbackBase*>(n);
    cb->drop(cb);
  }
}

void release_any(FutureCore* f) noexcept {
  if (f->is_task()) {
    task_release(static_cast<TaskCore*>(f));
    return;
  }
  if (--f->refs != 0) return;
  report_unretrieved(f, "Future");
  drop_pending_callbacks(f);
  auto* box = static_cast<FutureBox*>(f);
  box->destroy_fn(box);
}

void destroy_task_frame(TaskCore* t) noexcept {
  // The report hands the task to the exception handler (as asyncio's context['future']): a
  // reference held meanwhile keeps the frame, and a handler that keeps a handle defers the
  // destruction to that handle's release (reported once: the exception is now retrieved).
  ++t->refs;
  report_unretrieved(t, "Task");
  if (--t->refs != 0) return;
  drop_pending_callbacks(t);
  destroy_frames(t);
}

}  // namespace weave::detail
