// ps rows and the pstree tree. A row's fields other than the name and the stack never hold a
// space; the name is quoted ('...', with \' \\ and \xNN escapes), so that a row parses however
// the task was named; the stack comes last (innermost frame first, " <- " between frames).
// How long a task has waited is not shown: the core records no wait start (stats mode's idle
// time is per task, not per wait), and recording one would cost every wait a clock read.

#include "render.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>

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

struct Index {
  std::unordered_map<std::uint64_t, const TaskRow*> by_address;
  std::unordered_map<std::uint64_t, std::int32_t> tid;
};

Index index(const Snapshot& s) {
  Index ix;
  for (const LoopSnapshot& l : s.loops) {
    for (const TaskRow& t : l.tasks) {
      ix.by_address.emplace(t.address, &t);
      ix.tid.emplace(t.address, l.tid);
    }
  }
  return ix;
}

std::string awaiter_ids(const Index& ix, const TaskRow& t) {
  std::string out;
  for (std::uint64_t a : t.awaiters) {
    auto it = ix.by_address.find(a);
    if (!out.empty()) out += ',';
    out += it != ix.by_address.end() ? std::to_string(it->second->id) : "?";
  }
  return out.empty() ? "-" : out;
}

std::vector<const TaskRow*> sorted(const std::vector<TaskRow>& tasks) {
  std::vector<const TaskRow*> out;
  out.reserve(tasks.size());
  for (const TaskRow& t : tasks) out.push_back(&t);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->id < b->id; });
  return out;
}

void pad(std::string& line, const std::string& field, std::size_t width) {
  line += field;
  if (field.size() < width) line.append(width - field.size(), ' ');
  line += "  ";
}

}  // namespace

void print_ps(Target& target, const Snapshot& s, std::FILE* out) {
  const Index ix = index(s);
  std::fprintf(out, "# pid %d: %zu loop(s)%s; how long a task has waited: not recorded\n",
               static_cast<int>(target.pid()), s.loops.size(),
               s.names_consistent ? "" : "; names possibly inconsistent");
  std::fprintf(out, "%-8s  %-8s  %-8s  %-20s  %-24s  %-32s  %-8s  %s\n", "THREAD", "TASK", "STATE",
               "NAME", "WAITS-ON", "SITE", "AWAITER", "STACK");
  std::string line;
  for (const LoopSnapshot& l : s.loops) {
    std::fprintf(out, "# loop %llu thread %d: %zu task(s), %s after %d walk(s)%s\n",
                 static_cast<unsigned long long>(l.serial), l.tid, l.tasks.size(),
                 l.consistent ? "consistent" : "possibly inconsistent", l.attempts,
                 l.truncated ? ", registry walk cut" : "");
    for (const TaskRow* t : sorted(l.tasks)) {
      line.clear();
      pad(line, std::to_string(l.tid), 8);
      pad(line, std::to_string(t->id), 8);
      pad(line, t->state, 8);
      pad(line, quoted(t->name), 20);
      pad(line, t->waits_on, 24);
      pad(line, t->site, 32);
      pad(line, awaiter_ids(ix, *t), 8);
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

class Tree {
 public:
  Tree(Target& target, const Snapshot& s, std::FILE* out) : target_(target), out_(out) {
    ix_ = index(s);
    for (const LoopSnapshot& l : s.loops) {
      for (const TaskRow& t : l.tasks) all_.push_back(&t);
    }
    std::sort(all_.begin(), all_.end(), [](auto* a, auto* b) { return a->id < b->id; });
    for (const TaskRow* t : all_) {
      for (std::uint64_t a : t->awaiters) {
        if (ix_.by_address.count(a) != 0) awaited_[a].push_back(t);
      }
    }
  }

  int run() {
    for (const TaskRow* t : all_) {
      if (!has_known_awaiter(*t)) print_task(*t, "", true);
    }
    const std::vector<std::vector<const TaskRow*>> cycles = find_cycles();
    for (const auto& cycle : cycles) {
      if (!printed_.count(cycle.front()->address)) print_task(*cycle.front(), "", true);
    }
    for (const auto& cycle : cycles) {
      std::string text = "cycle:";
      for (const TaskRow* t : cycle) text += " " + label(*t) + " \u2192";
      text += " " + label(*cycle.front());
      std::fprintf(out_, "%s\n", text.c_str());
    }
    return static_cast<int>(cycles.size());
  }

 private:
  bool has_known_awaiter(const TaskRow& t) const {
    for (std::uint64_t a : t.awaiters) {
      if (ix_.by_address.count(a) != 0 && a != t.address) return true;
    }
    return false;
  }

  static std::string label(const TaskRow& t) {
    return quoted(t.name) + " (id " + std::to_string(t.id) + ")";
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
  void print_task(const TaskRow& t, const std::string& prefix, bool last) {
    if (on_path_.count(t.address) != 0) {
      line(prefix, last, "(T) " + label(t) + " [awaits a task above it: a cycle]");
      return;
    }
    if (!printed_.insert(t.address).second) {
      line(prefix, last, "(T) " + label(t) + " [shown above]");
      return;
    }
    line(prefix, last, "(T) " + label(t));
    on_path_.insert(t.address);
    std::string p = child_prefix(prefix, last);
    // The wait site is shown on the innermost frame outside weave, as the call graph does.
    std::size_t site_at = t.frames.size();
    for (std::size_t i = 0; i < t.frames.size(); ++i) {
      if (target_.frame_name(t.frames[i]).rfind("weave::", 0) != 0) {
        site_at = i;
        break;
      }
    }
    if (site_at == t.frames.size()) site_at = 0;
    for (std::size_t k = t.frames.size(); k-- > 0;) {
      std::string text = " " + target_.frame_name(t.frames[k]);
      if (k == site_at && t.site != "-") text += " " + t.site;
      const bool last_line = k == 0;
      line(p, true, text);
      if (!last_line) p = child_prefix(p, true);
    }
    if (t.truncated) line(child_prefix(p, true), true, " (stack cut: a bad pointer)");
    auto it = awaited_.find(t.address);
    if (it != awaited_.end()) {
      const std::string cp = t.frames.empty() ? p : child_prefix(p, true);
      for (std::size_t i = 0; i < it->second.size(); ++i) {
        print_task(*it->second[i], cp, i + 1 == it->second.size());
      }
    }
    on_path_.erase(t.address);
  }

  /// Cycles of "awaits" (a task to the tasks it awaits), each once, from an iterative DFS.
  std::vector<std::vector<const TaskRow*>> find_cycles() {
    std::vector<std::vector<const TaskRow*>> cycles;
    std::unordered_map<std::uint64_t, int> color;  // 1: on the stack, 2: done
    struct Frame {
      const TaskRow* t;
      std::size_t next;
    };
    for (const TaskRow* start : all_) {
      if (color[start->address] != 0) continue;
      std::vector<Frame> stack{{start, 0}};
      color[start->address] = 1;
      while (!stack.empty()) {
        Frame& f = stack.back();
        auto it = awaited_.find(f.t->address);
        const std::size_t n = it != awaited_.end() ? it->second.size() : 0;
        if (f.next == n) {
          color[f.t->address] = 2;
          stack.pop_back();
          continue;
        }
        const TaskRow* c = it->second[f.next++];
        int& cc = color[c->address];
        if (cc == 0) {
          cc = 1;
          stack.push_back({c, 0});
        } else if (cc == 1 && cycles.size() < 100) {
          std::vector<const TaskRow*> cycle;
          std::size_t i = stack.size();
          while (i-- > 0 && stack[i].t != c) {
          }
          for (; i < stack.size(); ++i) cycle.push_back(stack[i].t);
          cycles.push_back(std::move(cycle));
        }
      }
    }
    return cycles;
  }

  Target& target_;
  std::FILE* out_;
  Index ix_;
  std::vector<const TaskRow*> all_;
  std::unordered_map<std::uint64_t, std::vector<const TaskRow*>> awaited_;  ///< by awaiter
  std::unordered_set<std::uint64_t> printed_;
  std::unordered_set<std::uint64_t> on_path_;
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
