// A Unix server's socket file, as asyncio 3.13 treats it (cleanup_socket): it exists while the
// server serves and is removed on close(), but only while the path still names the socket the
// server bound; a file that replaced it survives, a file already gone is no error, and an
// abstract address touches no file; cleanup_socket = false keeps it. The loop's close leaves the
// file, as asyncio's does; a later close() removes it. On both backends, with the fd count
// unchanged by each test.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/steps.hpp"
#include "weave/weave.hpp"

using weave_test::run_bounded;

namespace {

using weave_test::echo_lines;
using weave_test::Recorder;
using weave_test::until;

/// Each test gets a fresh directory for its socket files, removed with whatever is left in it.
class UnixServer : public weave_test::FdLeakCheck {
 protected:
  void SetUp() override {
    weave_test::FdLeakCheck::SetUp();
    std::string templ = (std::filesystem::temp_directory_path() / "weave-unix-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    weave_test::FdLeakCheck::TearDown();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

bool is_socket(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool is_regular(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

void make_regular_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
}

weave::Coro<weave::Server> echo_server(std::string path) {
  co_return co_await weave::get_running_loop().create_unix_server(
      [] { return std::make_shared<Recorder>(true); }, path);
}

/// A connection that echoes proves the server at `path` serves.
weave::Coro<void> expect_echo(std::string path) {
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await weave::get_running_loop().create_unix_connection([&] { return client; }, path);
  c.transport->write("ping");
  co_await until([&] { return client->received.size() >= 4; });
  EXPECT_EQ(client->received, "ping");
  c.transport->close();
  co_await client->wait_lost();
}

// ---- close() removes the file
// --------------------------------------------------------------------------

weave::Coro<void> file_exists_while_serving_and_goes_on_close(std::string path) {
  weave::Server server = co_await echo_server(path);
  EXPECT_TRUE(is_socket(path));
  co_await expect_echo(path);
  EXPECT_TRUE(is_socket(path));
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(exists(path));
}

TEST_F(UnixServer, FileExistsWhileServingAndIsRemovedOnClose) {
  run_bounded(file_exists_while_serving_and_goes_on_close(path("s.sock")));
}

weave::Coro<void> stream_server_removes_its_file(std::string path) {
  weave::Server server = co_await weave::start_unix_server(echo_lines, path);
  EXPECT_TRUE(is_socket(path));
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(exists(path));
}

TEST_F(UnixServer, StreamServerRemovesItsFileOnClose) {
  run_bounded(stream_server_removes_its_file(path("streams.sock")));
}

weave::Coro<void> server_that_never_served_removes_its_file(std::string path) {
  weave::ServerOptions opts;
  opts.start_serving = false;
  weave::Server server = co_await weave::get_running_loop().create_unix_server(
      [] { return std::make_shared<Recorder>(); }, path, opts);
  EXPECT_TRUE(is_socket(path));
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(exists(path));
}

TEST_F(UnixServer, ServerThatNeverServedRemovesItsFileOnClose) {
  run_bounded(server_that_never_served_removes_its_file(path("idle.sock")));
}

weave::Coro<void> without_cleanup_the_file_stays(std::string path) {
  weave::ServerOptions opts;
  opts.cleanup_socket = false;
  weave::Server server = co_await weave::get_running_loop().create_unix_server(
      [] { return std::make_shared<Recorder>(true); }, path, opts);
  co_await expect_echo(path);
  server.close();
  co_await server.wait_closed();
  EXPECT_TRUE(is_socket(path));
  weave::StreamOptions stream_opts;
  stream_opts.cleanup_socket = false;
  weave::Server streams = co_await weave::start_unix_server(echo_lines, path, stream_opts);
  streams.close();
  co_await streams.wait_closed();
  EXPECT_TRUE(is_socket(path));
}

TEST_F(UnixServer, WithoutCleanupSocketTheFileStays) {
  run_bounded(without_cleanup_the_file_stays(path("kept.sock")));
}

// ---- files that are not the server's any more
// --------------------------------------------------------------------------

weave::Coro<void> replaced_file_survives(std::string path) {
  weave::Server server = co_await echo_server(path);
  EXPECT_EQ(::unlink(path.c_str()), 0);
  make_regular_file(path);
  server.close();
  co_await server.wait_closed();
  EXPECT_TRUE(is_regular(path));
}

TEST_F(UnixServer, FileThatReplacedTheSocketSurvivesClose) {
  run_bounded(replaced_file_survives(path("s.sock")));
}

// A successor that removed our file and bound its own socket there keeps serving after our close.
weave::Coro<void> successor_socket_survives(std::string path) {
  weave::Server first = co_await echo_server(path);
  EXPECT_EQ(::unlink(path.c_str()), 0);
  weave::Server second = co_await echo_server(path);
  first.close();
  co_await first.wait_closed();
  EXPECT_TRUE(is_socket(path));
  co_await expect_echo(path);
  second.close();
  co_await second.wait_closed();
  EXPECT_FALSE(exists(path));
}

TEST_F(UnixServer, SuccessorSocketSurvivesClose) {
  run_bounded(successor_socket_survives(path("s.sock")));
}

weave::Coro<void> removed_file_is_no_error(std::string path) {
  weave::Server server = co_await echo_server(path);
  EXPECT_EQ(::unlink(path.c_str()), 0);
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(exists(path));
  EXPECT_FALSE(server.is_serving());
}

TEST_F(UnixServer, FileRemovedBeforeCloseIsNoError) {
  run_bounded(removed_file_is_no_error(path("s.sock")));
}

// The file is removed once: a file made at the path afterwards may reuse the inode number.
weave::Coro<void> second_close_leaves_a_new_file(std::string path) {
  weave::Server server = co_await echo_server(path);
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(exists(path));
  weave::Socket other(AF_UNIX, SOCK_STREAM);
  other.bind(weave::SocketAddress::unix_path(path));
  server.close();
  EXPECT_TRUE(is_socket(path));
}

TEST_F(UnixServer, SecondCloseLeavesANewFileAlone) {
  run_bounded(second_close_leaves_a_new_file(path("s.sock")));
}

// An abstract address has no file: a file named like it (without the leading '\0') is not ours.
weave::Coro<void> abstract_address_touches_no_file(std::string path) {
  std::string abstract = std::string(1, '\0') + path;
  weave::Server server = co_await echo_server(std::move(abstract));
  server.close();
  co_await server.wait_closed();
  EXPECT_TRUE(is_regular(path));
}

TEST_F(UnixServer, AbstractAddressTouchesNoFile) {
  const std::string named = path("abstract");
  make_regular_file(named);
  run_bounded(abstract_address_touches_no_file(named));
}

// ---- the loop's close
// --------------------------------------------------------------------------

weave::Coro<weave::Server> serve_until_the_loop_closes(std::string path) {
  weave::Server server = co_await echo_server(path);
  co_await expect_echo(path);
  co_return server;
}

// asyncio's loop.close() leaves an open server's file; its Server.close() removes it later.
TEST_F(UnixServer, LoopCloseLeavesTheFileForClose) {
  const std::string socket_path = path("s.sock");
  weave::Server server = run_bounded(serve_until_the_loop_closes(socket_path));
  EXPECT_TRUE(is_socket(socket_path));
  EXPECT_FALSE(server.is_serving());
  server.close();
  EXPECT_FALSE(exists(socket_path));
  server.close();
}

// A server dropped after the loop closed, never closed itself, leaves the file as asyncio's does.
TEST_F(UnixServer, ServerNeverClosedLeavesTheFile) {
  const std::string socket_path = path("s.sock");
  { weave::Server server = run_bounded(serve_until_the_loop_closes(socket_path)); }
  EXPECT_TRUE(is_socket(socket_path));
}

}  // namespace
