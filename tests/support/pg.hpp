#pragma once
// The pg suites' server: the throw-away cluster that the ctest fixture pg_cluster started
// (tests/support/pg_cluster.sh), and a database of its own for each test binary and backend.

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/steps.hpp"
#include "weave/pg.hpp"
#include "weave/weave.hpp"

namespace weave_test {

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string t = s.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

/// The cluster's state directory; empty outside ctest.
inline std::string pg_cluster_dir() {
  const char* d = std::getenv("WEAVE_PG_CLUSTER");
  return d != nullptr ? d : "";
}

/// The admin DSN, or the reason there is none (in `why`).
inline std::string pg_admin_dsn(std::string& why) {
  const std::string dir = pg_cluster_dir();
  if (dir.empty()) {
    why =
        "WEAVE_PG_CLUSTER is not set: run the pg tests through ctest, whose fixture pg_cluster "
        "starts a PostgreSQL server (tests/support/pg_cluster.sh start DIR)";
    return "";
  }
  std::string error = read_text_file(dir + "/error");
  if (!error.empty()) {
    why = "no PostgreSQL server for the tests: " + error;
    return "";
  }
  std::string dsn = read_text_file(dir + "/dsn");
  if (dsn.empty()) {
    why = "no PostgreSQL server for the tests: the fixture wrote no " + dir +
          "/dsn. Install the server with 'apt-get install postgresql' (scripts/install-deps.sh).";
  }
  return dsn;
}

/// Every test of a pg suite: the server must be there (a missing server fails, never skips),
/// the suite's database exists, and no fd leaks.
class PgTest : public FdLeakCheck {
 public:
  static void SetUpTestSuite() {
    std::string why;
    admin_ = pg_admin_dsn(why);
    why_ = why;
    if (admin_.empty()) return;
    const char* backend = std::getenv("WEAVE_BACKEND");
    database_ = "weave_" +
                std::string(::testing::UnitTest::GetInstance()->current_test_suite()->name()) +
                "_" + (backend != nullptr ? backend : "default") + "_" + std::to_string(::getpid());
    for (char& c : database_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    try {
      weave::run(admin(database_, true));
    } catch (const std::exception& e) {
      why_ = std::string("cannot create the test database: ") + e.what();
      admin_.clear();
    }
  }
  static void TearDownTestSuite() {
    if (!admin_.empty()) weave::run(admin(database_, false));
  }

 protected:
  void SetUp() override {
    FdLeakCheck::SetUp();
    ASSERT_FALSE(admin_.empty()) << why_;
  }
  static std::string dsn() { return admin_ + " dbname=" + database_; }
  static const std::string& database() { return database_; }
  static std::string port() { return read_text_file(pg_cluster_dir() + "/port"); }

 private:
  static weave::Coro<void> admin(std::string db, bool create) {
    weave::pg::Connection c = co_await weave::pg::connect(admin_);
    const std::string drop = "DROP DATABASE IF EXISTS " + db;
    co_await c.execute(drop);
    if (create) {
      const std::string make = "CREATE DATABASE " + db;
      co_await c.execute(make);
    }
    co_await c.close();
  }
  static inline std::string admin_, why_, database_;
};

}  // namespace weave_test
