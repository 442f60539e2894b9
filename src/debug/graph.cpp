// Call graphs (asyncio.graph): read from state the core keeps anyway, so that nothing is
// recorded for them beyond a few pointer stores on paths that exist.
//
// - A task's frames: `leaf` is the innermost coroutine (where it is suspended, or, for the task
//   running now, the frame running now: a nested Coro's start and return move it). Each nested
//   frame's promise holds its awaiter in `link_`; the chain ends at the task's root frame. A
//   frame's first word is its resume function (g++ and clang), symbolized in symbols.cpp.
// - Locations: `wait_site` is the weave call the task is suspended in (stale after a yield, whose
//   wait kind is None); it is shown on the innermost frame outside namespace weave (the caller
//   of sleep, not sleep's own frame).
// - Awaited by: the done-waiters of a pending future are tasks awaiting it directly and the
//   completion slots of gather/wait/as_completed (MultiWait::waiter_of); the done callback that
//   a TaskGroup or shield adds names the parent task or outer future (UserCallbackBase::awaiter).
//   A done future has no awaiter.
//   A cycle (a task awaiting what awaits it) is cut where it closes.
//
// An AsyncGenerator's promise keeps its consumer at `link_`'s offset for every Send (generator.hpp
// checks it), so the walk goes through generator frames as through nested Coros.

#include "weave/graph.hpp"

#include <algorithm>
#include <cstdio>

#include "core/loop_impl.hpp"
#include "debug/symbols.hpp"
#include "weave/detail/multi_wait.hpp"

namespace weave {

namespace detail {

namespace {

constexpr std::size_t kMaxFrames = 4096;  ///< a chain longer than this is cut (a bad link)

void* frame_link(void* frame) noexcept {
  return std::coroutine_handle<Promise<void>>::from_address(frame).promise().link_;
}

std::string frame_name(const void* frame) {
  const void* resume = *static_cast<const void* const*>(frame);
  return dbg::coroutine_name(dbg::symbol_name(resume));
}

bool inside_weave(const std::string& name) {
  return name.rfind("weave::", 0) == 0;
}

/// Puts `site` on the innermost frame outside weave (the first one when all are inside).
void place_site(std::vector<FrameCallGraphEntry>& stack, const CallSite* site) {
  if (site == nullptr || dbg::site_file(*site) == nullptr || stack.empty()) return;
  auto it = std::find_if(stack.begin(), stack.end(),
                         [](const FrameCallGraphEntry& e) { return !inside_weave(e.name); });
  FrameCallGraphEntry& e = it != stack.end() ? *it : stack.front();
  e.file = dbg::site_file(*site);
  e.line = dbg::site_line(*site);
}

std::vector<FrameCallGraphEntry> task_frames(TaskCore* t, const CallSite* caller) {
  std::vector<FrameCallGraphEntry> stack;
  if (t->done() || !t->leaf) return stack;
  void* const root = task_root(t).address();
  void* f = t->leaf.address();
  while (f != nullptr && stack.size() < kMaxFrames) {
    stack.push_back({frame_name(f), nullptr, 0, f});
    if (f == root) break;
    f = frame_link(f);
  }
  // The running task is not suspended: its wait site is stale, and the caller's line stands
  // in (asyncio shows the line that called print_call_graph).
  const bool waiting = static_cast<WaitKind>(t->wait_kind) != WaitKind::None;
  place_site(stack, t == current_task_core() ? caller : waiting ? t->wait_site : nullptr);
  return stack;
}

void add_unique(std::vector<FutureCore*>& out, FutureCore* f) {
  if (f != nullptr && std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
}

std::vector<FutureCore*> awaiters(FutureCore* f) {
  std::vector<FutureCore*> out;
  if (f->done()) return out;
  f->done_waiters.for_each([&](Node* n) {
    if (n->kind == NodeKind::Task) {
      add_unique(out, static_cast<TaskCore*>(n));
    } else if (TaskCore* t = MultiWait::waiter_of(n)) {
      add_unique(out, t);
    } else if ((n->flags & UserCallbackBase::kUserCallbackFlag) != 0) {
      add_unique(out, static_cast<UserCallbackBase*>(n)->awaiter);
    }
  });
  return out;
}

FutureCallGraph build(FutureCore* f, const CallSite* caller, std::vector<FutureCore*>& path) {
  FutureCallGraph g;
  g.future = f;
  if (f->is_task()) {
    auto* t = static_cast<TaskCore*>(f);
    g.task = TaskRef(t);
    g.call_stack = task_frames(t, caller);
  }
  path.push_back(f);
  for (FutureCore* a : awaiters(f)) {
    if (std::find(path.begin(), path.end(), a) != path.end()) continue;  // a cycle closes here
    g.awaited_by.push_back(build(a, nullptr, path));
  }
  path.pop_back();
  return g;
}

void render(const FutureCallGraph& g, std::string& out, int level) {
  const std::string indent(static_cast<std::size_t>(level) * 4, ' ');
  auto line = [&](const std::string& text) {
    if (!out.empty()) out += '\n';
    out += indent;
    out += text;
  };
  char id[32];
  std::snprintf(id, sizeof id, "%#zx", reinterpret_cast<std::size_t>(g.future));
  if (g.task) {
    line("* Task(name='" + g.task->get_name() + "', id=" + id + ")");
  } else {
    line(std::string("* Future(id=") + id + ")");
  }
  if (!g.call_stack.empty()) {
    line("  + Call stack:");
    for (const FrameCallGraphEntry& e : g.call_stack) {
      if (e.file != nullptr) {
        line("  |   File '" + std::string(e.file) + "', line " + std::to_string(e.line) +
             ", in async " + e.name);
      } else {
        line("  |   in async " + e.name);
      }
    }
  }
  if (!g.awaited_by.empty()) {
    line("  + Awaited by:");
    for (const FutureCallGraph& a : g.awaited_by) render(a, out, level + 1);
  }
}

std::string task_repr(const TaskRef& t) {
  const char* state = !t.done() ? "pending" : t.cancelled() ? "cancelled" : "finished";
  return std::string("<Task ") + state + " name='" + t.get_name() + "'>";
}

}  // namespace

FutureCallGraph capture_future_graph(FutureCore* f) {
  std::vector<FutureCore*> path;
  return build(f, nullptr, path);
}

}  // namespace detail

std::optional<FutureCallGraph> capture_call_graph(detail::CallSite site) {
  (void)get_running_loop();  // asyncio: RuntimeError outside a running loop
  detail::TaskCore* t = detail::current_task_core();
  if (t == nullptr) return std::nullopt;
  std::vector<detail::FutureCore*> path;
  return detail::build(t, &site, path);
}

FutureCallGraph capture_call_graph(const TaskRef& task, detail::CallSite site) {
  std::vector<detail::FutureCore*> path;
  return detail::build(task.core(), &site, path);
}

std::string format_call_graph(const FutureCallGraph& graph) {
  std::string out;
  detail::render(graph, out, 0);
  return out;
}

std::string format_call_graph(detail::CallSite site) {
  std::optional<FutureCallGraph> g = capture_call_graph(site);
  return g ? format_call_graph(*g) : std::string();
}

std::string format_call_graph(const TaskRef& task, detail::CallSite site) {
  return format_call_graph(capture_call_graph(task, site));
}

void print_call_graph(std::FILE* file, detail::CallSite site) {
  std::optional<FutureCallGraph> g = capture_call_graph(site);
  if (!g) return;
  std::string text = format_call_graph(*g);
  text += '\n';
  std::fputs(text.c_str(), file);
}

void print_call_graph(const TaskRef& task, std::FILE* file, detail::CallSite site) {
  std::string text = format_call_graph(task, site);
  text += '\n';
  std::fputs(text.c_str(), file);
}

std::vector<FrameCallGraphEntry> TaskRef::get_stack() const {
  std::vector<FrameCallGraphEntry> stack =
      detail::task_frames(core_, nullptr);  // the running task: no caller line
  std::reverse(stack.begin(), stack.end());
  return stack;
}

void TaskRef::print_stack(std::FILE* file) const {
  std::vector<FrameCallGraphEntry> stack = get_stack();
  std::string text;
  if (stack.empty()) {
    text = "No stack for " + detail::task_repr(*this) + "\n";
  } else {
    text = "Stack for " + detail::task_repr(*this) + " (most recent call last):\n";
    for (const FrameCallGraphEntry& e : stack) {
      if (e.file != nullptr) {
        text += "  File \"" + std::string(e.file) + "\", line " + std::to_string(e.line) + ", in " +
                e.name + "\n";
      } else {
        text += "  in " + e.name + "\n";
      }
    }
  }
  std::fputs(text.c_str(), file);
}

}  // namespace weave
