#pragma once
// Every I/O test must leave the process with the fds it found: a leaked socket, pipe or pidfd
// fails the test that leaked it.

#include <dirent.h>

#include <gtest/gtest.h>

namespace weave_test {

/// The number of entries in /proc/self/fd (the directory's own fd included).
inline int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

/// A fixture that checks the fd count after each test; subclasses calling SetUp/TearDown of their
/// own must call these too.
class FdLeakCheck : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override { EXPECT_EQ(open_fd_count(), fds_before_) << "an fd leaked"; }

 private:
  int fds_before_ = 0;
};

}  // namespace weave_test
