// ps rows and the pstree tree. A row's fields other than the name and the stack never hold a
// space; the name is quoted ('...', with \' \\ and \xNN escapes), so that a row parses however
// the task was named; the stack comes last (innermost frame first, " <- " between frames).
// How long a task has waited is not shown: the core records no wait start (stats mode's idle
// time is per task, not per wait), and recording one would cost every wait a clock read.

#include "render.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

namespace weave_tool {

namespace {

std::string quoted(const std::string& name) {
  std::string out = "'";
  for (unsigned char c : name) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

/// Tasks by address, over every loop.
using Index = std::unordered_map<std::uint64_t, const TaskRow*>;

Index index(const Snapshot& s) {
  Index ix;
  std::size_t n = 0;
  for (const LoopSnapshot& l : s.loops) n += l.tasks.size();
  ix.reserve(n);
  for (const LoopSnapshot& l : s.loops) {
    for (const TaskRow& t : l.tasks) ix.emplace(t.address, &t);
  }
  return ix;
}

std::string awaiter_ids(const Index& ix, const TaskRow& t) {
  std::string out;
  for (std::uint64_t a : t.awaiters) {
    auto it = ix.find(a);
    if (!out.empty()) out += ',';
    out += it != ix.end() ? std::to_string(it->second->id) : "?";
  }
  return out.empty() ? "-" : out;
}

/// Orders by id; the registry lists the newest first, so reversed it is usually sorted already.
void by_id(std::vector<const TaskRow*>& v) {
  auto less = [](const TaskRow* a, const TaskRow* b) { return a->id < b->id; };
  std::reverse(v.begin(), v.end());
  if (!std::is_sorted(v.begin(), v.end(), less)) std::sort(v.begin(), v.end(), less);
}

std::vector<const TaskRow*> sorted(const std::vector<TaskRow>& tasks) {
  std::vector<const TaskRow*> out;
  out.reserve(tasks.size());
  for (const TaskRow& t : tasks) out.push_back(&t);
  by_id(out);
  return out;
}

void pad(std::string& line, const std::string& field, std::size_t width) {
  line += field;
  if (field.size() < width) line.append(width - field.size(), ' ');
  line += "  ";
}

}  // namespace

namespace {

/// Column widths: the widest field of each column (capped, so that one long file name does not
/// push every row), at least the header's.
struct Widths {
  std::size_t tid = 6, id = 4, state = 7, name = 6, waits = 8, waited = 6, site = 4, awaiter = 7;
};

Widths widths(const Index& ix, const Snapshot& s) {
  Widths w;
  auto fit = [](std::size_t& width, std::size_t size) {
    width = std::max(width, std::min<std::size_t>(size, 64));
  };
  for (const LoopSnapshot& l : s.loops) {
    fit(w.tid, std::to_string(l.tid).size());
    for (const TaskRow& t : l.tasks) {
      fit(w.id, std::to_string(t.id).size());
      fit(w.state, std::strlen(t.state));
      fit(w.name, quoted(t.name).size());
      fit(w.waits, t.waits_on.size());
      fit(w.waited, t.waited.size());
      fit(w.site, t.site.size());
      fit(w.awaiter, awaiter_ids(ix, t).size());
    }
  }
  return w;
}

}  // namespace

namespace {

// Statistics columns, when a loop has statistics on: fixed widths, "-" where a task has no
// record (its loop has them off, or it began before they were switched on).
constexpr const char* kStatsHeader = "BUSY-S     SCHED-S    IDLE-S     STEPS      WAKEUPS    ";

bool any_stats(const Snapshot& s) {
  for (const LoopSnapshot& l : s.loops) {
    if (l.stats) return true;
  }
  return false;
}

std::string task_stats(const TaskRow& t) {
  char buf[96];
  if (!t.has_stats) {
    std::snprintf(buf, sizeof buf, "%-11s%-11s%-11s%-11s%-11s", "-", "-", "-", "-", "-");
  } else {
    std::snprintf(buf, sizeof buf, "%-11.6f%-11.6f%-11.3f%-11llu%-11llu", t.busy_s, t.scheduled_s,
                  t.idle_s, static_cast<unsigned long long>(t.steps),
                  static_cast<unsigned long long>(t.wakeups));
  }
  return buf;
}

/// The loop header's statistics, or nothing when the loop has them off.
std::string loop_stats(const LoopSnapshot& l) {
  if (!l.stats) return {};
  char buf[160];
  std::snprintf(buf, sizeof buf, "; iterations %llu, ready %llu, io %llu, lag %.3f ms",
                static_cast<unsigned long long>(l.iterations),
                static_cast<unsigned long long>(l.ready_depth),
                static_cast<unsigned long long>(l.io_watches), l.lag_s * 1e3);
  return buf;
}

}  // namespace

void print_ps(Target& target, const Snapshot& s, std::FILE* out) {
  const Index ix = index(s);
  const Widths w = widths(ix, s);
  std::fprintf(out, "# pid %d: %zu loop(s)%s\n", static_cast<int>(target.pid()), s.loops.size(),
               s.names_consistent ? "" : "; names possibly inconsistent");
  const bool stats = any_stats(s);
  std::string line;
  pad(line, "THREAD", w.tid);
  pad(line, "TASK", w.id);
  pad(line, "STATE", w.state);
  pad(line, "NAME", w.name);
  pad(line, "WAITS-ON", w.waits);
  pad(line, "WAITED", w.waited);
  pad(line, "SITE", w.site);
  pad(line, "AWAITER", w.awaiter);
  if (stats) line += kStatsHeader;
  line += "STACK\n";
  std::fwrite(line.data(), 1, line.size(), out);
  for (const LoopSnapshot& l : s.loops) {
    std::fprintf(out, "# loop %llu thread %d: %zu task(s), %s after %d walk(s)%s%s\n",
                 static_cast<unsigned long long>(l.serial), l.tid, l.tasks.size(),
                 l.consistent ? "consistent" : "possibly inconsistent", l.attempts,
                 l.truncated ? ", registry walk cut" : "", loop_stats(l).c_str());
    for (const TaskRow* t : sorted(l.tasks)) {
      line.clear();
      pad(line, std::to_string(l.tid), w.tid);
      pad(line, std::to_string(t->id), w.id);
      pad(line, t->state, w.state);
      pad(line, quoted(t->name), w.name);
      pad(line, t->waits_on, w.waits);
      pad(line, t->waited, w.waited);
      pad(line, t->site, w.site);
      pad(line, awaiter_ids(ix, *t), w.awaiter);
      if (stats) line += task_stats(*t);
      for (std::size_t i = 0; i < t->frames.size(); ++i) {
        if (i != 0) line += " <- ";
        line += target.frame_name(t->frames[i]);
      }
      if (t->truncated) line += t->frames.empty() ? "(cut)" : " <- (cut)";
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), out);
    }
  }
}

namespace {

/// The await tree over task numbers (positions in `all_`, ordered by id), so that a million
/// tasks cost vectors, not hash sets.
class Tree {
 public:
  Tree(Target& target, const Snapshot& s, std::FILE* out) : target_(target), out_(out) {
    for (const LoopSnapshot& l : s.loops) {
      for (const TaskRow& t : l.tasks) all_.push_back(&t);
    }
    by_id(all_);
    std::unordered_map<std::uint64_t, std::uint32_t> number;
    number.reserve(all_.size());
    for (std::uint32_t i = 0; i < all_.size(); ++i) number.emplace(all_[i]->address, i);
    awaited_.resize(all_.size());
    has_awaiter_.assign(all_.size(), 0);
    for (std::uint32_t i = 0; i < all_.size(); ++i) {
      for (std::uint64_t a : all_[i]->awaiters) {
        auto it = number.find(a);
        if (it == number.end()) continue;
        awaited_[it->second].push_back(i);
        if (it->second != i) has_awaiter_[i] = 1;
      }
    }
    state_.assign(all_.size(), 0);
  }

  int run() {
    for (std::uint32_t i = 0; i < all_.size(); ++i) {
      if (!has_awaiter_[i]) print_task(i, "", true);
    }
    const std::vector<std::vector<std::uint32_t>> cycles = find_cycles();
    for (const auto& cycle : cycles) {
      if ((state_[cycle.front()] & kPrinted) == 0) print_task(cycle.front(), "", true);
    }
    for (const auto& cycle : cycles) {
      std::string text = "cycle:";
      for (std::uint32_t t : cycle) text += " " + label(t) + " \u2192";
      text += " " + label(cycle.front());
      std::fprintf(out_, "%s\n", text.c_str());
    }
    return static_cast<int>(cycles.size());
  }

 private:
  static constexpr std::uint8_t kPrinted = 1, kOnPath = 2, kGrey = 4, kBlack = 8;

  std::string label(std::uint32_t t) const {
    return quoted(all_[t]->name) + " (id " + std::to_string(all_[t]->id) + ")";
  }

  void line(const std::string& prefix, bool last, const std::string& text) {
    buf_ = prefix;
    buf_ += last ? "\u2514\u2500\u2500 " : "\u251c\u2500\u2500 ";
    buf_ += text;
    buf_ += '\n';
    std::fwrite(buf_.data(), 1, buf_.size(), out_);
  }

  static std::string child_prefix(const std::string& prefix, bool last) {
    return prefix + (last ? "    " : "\u2502   ");
  }

  /// A task, its frames outermost first (each under the one that awaits it), and under the
  /// innermost one the tasks it awaits. A task on the path being printed closes a cycle; one
  /// printed elsewhere already is named, not repeated.
  void print_task(std::uint32_t i, const std::string& prefix, bool last) {
    const TaskRow& t = *all_[i];
    if ((state_[i] & kOnPath) != 0) {
      line(prefix, last, "(T) " + label(i) + " [awaits a task above it: a cycle]");
      return;
    }
    if ((state_[i] & kPrinted) != 0) {
      line(prefix, last, "(T) " + label(i) + " [shown above]");
      return;
    }
    state_[i] |= kPrinted | kOnPath;
    line(prefix, last, "(T) " + label(i));
    std::string p = child_prefix(prefix, last);
    // The wait site is shown on the innermost frame outside weave, as the call graph does.
    std::size_t site_at = t.frames.size();
    for (std::size_t k = 0; k < t.frames.size(); ++k) {
      if (target_.frame_name(t.frames[k]).rfind("weave::", 0) != 0) {
        site_at = k;
        break;
      }
    }
    if (site_at == t.frames.size()) site_at = 0;
    for (std::size_t k = t.frames.size(); k-- > 0;) {
      std::string text = " " + target_.frame_name(t.frames[k]);
      if (k == site_at && t.site != "-") text += " " + t.site;
      line(p, true, text);
      if (k != 0) p = child_prefix(p, true);
    }
    if (t.truncated) line(child_prefix(p, true), true, " (stack cut: a bad pointer)");
    const std::vector<std::uint32_t>& children = awaited_[i];
    const std::string cp = t.frames.empty() ? p : child_prefix(p, true);
    for (std::size_t k = 0; k < children.size(); ++k) {
      print_task(children[k], cp, k + 1 == children.size());
    }
    state_[i] &= static_cast<std::uint8_t>(~kOnPath);
  }

  /// Cycles of "awaits" (a task to the tasks it awaits), each once, from an iterative DFS.
  std::vector<std::vector<std::uint32_t>> find_cycles() {
    std::vector<std::vector<std::uint32_t>> cycles;
    struct Frame {
      std::uint32_t t;
      std::size_t next;
    };
    std::vector<Frame> stack;
    for (std::uint32_t start = 0; start < all_.size(); ++start) {
      if ((state_[start] & (kGrey | kBlack)) != 0) continue;
      stack.push_back({start, 0});
      state_[start] |= kGrey;
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.next == awaited_[f.t].size()) {
          state_[f.t] = static_cast<std::uint8_t>((state_[f.t] & ~kGrey) | kBlack);
          stack.pop_back();
          continue;
        }
        const std::uint32_t c = awaited_[f.t][f.next++];
        if ((state_[c] & (kGrey | kBlack)) == 0) {
          state_[c] |= kGrey;
          stack.push_back({c, 0});
        } else if ((state_[c] & kGrey) != 0 && cycles.size() < 100) {
          std::size_t k = stack.size();
          while (k-- > 0 && stack[k].t != c) {
          }
          std::vector<std::uint32_t> cycle;
          for (; k < stack.size(); ++k) cycle.push_back(stack[k].t);
          cycles.push_back(std::move(cycle));
        }
      }
    }
    return cycles;
  }

  Target& target_;
  std::FILE* out_;
  std::vector<const TaskRow*> all_;
  std::vector<std::vector<std::uint32_t>> awaited_;  ///< the tasks each task awaits
  std::vector<std::uint8_t> has_awaiter_;
  std::vector<std::uint8_t> state_;  ///< kPrinted, kOnPath, kGrey, kBlack
  std::string buf_;
};

}  // namespace

int print_pstree(Target& target, const Snapshot& s, std::FILE* out) {
  for (const LoopSnapshot& l : s.loops) {
    if (!l.consistent) {
      std::fprintf(out, "# loop %llu thread %d: possibly inconsistent after %d walk(s)\n",
                   static_cast<unsigned long long>(l.serial), l.tid, l.attempts);
    }
  }
  return Tree(target, s, out).run();
}

}  // namespace weave_tool
