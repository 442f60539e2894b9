// asyncio.subprocess on both backends: pipes and communicate (large input, no deadlock), exit
// codes and deaths by signal, missing programs, the shell, redirections, cancellation of wait(),
// signals to the child, fd hygiene in the child, and no zombie and no leaked fd after each test.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;

namespace {

using weave_test::open_fd_count;

/// True when the process has no child left, reaped or not.
bool no_children() {
  return ::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD;
}

/// Every test must leave the process with the fds it found and without children.
class Subprocess : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(no_children());
    fds_before_ = open_fd_count();
  }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_before_) << "an fd leaked";
    EXPECT_TRUE(no_children()) << "a child was left behind";
  }

 private:
  int fds_before_ = 0;
};

const weave::SubprocessOptions bad{.stdin_ = weave::STDOUT};

const weave::SubprocessOptions kPipes{
    .stdin_ = weave::PIPE, .stdout_ = weave::PIPE, .stderr_ = weave::PIPE};

// ---- pipes and communicate ---------------------------------------------------------------------

weave::Coro<std::pair<std::string, std::string>> cat_echo(std::string input) {
  auto proc = co_await weave::create_subprocess_exec("cat", {}, kPipes);
  EXPECT_GT(proc.pid(), 0);
  EXPECT_FALSE(proc.returncode().has_value());
  auto result = co_await proc.communicate(std::move(input));
  EXPECT_EQ(proc.returncode(), 0);
  co_return result;
}

TEST_F(Subprocess, CatEchoesStdinToStdout) {
  auto [out, err] = run_bounded(cat_echo("hello, cat\n"));
  EXPECT_EQ(out, "hello, cat\n");
  EXPECT_EQ(err, "");
}

TEST_F(Subprocess, CommunicateMoreThanPipeBuffersDoesNotDeadlock) {
  std::string input;
  for (int i = 0; input.size() < 4 * 1024 * 1024; ++i) input += std::to_string(i) + "\n";
  auto [out, err] = run_bounded(cat_echo(input));
  EXPECT_EQ(out.size(), input.size());
  EXPECT_TRUE(out == input);
  EXPECT_EQ(err, "");
}

weave::Coro<std::vector<std::string>> cat_conversation() {
  auto proc = co_await weave::create_subprocess_exec("cat", {}, kPipes);
  std::vector<std::string> lines;
  for (const char* line : {"ping\n", "pong\n"}) {
    proc.stdin_->write(line);
    co_await proc.stdin_->drain();
    lines.push_back(co_await proc.stdout_->readline());
  }
  proc.stdin_->close();
  lines.push_back(co_await proc.stdout_->read());  // "" at end of file
  EXPECT_TRUE(proc.stdout_->at_eof());
  int code = co_await proc.wait();
  EXPECT_EQ(code, 0);
  co_return lines;
}

TEST_F(Subprocess, StreamsTalkToTheChildLineByLine) {
  std::vector<std::string> expected{"ping\n", "pong\n", ""};
  EXPECT_EQ(run_bounded(cat_conversation()), expected);
}

TEST_F(Subprocess, OnlyPipedStreamsExist) {
  auto body = []() -> weave::Coro<void> {
    const weave::SubprocessOptions opts{.stdout_ = weave::PIPE};
    auto proc = co_await weave::create_subprocess_exec("true", {}, opts);
    EXPECT_FALSE(proc.stdin_.has_value());
    EXPECT_TRUE(proc.stdout_.has_value());
    EXPECT_FALSE(proc.stderr_.has_value());
    int code = co_await proc.wait();
    EXPECT_EQ(code, 0);
  };
  run_bounded(body());
}

TEST_F(Subprocess, StreamLimitAppliesToChildOutput) {
  auto body = []() -> weave::Coro<bool> {
    weave::SubprocessOptions opts{.stdout_ = weave::PIPE};
    opts.limit = 16;
    auto proc = co_await weave::create_subprocess_shell("echo 0123456789012345678901234567", opts);
    bool refused = false;
    try {
      co_await proc.stdout_->readline();
    } catch (const weave::ValueError&) {
      refused = true;
    }
    co_await proc.wait();
    co_return refused;
  };
  EXPECT_TRUE(run_bounded(body()));
}

weave::Coro<std::pair<std::string, std::string>> shell(std::string cmd,
                                                       weave::SubprocessOptions opts) {
  auto proc = co_await weave::create_subprocess_shell(std::move(cmd), opts);
  co_return co_await proc.communicate();
}

TEST_F(Subprocess, ShellRunsCommandLineWithBothStreams) {
  auto [out, err] = run_bounded(shell("echo $((40 + 2)); echo oops >&2", kPipes));
  EXPECT_EQ(out, "42\n");
  EXPECT_EQ(err, "oops\n");
}

TEST_F(Subprocess, StderrToStdoutMergesStreams) {
  auto [out, err] = run_bounded(
      shell("echo out; echo err >&2", {.stdout_ = weave::PIPE, .stderr_ = weave::STDOUT}));
  EXPECT_EQ(out, "out\nerr\n");
  EXPECT_EQ(err, "");
}

TEST_F(Subprocess, DevNullStdinReadsEmpty) {
  auto [out, err] =
      run_bounded(shell("cat; echo end", {.stdin_ = weave::DEVNULL, .stdout_ = weave::PIPE}));
  EXPECT_EQ(out, "end\n");
}

TEST_F(Subprocess, DevNullStdoutDiscardsOutput) {
  auto [out, err] = run_bounded(
      shell("echo lost; echo kept >&2", {.stdout_ = weave::DEVNULL, .stderr_ = weave::PIPE}));
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "kept\n");
}

TEST_F(Subprocess, CommunicateIgnoresInputTheChildDoesNotRead) {
  std::string input(1024 * 1024, 'x');
  auto body = [](std::string in) -> weave::Coro<int> {
    auto proc = co_await weave::create_subprocess_shell("exit 0", kPipes);
    co_await proc.communicate(std::move(in));
    co_return *proc.returncode();
  };
  EXPECT_EQ(run_bounded(body(input)), 0);
}

TEST_F(Subprocess, EnvironmentAndWorkingDirectory) {
  weave::SubprocessOptions opts{.stdout_ = weave::PIPE, .cwd = "/"};
  opts.env = std::map<std::string, std::string>{{"WEAVE_GREETING", "bonjour"}};
  auto [out, err] = run_bounded(shell("echo $WEAVE_GREETING; pwd", opts));
  EXPECT_EQ(out, "bonjour\n/\n");
}

TEST_F(Subprocess, ChildInheritsOnlyItsStandardStreams) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);  // deliberately not close-on-exec
  std::string cmd = "for fd in " + std::to_string(p[0]) + " " + std::to_string(p[1]) +
                    "; do [ -e /proc/$$/fd/$fd ] && echo leaked $fd; done; echo checked";
  auto [out, err] = run_bounded(shell(cmd, {.stdout_ = weave::PIPE}));
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(out, "checked\n");
}

// ---- exit status ------------------------------------------------------------------------------

weave::Coro<int> exit_code(std::string program, std::vector<std::string> args) {
  auto proc = co_await weave::create_subprocess_exec(std::move(program), std::move(args));
  int code = co_await proc.wait();
  EXPECT_EQ(proc.returncode(), code);
  int again = co_await proc.wait();
  EXPECT_EQ(again, code) << "a second wait returns at once";
  co_return code;
}

TEST_F(Subprocess, ExitCodesAreReported) {
  EXPECT_EQ(run_bounded(exit_code("true", {})), 0);
  EXPECT_EQ(run_bounded(exit_code("false", {})), 1);
  EXPECT_EQ(run_bounded(exit_code("sh", {"-c", "exit 7"})), 7);
}

// The arguments braced right in the co_await, with literals and strings mixed, reach argv in
// order and intact.
weave::Coro<std::string> argv_as_printed() {
  const std::string spaced = "b c";
  auto proc = co_await weave::create_subprocess_exec(
      "sh", {"-c", "printf '%s|' \"$@\"", "argv0", "a", spaced, ""}, kPipes);
  auto [out, err] = co_await proc.communicate();
  EXPECT_EQ(err, "");
  co_return out;
}

TEST_F(Subprocess, BracedArgumentsInTheAwait) {
  EXPECT_EQ(run_bounded(argv_as_printed()), "a|b c||");
}

weave::Coro<int> killed(int sig) {
  auto proc = co_await weave::create_subprocess_exec("sleep", {"100"});
  if (sig == SIGKILL) {
    proc.kill();
  } else if (sig == SIGTERM) {
    proc.terminate();
  } else {
    proc.send_signal(sig);
  }
  int code = co_await proc.wait();
  proc.kill();  // reaped: nothing happens, as Popen.send_signal on a finished child
  co_return code;
}

TEST_F(Subprocess, ChildKilledBySignalHasNegativeReturnCode) {
  EXPECT_EQ(run_bounded(killed(SIGKILL)), -9);
  EXPECT_EQ(run_bounded(killed(SIGTERM)), -15);
  EXPECT_EQ(run_bounded(killed(SIGUSR1)), -SIGUSR1);
}

TEST_F(Subprocess, ChildSignalMaskIsEmptyWhileLoopHandlesSignals) {
  auto body = []() -> weave::Coro<std::string> {
    weave::get_running_loop().add_signal_handler(SIGUSR1, [] {});
    const weave::SubprocessOptions opts{
        .stdout_ = weave::PIPE};  // named: g++ 12 destroys a braced aggregate in a co_await twice
    auto [out, err] = co_await shell("exec grep SigBlk /proc/self/status", opts);
    weave::get_running_loop().remove_signal_handler(SIGUSR1);
    co_return out;
  };
  EXPECT_EQ(run_bounded(body()), "SigBlk:\t0000000000000000\n");
}

// ---- errors -----------------------------------------------------------------------------------

TEST_F(Subprocess, MissingProgramRaisesENOENT) {
  auto body = []() -> weave::Coro<void> {
    co_await weave::create_subprocess_exec("weave-no-such-program", {}, kPipes);
  };
  try {
    run_bounded(body());
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

TEST_F(Subprocess, StdoutAsStdinIsAValueError) {
  auto body = []() -> weave::Coro<void> {
    co_await weave::create_subprocess_exec("true", {}, bad);
  };
  EXPECT_THROW(run_bounded(body()), weave::ValueError);
}

// ---- cancellation and concurrent waits ---------------------------------------------------------

TEST_F(Subprocess, CancelledWaitLeavesChildRunningAndWaitable) {
  auto body = []() -> weave::Coro<int> {
    auto proc = co_await weave::create_subprocess_exec("sleep", {"100"});
    try {
      co_await weave::wait_for(proc.wait(), 50ms);
      ADD_FAILURE() << "sleep 100 exited";
    } catch (const weave::TimeoutError&) {
    }
    EXPECT_FALSE(proc.returncode().has_value());
    proc.terminate();
    co_return co_await proc.wait();
  };
  EXPECT_EQ(run_bounded(body()), -SIGTERM);
}

weave::Coro<int> wait_on(weave::Process& proc) {
  co_return co_await proc.wait();
}

TEST_F(Subprocess, SeveralTasksWaitForOneChild) {
  auto body = []() -> weave::Coro<std::tuple<int, int>> {
    auto proc = co_await weave::create_subprocess_exec("sh", {"-c", "sleep 0.05; exit 5"});
    auto result = co_await weave::gather(wait_on(proc), wait_on(proc));
    co_return result;
  };
  auto [a, b] = run_bounded(body());
  EXPECT_EQ(a, 5);
  EXPECT_EQ(b, 5);
}

TEST_F(Subprocess, CancelledCommunicateLeavesNothingArmed) {
  auto body = []() -> weave::Coro<void> {
    auto proc = co_await weave::create_subprocess_exec("sleep", {"100"}, kPipes);
    bool timed_out = false;
    try {
      co_await weave::wait_for(proc.communicate(), 50ms);
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    proc.kill();
    int code = co_await proc.wait();
    EXPECT_EQ(code, -SIGKILL);
  };
  run_bounded(body());
}

// ---- lifetime: no zombies ---------------------------------------------------------------------

TEST_F(Subprocess, DroppedProcessIsKilledAndReaped) {
  auto body = []() -> weave::Coro<void> {
    { auto proc = co_await weave::create_subprocess_exec("sleep", {"100"}, kPipes); }
    co_await weave::sleep(10ms);
  };
  run_bounded(body());  // reaped by the loop, or at the latest by its close()
}

TEST_F(Subprocess, ProcessOutlivingItsLoopReapsItsChild) {
  auto body = []() -> weave::Coro<weave::Process> {
    co_return co_await weave::create_subprocess_exec("sleep", {"100"});
  };
  weave::Process proc = run_bounded(body());
  EXPECT_FALSE(proc.returncode().has_value());
  EXPECT_THROW(run_bounded(proc.wait()), weave::RuntimeError);
}

TEST_F(Subprocess, ExitedChildIsReapedByTheLoopWithoutWait) {
  auto body = []() -> weave::Coro<std::optional<int>> {
    auto proc = co_await weave::create_subprocess_exec("true", {});
    for (int i = 0; i < 1000 && !proc.returncode(); ++i) co_await weave::sleep(5ms);
    co_return proc.returncode();
  };
  EXPECT_EQ(run_bounded(body()), 0);
}

}  // namespace

// ---- the callback layer: loop.subprocess_exec
// ----------------------------------------------------

namespace {

/// Records what the transport tells it; `done` is set by connection_lost.
struct Recorder : weave::SubprocessProtocol {
  std::vector<std::string> events;
  std::string out, err;
  weave::Event done;
  weave::SubprocessTransport* transport = nullptr;
  void connection_made(weave::SubprocessTransport& t) override {
    transport = &t;
    events.push_back("made");
  }
  void pipe_data_received(int fd, std::string_view data) override {
    (fd == 1 ? out : err).append(data);
  }
  void pipe_connection_lost(int fd, std::exception_ptr) override {
    events.push_back("lost " + std::to_string(fd));
  }
  void process_exited() override { events.push_back("exited"); }
  void connection_lost(std::exception_ptr) override {
    events.push_back("connection_lost");
    done.set();
  }
};

std::shared_ptr<weave::SubprocessProtocol> make_recorder() {
  return std::make_shared<Recorder>();
}

weave::Coro<std::shared_ptr<Recorder>> run_protocol(std::string cmd, std::string input) {
  weave::EventLoop& loop = weave::get_running_loop();
  auto [transport, protocol] = co_await loop.subprocess_shell(make_recorder, std::move(cmd));
  auto recorder = std::static_pointer_cast<Recorder>(protocol);
  EXPECT_GT(transport->get_pid(), 0);
  if (!input.empty()) {
    transport->get_pipe_transport(0)->write(input);
    transport->get_pipe_transport(0)->close();
  }
  co_await recorder->done.wait();
  EXPECT_EQ(recorder->transport, transport.get());
  recorder->events.push_back("code " + std::to_string(transport->get_returncode().value_or(999)));
  co_return recorder;
}

}  // namespace

TEST_F(Subprocess, ProtocolSeesOutputExitAndConnectionLostLast) {
  auto r = run_bounded(run_protocol("echo out; echo err >&2; exit 3", ""));
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  ASSERT_EQ(r->events.size(), 7u);
  EXPECT_EQ(r->events.front(), "made");
  EXPECT_EQ(r->events[5], "connection_lost");
  EXPECT_EQ(r->events[6], "code 3");
  for (const char* e : {"lost 0", "lost 1", "lost 2", "exited"}) {
    EXPECT_NE(std::find(r->events.begin(), r->events.end(), e), r->events.end()) << e;
  }
}

TEST_F(Subprocess, ProtocolWritesToStdinThroughThePipeTransport) {
  auto r = run_bounded(run_protocol("cat", "through the pipe"));
  EXPECT_EQ(r->out, "through the pipe");
  EXPECT_EQ(r->events.back(), "code 0");
}

weave::Coro<int> close_kills() {
  weave::EventLoop& loop = weave::get_running_loop();
  auto conn = co_await loop.subprocess_exec(make_recorder, "sleep", {"100"});
  auto recorder = std::static_pointer_cast<Recorder>(conn.protocol);
  conn.transport->close();
  EXPECT_TRUE(conn.transport->is_closing());
  co_await recorder->done.wait();
  co_return conn.transport->get_returncode().value_or(999);
}

TEST_F(Subprocess, ClosingTheTransportKillsTheChild) {
  EXPECT_EQ(run_bounded(close_kills()), -SIGKILL);
}

weave::Coro<void> abandon_running_transport() {
  weave::EventLoop& loop = weave::get_running_loop();
  auto conn = co_await loop.subprocess_exec(make_recorder, "sleep", {"100"});
  (void)conn;  // the loop closes while the child runs: close() must kill and reap it
}

TEST_F(Subprocess, LoopClosingUnderARunningTransportReapsTheChild) {
  run_bounded(abandon_running_transport());
}

namespace {

// ---- fds, process group, user, group, umask (subprocess's pass_fds, close_fds, ...) -----------

/// A pipe whose ends are not close-on-exec (as fds a program gets from other libraries are).
struct InheritablePipe {
  int fds[2] = {-1, -1};
  InheritablePipe() {
    if (::pipe(fds) < 0) throw weave::os_error(errno, "pipe");
  }
  ~InheritablePipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

/// A shell command that prints which of `fds` the shell has open, then "checked".
std::string report_fds(std::vector<int> fds) {
  std::string cmd = "for fd in";
  for (int fd : fds) {
    cmd.append(" ");
    cmd.append(std::to_string(fd));
  }
  cmd.append("; do [ -e /proc/$$/fd/$fd ] && echo open $fd; done; echo checked");
  return cmd;
}

TEST_F(Subprocess, PassFdsPassesOnlyThose) {
  InheritablePipe leaky;
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);  // close-on-exec: passed all the same
  weave::SubprocessOptions opts{.stdout_ = weave::PIPE};
  opts.pass_fds = {p[1]};
  const std::string cmd = report_fds({leaky.fds[0], leaky.fds[1], p[0], p[1]}) +
                          "; echo through >&" + std::to_string(p[1]);
  auto [out, err] = run_bounded(shell(cmd, opts));
  ::close(p[1]);
  char buf[64];
  const ssize_t n = ::read(p[0], buf, sizeof buf);
  ::close(p[0]);
  EXPECT_EQ(out, "open " + std::to_string(p[1]) + "\nchecked\n");
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), "through\n");
}

TEST_F(Subprocess, CloseFdsFalseInheritsWhatIsNotCloseOnExec) {
  InheritablePipe leaky;
  int cloexec[2];
  ASSERT_EQ(::pipe2(cloexec, O_CLOEXEC), 0);
  weave::SubprocessOptions opts{.stdout_ = weave::PIPE, .close_fds = false};
  auto [out, err] = run_bounded(shell(report_fds({leaky.fds[0], cloexec[0]}), opts));
  ::close(cloexec[0]);
  ::close(cloexec[1]);
  EXPECT_EQ(out, "open " + std::to_string(leaky.fds[0]) + "\nchecked\n");
  // pass_fds implies close_fds, as subprocess does.
  opts.pass_fds = {cloexec[1] = ::dup(leaky.fds[1])};
  auto [out2, err2] = run_bounded(shell(report_fds({leaky.fds[0], cloexec[1]}), opts));
  ::close(cloexec[1]);
  EXPECT_EQ(out2, "open " + std::to_string(cloexec[1]) + "\nchecked\n");
}

TEST_F(Subprocess, PassFdsRejectsBadFds) {
  weave::SubprocessOptions opts;
  opts.pass_fds = {-1};
  EXPECT_THROW(run_bounded(shell("true", opts)), weave::ValueError);
  opts.pass_fds = {987};  // not open
  try {
    run_bounded(shell("true", opts));
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
  }
}

/// The child's process group id (field 5 of /proc/self/stat) and its pid, read by the child.
weave::Coro<std::pair<std::string, int>> child_group(weave::SubprocessOptions opts) {
  opts.stdout_ = weave::PIPE;
  auto proc = co_await weave::create_subprocess_exec(
      "cut", {"-d", " ", "-f", "5", "/proc/self/stat"}, opts);
  auto [out, err] = co_await proc.communicate();
  co_return std::pair<std::string, int>(out, proc.pid());
}

TEST_F(Subprocess, ProcessGroupZeroStartsOneNamedAfterTheChild) {
  weave::SubprocessOptions opts;
  opts.process_group = 0;
  auto [pgid, pid] = run_bounded(child_group(opts));
  EXPECT_EQ(pgid, std::to_string(pid) + "\n");
  auto [inherited, pid2] = run_bounded(child_group(weave::SubprocessOptions()));
  EXPECT_EQ(inherited, std::to_string(::getpgrp()) + "\n");
  // The forked path (taken for umask) does the same.
  opts.umask = 022;
  auto [pgid3, pid3] = run_bounded(child_group(opts));
  EXPECT_EQ(pgid3, std::to_string(pid3) + "\n");
}

TEST_F(Subprocess, UmaskIsTheChildsOnly) {
  const mode_t mine = ::umask(022);
  ::umask(mine);
  weave::SubprocessOptions opts{.stdout_ = weave::PIPE};
  opts.umask = 027;
  auto [out, err] = run_bounded(shell("umask", opts));
  EXPECT_EQ(out, "0027\n");
  const mode_t after = ::umask(022);
  ::umask(after);
  EXPECT_EQ(after, mine);
}

TEST_F(Subprocess, UserAndGroupAreSet) {
  weave::SubprocessOptions opts{.stdout_ = weave::PIPE, .stderr_ = weave::PIPE};
  opts.user = "65534";
  opts.group = "65534";
  if (::geteuid() == 0) {
    auto [out, err] = run_bounded(shell("id -u; id -g", opts));
    EXPECT_EQ(out, "65534\n65534\n");
    opts.user = "root";  // a name is looked up
    opts.group = "root";
    auto [out2, err2] = run_bounded(shell("id -u; id -g", opts));
    EXPECT_EQ(out2, "0\n0\n");
  } else {
    try {
      run_bounded(shell("id -u", opts));
      FAIL() << "an unprivileged caller changed its child's user";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EPERM);
    }
  }
  opts.user = "weave-no-such-user";
  EXPECT_THROW(run_bounded(shell("true", opts)), weave::LookupError);
}

TEST_F(Subprocess, ForkedPathReportsExecErrorsAndKeepsStreams) {
  weave::SubprocessOptions opts = kPipes;
  opts.umask = 077;
  auto missing = [&]() -> weave::Coro<void> {
    co_await weave::create_subprocess_exec("weave-no-such-program", {}, opts);
  };
  try {
    run_bounded(missing());
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
  opts.stderr_ = weave::STDOUT;
  opts.cwd = "/";
  InheritablePipe leaky;
  auto [out, err] = run_bounded(
      shell("read x; echo got $x; pwd; echo oops >&2; " + report_fds({leaky.fds[0]}), opts));
  (void)err;
  EXPECT_EQ(out, "got\n/\noops\nchecked\n");
}

}  // namespace
