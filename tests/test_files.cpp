// weave::File on both backends (io_uring natively, epoll through the default executor): data
// round trips, Python's open modes, positional I/O, errors with their errno, cancellation of a
// read that blocks (on a FIFO), and the fd count unchanged by each test.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <system_error>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::run_bounded;

namespace {

using weave_test::open_fd_count;

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/weave-files-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    fds_before_ = open_fd_count();
  }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_before_) << "an fd leaked";
    std::system(("rm -rf " + dir_).c_str());
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  int fds_before_ = 0;
};

int errno_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& x) {
    return x.code().value();
  } catch (...) {
  }
  return 0;
}

weave::Coro<void> write_then_read(std::string p) {
  weave::File f = co_await weave::File::open(p, "w");
  EXPECT_TRUE(f.is_open());
  EXPECT_EQ(co_await f.write("hello "), 6u);
  EXPECT_EQ(co_await f.write("file"), 4u);
  co_await f.fsync();
  co_await f.close();
  EXPECT_FALSE(f.is_open());
  co_await f.close();  // twice is harmless

  weave::File r = co_await weave::File::open(p);
  EXPECT_EQ(co_await r.read(5), "hello");
  EXPECT_EQ(co_await r.read(), " file");
  EXPECT_EQ(co_await r.read(), "");
  EXPECT_EQ(co_await r.pread(4, 6), "file");
  co_await r.close();
}

TEST_F(Files, WriteThenRead) {
  run_bounded(write_then_read(path("a.txt")));
}

weave::Coro<void> modes(std::string p) {
  {
    weave::File f = co_await weave::File::open(p, "w");
    co_await f.write("one\n");
    co_await f.close();
  }
  {
    weave::File f = co_await weave::File::open(p, "a");
    co_await f.write("two\n");
    co_await f.close();
  }
  {
    weave::File f = co_await weave::File::open(p, "r+");
    co_await f.pwrite("ONE", 0);
    EXPECT_EQ(co_await f.read(), "ONE\ntwo\n");
    co_await f.close();
  }
  std::exception_ptr exists;
  try {
    co_await weave::File::open(p, "x");
  } catch (...) {
    exists = std::current_exception();
  }
  EXPECT_EQ(errno_of(exists), EEXIST);
  EXPECT_THROW(co_await weave::File::open(p, "rw"), weave::ValueError);
  EXPECT_THROW(co_await weave::File::open(p, "q"), weave::ValueError);
  {
    weave::File f = co_await weave::File::open(p, "w+");  // truncates
    EXPECT_EQ(co_await f.read(), "");
    co_await f.close();
  }
}

TEST_F(Files, PythonModes) {
  run_bounded(modes(path("m.txt")));
}

weave::Coro<void> errors(std::string missing) {
  std::exception_ptr e;
  try {
    co_await weave::File::open(missing);
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_EQ(errno_of(e), ENOENT);
  weave::File closed;
  e = nullptr;
  try {
    co_await closed.read();
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_EQ(errno_of(e), EBADF);
}

TEST_F(Files, ErrorsCarryTheErrno) {
  run_bounded(errors(path("missing/nothing.txt")));
}

weave::Coro<void> large_file(std::string p) {
  std::string data(8 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) >> 4);
  weave::File f = co_await weave::File::open(p, "w+");
  EXPECT_EQ(co_await f.write(data), data.size());
  EXPECT_EQ(co_await f.pread(data.size(), 0), data);
  EXPECT_EQ(co_await f.pread(10, data.size() - 4), data.substr(data.size() - 4));
  co_await f.close();
  weave::File r = co_await weave::File::open(p);
  EXPECT_EQ(co_await r.read(), data);
  co_await r.close();
}

TEST_F(Files, LargeFileRoundTrip) {
  run_bounded(large_file(path("big.bin")), std::chrono::seconds(30));
}

weave::Coro<std::string> read_fifo(weave::File* f) {
  co_return co_await f->read(16);
}

// A read of an empty FIFO blocks: cancelling it must withdraw it (io_uring) or abandon it to
// its thread (epoll), and raise CancelledError at once either way.
weave::Coro<void> cancelled_read(std::string fifo) {
  EXPECT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  weave::File f = co_await weave::File::open(fifo, O_RDWR);  // O_RDWR: no wait for a writer
  auto reading = weave::create_task(read_fifo(&f));
  co_await weave::sleep(20ms);
  EXPECT_FALSE(reading.done());
  reading.cancel();
  const auto t0 = weave::Clock::now();
  EXPECT_THROW(co_await reading, weave::CancelledError);
  EXPECT_LT(weave::Clock::now() - t0, 2s);
  // Release a read still blocked in a thread, so that the executor can shut down.
  weave::File w = co_await weave::File::open(fifo, O_WRONLY | O_NONBLOCK);
  co_await w.write("x");
  co_await w.close();
  co_await weave::sleep(5ms);
  co_await f.close();
}

TEST_F(Files, CancelledBlockingRead) {
  run_bounded(cancelled_read(path("fifo")));
}

}  // namespace
