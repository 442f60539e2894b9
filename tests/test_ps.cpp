// `weave ps` and `weave pstree` against live child processes (tests/support/ps_target.cpp): the
// test starts the target, waits for its "ready" line, runs the built `weave` program on its pid
// and checks the rows. Every child is killed by its pid; every wait has a deadline.
//
// Permission: the `weave` process is the target's sibling, not its ancestor; under YAMA's
// ptrace_scope 1 the target allows it with prctl(PR_SET_PTRACER_ANY) (in the helper program
// only). At scope 2 or 3 only root may read, and the tests that need to are skipped.

#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Outcome {
  int status = -1;  ///< exit status, or -1 when killed at the deadline
  std::string out;
  std::string err;
};

/// Starts `args`; with `uid` set, as that user (and group), without supplementary groups.
pid_t spawn(const std::vector<std::string>& args, int out_fd, int err_fd, uid_t uid = 0) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (uid != 0 && (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0)) {
      ::_exit(126);
    }
    ::dup2(out_fd, 1);
    if (err_fd >= 0) ::dup2(err_fd, 2);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

/// Runs a program to its end, or kills it at the deadline.
Outcome run(const std::vector<std::string>& args,
            std::chrono::seconds limit = std::chrono::seconds(30), uid_t uid = 0) {
  int out[2], err[2];
  if (::pipe(out) != 0 || ::pipe(err) != 0) return {};
  const pid_t pid = spawn(args, out[1], err[1], uid);
  ::close(out[1]);
  ::close(err[1]);
  Outcome r;
  const auto deadline = Clock::now() + limit;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  bool late = false;
  while (open > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      late = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[65536];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  if (late) ::kill(pid, SIGKILL);
  for (pollfd& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = !late && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// A child process, killed with the test.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int p[2];
    if (::pipe(p) != 0) return;
    pid_ = spawn(args, p[1], -1);
    ::close(p[1]);
    out_ = p[0];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  pid_t pid() const { return pid_; }

  /// Waits for the target's "ready" line.
  bool ready(std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto deadline = Clock::now() + limit;
    std::string text;
    while (text.find('\n') == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd f{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&f, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[256];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return false;
      text.append(buf, static_cast<std::size_t>(n));
    }
    return text.rfind("ready ", 0) == 0;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

struct Row {
  long tid = 0;
  long id = 0;
  std::string state, name, waits_on, waited, site, awaiter, stack;
};

/// One ps row: tid, id, state, 'name', waits-on, waited, site, awaiter, then the stack. False
/// when it does not parse.
bool parse_row(const std::string& line, Row& row) {
  std::size_t at = 0;
  auto token = [&](std::string& out) {
    while (at < line.size() && line[at] == ' ') ++at;
    const std::size_t begin = at;
    while (at < line.size() && line[at] != ' ') ++at;
    out = line.substr(begin, at - begin);
    return !out.empty();
  };
  std::string tid, id;
  if (!token(tid) || !token(id) || !token(row.state)) return false;
  try {
    row.tid = std::stol(tid);
    row.id = std::stol(id);
  } catch (...) {
    return false;
  }
  while (at < line.size() && line[at] == ' ') ++at;
  if (at >= line.size() || line[at] != '\'') return false;
  row.name.clear();
  for (++at; at < line.size() && line[at] != '\''; ++at) {
    if (line[at] == '\\') ++at;
    if (at < line.size()) row.name += line[at];
  }
  if (at >= line.size()) return false;
  ++at;
  if (!token(row.waits_on) || !token(row.waited) || !token(row.site) || !token(row.awaiter)) {
    return false;
  }
  while (at < line.size() && line[at] == ' ') ++at;
  row.stack = line.substr(at);
  return true;
}

struct Ps {
  std::vector<Row> rows;
  std::vector<std::string> comments;
  std::vector<std::string> bad;  ///< lines that do not parse
};

Ps parse_ps(const std::string& text) {
  Ps ps;
  std::size_t begin = 0;
  bool header = false;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (line.rfind("#", 0) == 0) {
      ps.comments.push_back(line);
    } else if (!header && line.rfind("THREAD", 0) == 0) {
      header = true;
    } else {
      Row r;
      if (parse_row(line, r)) {
        ps.rows.push_back(r);
      } else {
        ps.bad.push_back(line);
      }
    }
  }
  return ps;
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

bool can_read_others() {
  std::ifstream in("/proc/sys/kernel/yama/ptrace_scope");
  int scope = 0;
  if (!(in >> scope)) return true;
  return scope <= 1 || ::geteuid() == 0;
}

/// The tool refuses a process it may not read, saying why and how to fix it, and prints nothing.
void expect_permission_refused(const Outcome& r) {
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("needs ptrace permission"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ptrace_scope"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CAP_SYS_PTRACE"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

/// Where YAMA forbids reading a sibling (ptrace_scope 2 without root, or 3), no reading test can
/// do its part: what the tool must do there is refuse clearly, and that is what is checked.
#define REQUIRE_PTRACE()                                                               \
  if (!can_read_others()) {                                                            \
    Child refused({WEAVE_PS_TARGET, "spin"});                                          \
    ASSERT_TRUE(refused.ready());                                                      \
    expect_permission_refused(run({WEAVE_TOOL, "ps", std::to_string(refused.pid())})); \
    return;                                                                            \
  }

TEST(Ps, TenThousandTasksInMixedWaits) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "mixed", "10000"});
  ASSERT_TRUE(child.ready());
  // Every wait began before the child said it was ready: each has lasted at least this long.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
  ASSERT_EQ(r.status, 0) << r.err;
  const Ps ps = parse_ps(r.out);
  EXPECT_TRUE(ps.bad.empty()) << ps.bad.front();
  ASSERT_EQ(ps.rows.size(), 10000u + 40u + 1u);
  std::map<std::string, const Row*> by_name;
  std::map<long, const Row*> by_id;
  for (const Row& row : ps.rows) {
    by_name[row.name] = &row;
    by_id[row.id] = &row;
    EXPECT_EQ(row.tid, child.pid()) << row.name;  // the loop runs on the main thread
  }
  EXPECT_EQ(by_id.size(), ps.rows.size());
  std::map<std::string, int> kinds;
  for (const Row& row : ps.rows) {
    const std::string kind = row.name.substr(0, row.name.rfind('-'));
    ++kinds[kind];
    EXPECT_EQ(row.state, "waiting") << row.name;
    const double waited = std::strtod(row.waited.c_str(), nullptr);
    EXPECT_TRUE(row.waited.back() == 's' && waited >= 0.3 && waited < 60) << row.waited;
    if (kind == "sleeper" || kind == "gathered" || kind == "grouped") {
      // An hour's sleep, begun less than a minute ago.
      EXPECT_TRUE(starts_with(row.waits_on, "sleep,due-in-35")) << row.name << " " << row.waits_on;
      EXPECT_NE(row.site.find("ps_target.cpp:"), std::string::npos) << row.name;
      EXPECT_NE(row.stack.find("(anonymous namespace)::sleeper()"), std::string::npos) << row.stack;
    } else if (kind == "getter" || kind == "waiter") {
      EXPECT_TRUE(starts_with(row.waits_on, "list:0x")) << row.name << " " << row.waits_on;
      EXPECT_EQ(row.awaiter, "-");
    } else if (kind == "gatherer") {
      EXPECT_TRUE(starts_with(row.waits_on, "custom:0x")) << row.waits_on;
      EXPECT_NE(row.stack.find("(anonymous namespace)::gatherer(int, int)"), std::string::npos);
    } else if (kind == "group-owner") {
      EXPECT_NE(row.stack.find("weave::TaskGroup::exit"), std::string::npos) << row.stack;
    }
  }
  EXPECT_EQ(kinds["sleeper"], 2000);
  EXPECT_EQ(kinds["getter"], 2000);
  EXPECT_EQ(kinds["waiter"], 2000);
  EXPECT_EQ(kinds["gathered"], 2000);
  EXPECT_EQ(kinds["grouped"], 2000);
  EXPECT_EQ(kinds["gatherer"], 20);
  EXPECT_EQ(kinds["group-owner"], 20);
  // Awaiters: gather's children name their gatherer, a group's children their owner.
  ASSERT_TRUE(by_name.count("gathered-0") && by_name.count("gatherer-0"));
  EXPECT_EQ(by_name["gathered-0"]->awaiter, std::to_string(by_name["gatherer-0"]->id));
  ASSERT_TRUE(by_name.count("grouped-150") && by_name.count("group-owner-1"));
  EXPECT_EQ(by_name["grouped-150"]->awaiter, std::to_string(by_name["group-owner-1"]->id));
  ASSERT_FALSE(ps.comments.empty());
  EXPECT_NE(r.out.find("10041 task(s), consistent"), std::string::npos) << ps.comments[0];
}

TEST(Ps, PstreeOfMixedWaits) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "mixed", "100"});
  ASSERT_TRUE(child.ready());
  const Outcome r = run({WEAVE_TOOL, "pstree", std::to_string(child.pid())});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("cycle"), std::string::npos);
  // A gatherer, its frames (outermost first), and under them the tasks it gathers.
  const std::size_t owner = r.out.find("\u2500\u2500 (T) 'gatherer-0'");
  ASSERT_NE(owner, std::string::npos) << r.out;
  const std::size_t frame = r.out.find("(anonymous namespace)::gatherer(int, int)", owner);
  const std::size_t child0 = r.out.find("(T) 'gathered-0'", owner);
  EXPECT_LT(frame, child0);
  EXPECT_NE(r.out.find("(anonymous namespace)::sleeper() ", child0), std::string::npos);
}

TEST(Ps, LoopSpinningInAStep) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "spin"});
  ASSERT_TRUE(child.ready());
  const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
  ASSERT_EQ(r.status, 0) << r.err;
  const Ps ps = parse_ps(r.out);
  EXPECT_TRUE(ps.bad.empty());
  int idle = 0;
  bool spinner = false;
  for (const Row& row : ps.rows) {
    if (row.name == "spinner") {
      spinner = true;
      EXPECT_EQ(row.state, "running");
      EXPECT_NE(row.stack.find("(anonymous namespace)::spinner()"), std::string::npos) << row.stack;
    } else if (starts_with(row.name, "idle-")) {
      ++idle;
      EXPECT_EQ(row.state, "waiting");
    }
  }
  EXPECT_TRUE(spinner) << r.out;
  EXPECT_EQ(idle, 10);
}

TEST(Ps, EveryLoopWithItsThread) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "threads"});
  ASSERT_TRUE(child.ready());
  const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(": 3 loop(s)"), std::string::npos) << r.out;
  const Ps ps = parse_ps(r.out);
  std::set<long> threads;
  int named = 0;
  for (const Row& row : ps.rows) {
    threads.insert(row.tid);
    if (starts_with(row.name, "on-")) {
      ++named;
      // Each loop's task is named after the thread that runs the loop.
      EXPECT_EQ(row.name, "on-" + std::to_string(row.tid));
      EXPECT_EQ(row.state, "waiting");
    }
  }
  EXPECT_EQ(named, 3);
  EXPECT_EQ(threads.size(), 3u);
  EXPECT_EQ(threads.count(child.pid()), 1u);
}

TEST(Ps, BadPointersEndARowCleanly) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "corrupt"});
  ASSERT_TRUE(child.ready());
  for (const char* command : {"ps", "pstree"}) {
    const Outcome r = run({WEAVE_TOOL, command, std::to_string(child.pid())});
    ASSERT_EQ(r.status, 0) << command << ": " << r.err;
  }
  const Ps ps = parse_ps(run({WEAVE_TOOL, "ps", std::to_string(child.pid())}).out);
  EXPECT_TRUE(ps.bad.empty()) << ps.bad.front();
  std::map<std::string, Row> rows;
  for (const Row& row : ps.rows) rows[row.name] = row;
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows["bad-leaf"].stack, "(cut)");
  // The frame that names itself is shown once, then the walk stops.
  EXPECT_EQ(rows["bad-frames"].stack, "(anonymous namespace)::nested_wait() <- (cut)");
  EXPECT_EQ(rows["bad-waiters"].stack, "(anonymous namespace)::waiter() <- (cut)");
  EXPECT_EQ(rows["bad-waiters"].awaiter, "-");
  EXPECT_EQ(rows["fine"].stack,
            "(anonymous namespace)::nested_wait() <- (anonymous namespace)::outer_wait()");
  for (const auto& [name, row] : rows) EXPECT_EQ(row.state, "waiting") << name;
}

TEST(Ps, StrippedProgramFoundByItsSection) {
  REQUIRE_PTRACE();
  // With no symbol table the tool finds the table by its section; frames are addresses then.
  const std::string copy =
      ::testing::TempDir() + "ps_target_stripped_" + std::to_string(::getpid());
  // strip comes with binutils, which g++ needs.
  if (run({"cp", WEAVE_PS_TARGET, copy}).status != 0 || run({"strip", copy}).status != 0) {
    ::unlink(copy.c_str());
    FAIL() << "could not make a stripped copy of " << WEAVE_PS_TARGET;
  }
  {
    Child child({copy, "cycle"});
    ASSERT_TRUE(child.ready());
    const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
    ASSERT_EQ(r.status, 0) << r.err;
    const Ps ps = parse_ps(r.out);
    std::map<std::string, Row> rows;
    for (const Row& row : ps.rows) rows[row.name] = row;
    ASSERT_TRUE(rows.count("A") && rows.count("B")) << r.out;
    EXPECT_EQ(rows["A"].waits_on, "task:" + std::to_string(rows["B"].id));
    EXPECT_TRUE(starts_with(rows["A"].stack, "0x")) << rows["A"].stack;
  }
  ::unlink(copy.c_str());
}

TEST(Ps, AwaitCycleIsReportedNotLoopedOn) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "cycle"});
  ASSERT_TRUE(child.ready());
  const Outcome r = run({WEAVE_TOOL, "pstree", std::to_string(child.pid())});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::size_t at = r.out.find("cycle: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  EXPECT_NE(line.find("'A'"), std::string::npos) << line;
  EXPECT_NE(line.find("'B'"), std::string::npos) << line;
  // ps shows each awaiting the other.
  const Ps ps = parse_ps(run({WEAVE_TOOL, "ps", std::to_string(child.pid())}).out);
  std::map<std::string, Row> rows;
  for (const Row& row : ps.rows) rows[row.name] = row;
  ASSERT_TRUE(rows.count("A") && rows.count("B"));
  EXPECT_EQ(rows["A"].waits_on, "task:" + std::to_string(rows["B"].id));
  EXPECT_EQ(rows["B"].waits_on, "task:" + std::to_string(rows["A"].id));
  EXPECT_EQ(rows["A"].awaiter, std::to_string(rows["B"].id));
}

TEST(Ps, ProcessSpawningTasksNeverGivesAnInvalidRow) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "spawn"});
  ASSERT_TRUE(child.ready());
  std::size_t rows = 0;
  for (int i = 0; i < 20; ++i) {
    const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
    ASSERT_EQ(r.status, 0) << r.err;
    const Ps ps = parse_ps(r.out);
    EXPECT_TRUE(ps.bad.empty()) << ps.bad.front();
    std::set<long> ids;
    for (const Row& row : ps.rows) {
      EXPECT_TRUE(ids.insert(row.id).second) << "duplicate id " << row.id;
      const bool named = starts_with(row.name, "spawn-") || starts_with(row.name, "Task-");
      EXPECT_TRUE(named && row.name.find_first_not_of("0123456789", row.name.find('-') + 1) ==
                               std::string::npos)
          << "'" << row.name << "'";
      EXPECT_TRUE(row.state == "waiting" || row.state == "ready" || row.state == "running" ||
                  row.state == "done")
          << row.state;
    }
    rows += ps.rows.size();
  }
  EXPECT_GT(rows, 20u);
}

/// The whitespace-separated fields of the ps row naming `name`, or none.
std::vector<std::string> row_fields(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(" '" + name + "' ") == std::string::npos) continue;
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    return f;
  }
  return {};
}

TEST(Ps, StatisticsColumnsOfALoopWithStatsOn) {
  REQUIRE_PTRACE();
  Child child({WEAVE_PS_TARGET, "stats"});
  ASSERT_TRUE(child.ready());
  const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("AWAITER  BUSY-S     SCHED-S    IDLE-S     STEPS      WAKEUPS    STACK"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" task(s), consistent after 1 walk(s); iterations "), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" ms\n"), std::string::npos) << r.out;  // ..., io N, lag X ms
  // THREAD TASK STATE NAME WAITS-ON WAITED SITE AWAITER BUSY-S SCHED-S IDLE-S STEPS WAKEUPS
  // STACK...
  const std::vector<std::string> y = row_fields(r.out, "yielder");
  ASSERT_GE(y.size(), 14u) << r.out;
  EXPECT_EQ(y[2], "waiting");
  EXPECT_EQ(y[5].back(), 's') << y[5];  // how long it has waited
  EXPECT_EQ(y[11], "11");               // its first step and 10 yields
  EXPECT_EQ(y[12], "0");                // a yield is no wake-up, and the event never came
  EXPECT_GT(std::stod(y[10]), 0.0);     // suspended since its last step
  EXPECT_LT(std::stod(y[8]), 1.0);
  const std::vector<std::string> s = row_fields(r.out, "sleeper");
  ASSERT_GE(s.size(), 14u) << r.out;
  EXPECT_EQ(s[11], "1");
  EXPECT_EQ(s[12], "0");
  // Without statistics there are no such columns.
  Child plain({WEAVE_PS_TARGET, "cycle"});
  ASSERT_TRUE(plain.ready());
  const Outcome p = run({WEAVE_TOOL, "ps", std::to_string(plain.pid())});
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_EQ(p.out.find("BUSY-S"), std::string::npos);
  EXPECT_EQ(p.out.find("iterations"), std::string::npos);
}

TEST(Ps, NotAWeaveProcess) {
  Child child({"sleep", "30"});
  ASSERT_GT(child.pid(), 0);
  // exec has happened once /proc/PID/exe is sleep's.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  char exe[512] = {};
  while (Clock::now() < deadline) {
    const std::string link = "/proc/" + std::to_string(child.pid()) + "/exe";
    const ssize_t n = ::readlink(link.c_str(), exe, sizeof exe - 1);
    if (n > 0 && std::string(exe, static_cast<std::size_t>(n)).find("sleep") != std::string::npos) {
      break;
    }
    ::usleep(1000);
  }
  const Outcome r = run({WEAVE_TOOL, "ps", std::to_string(child.pid())});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("is not a weave process"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(Ps, NoSuchProcess) {
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const Outcome r = run({WEAVE_TOOL, "pstree", std::to_string(gone)});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no process with pid " + std::to_string(gone)), std::string::npos) << r.err;
}

TEST(Ps, NoPtracePermission) {
  // A child that made itself not dumpable may be read only with CAP_SYS_PTRACE. Root has it, so
  // as root the tool runs as "nobody" (another user as well); anyone else runs it as is.
  Child child({WEAVE_PS_TARGET, "undumpable"});
  ASSERT_TRUE(child.ready());
  const uid_t as = ::geteuid() == 0 ? 65534 : 0;
  expect_permission_refused(
      run({WEAVE_TOOL, "ps", std::to_string(child.pid())}, std::chrono::seconds(30), as));
}

TEST(Ps, Usage) {
  EXPECT_EQ(run({WEAVE_TOOL}).status, 2);
  EXPECT_EQ(run({WEAVE_TOOL, "top", "1"}).status, 2);
  EXPECT_EQ(run({WEAVE_TOOL, "ps", "x1"}).status, 2);
}

}  // namespace
