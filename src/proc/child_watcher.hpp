#pragma once
// The loop's registry of running children; see child_state.hpp for the rules.

#include <memory>

#include "proc/child_state.hpp"

namespace weave::detail {

/// Watches `s->pidfd` on `loop` until the child is reaped. Errors: std::system_error from the
/// backend.
void watch_child(LoopImpl& loop, const std::shared_ptr<ChildState>& s);
/// pidfd_send_signal, unless the child was reaped or already exited; 0 or an errno.
int send_to_child(ChildState& s, int sig) noexcept;
/// Drops `s.owner_ref` (and the watcher's reference to an exited child, kept for it).
void release_owner(ChildState& s) noexcept;
/// The last Process handle is gone: a running child gets SIGKILL and is reaped by the loop (or
/// here, at once, when the loop is closed).
void release_child(std::shared_ptr<ChildState> s) noexcept;

}  // namespace weave::detail
