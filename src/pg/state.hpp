// weave::pg's private side: a connection's libpq handle and how the loop drives its socket.
// Only src/pg sees libpq.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "weave/future.hpp"
#include "weave/locks.hpp"
#include "weave/pg.hpp"

namespace weave::pg::detail {

/// The result format for a result with these columns: binary (1) when every column's type has a
/// binary decoder, else text (0).
int result_format_for(const PGresult* res) noexcept;

/// What a row's field needs of its column, read from libpq once per result instead of once
/// per field.
struct Column {
  unsigned oid = 0;
  bool binary = false;
  std::string_view name;
};

struct ResultData : ResultCount {
  explicit ResultData(PGresult* r) noexcept : res(r) {}
  ResultData(const ResultData&) = delete;
  ResultData& operator=(const ResultData&) = delete;
  ~ResultData() { PQclear(res); }
  /// Fills `columns`: for a result whose rows are handed out.
  void describe();
  PGresult* res;
  std::vector<Column> columns;
};

/// The library's own reference to a result (counted with the rows', on the loop thread).
class ResultPtr {
 public:
  ResultPtr() noexcept = default;
  ResultPtr(std::nullptr_t) noexcept {}  // NOLINT: as a null pointer
  /// Owns `r` (null for none).
  explicit ResultPtr(PGresult* r) : p_(r != nullptr ? new ResultData(r) : nullptr) {
    if (p_ != nullptr) p_->refs = 1;
  }
  ResultPtr(const ResultPtr& o) noexcept : p_(o.p_) {
    if (p_ != nullptr) ++p_->refs;
  }
  ResultPtr(ResultPtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ResultPtr& operator=(ResultPtr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~ResultPtr() {
    if (p_ != nullptr && --p_->refs == 0) delete p_;
  }
  ResultData* operator->() const noexcept { return p_; }
  ResultData& operator*() const noexcept { return *p_; }
  ResultData* get() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  ResultData* p_ = nullptr;
};

/// The error a failed result carries: PostgresError, or ConnectionDoesNotExistError when the
/// connection died with it.
[[noreturn]] void raise_result_error(PGconn* conn, const PGresult* res);
/// libpq's message without its trailing newline.
std::string libpq_message(PGconn* conn);
/// `name` quoted as an SQL identifier. Errors: InterfaceError.
std::string quote_identifier(PGconn* conn, const std::string& name);

/// libpq's parameter arrays for one execution. A binary parameter whose type is not the one the
/// statement was prepared with (`types`, when known) goes as text, which the server parses into
/// its type as before.
class Bound {
 public:
  Bound(const Params& params, const Oid* types = nullptr, std::size_t ntypes = 0);
  int count() const noexcept { return n_; }
  const char* const* values() const noexcept { return values_; }
  const int* lengths() const noexcept { return lengths_; }
  const int* formats() const noexcept { return formats_; }

 private:
  static constexpr std::size_t kInline = 16;
  int n_ = 0;
  const char** values_;
  int *lengths_, *formats_;
  const char* inline_values_[kInline];
  int inline_lengths_[kInline], inline_formats_[kInline];
  std::vector<const char*> more_values_;
  std::vector<int> more_lengths_, more_formats_;
  std::vector<Param> converted_;
};

/// Prepared statements by text and parameter types, least recently used evicted first
/// (asyncpg's statement cache; 100 by default).
struct StatementCache {
  explicit StatementCache(std::size_t cap) : capacity(cap) {}
  struct Entry;
  /// The statement, or null; a hit becomes the most recent.
  const Entry* find(const std::string& key);
  /// Names a new statement; `evicted` gets the name of the one it pushed out, if any.
  std::string insert(const std::string& key, std::optional<std::string>& evicted);
  void erase(const std::string& key);
  /// Sets the statement's result format from its first result's column types.
  void learn(const std::string& key, const PGresult* res);

  struct Entry {
    std::string name;
    std::list<std::string>::iterator position;
    /// 1 (binary) once the statement's first result showed that every column has a binary
    /// decoder; 0 (text) until then and for the others.
    int result_format = 0;
  };
  std::size_t capacity;
  std::unordered_map<std::string, Entry> entries;
  std::list<std::string> order;  ///< keys, most recently used first
  std::uint64_t next_id = 0;
};

/// How one statement went out: which result is the statement's, and what the cache did.
struct Sent {
  bool pipelined = false;  ///< a prepare (and maybe a DEALLOCATE) went first, then a sync
  int query_index = 0;     ///< the statement's results come after this many ends
  int prepare_index = -1;  ///< the prepare's, when there was one
  std::string key;         ///< the cache key, empty when uncached
};

/// One connection. The loop watches its socket for as long as it is open: each readable event
/// reads what arrived (PQconsumeInput), delivers notifications and wakes the one statement
/// waiting, so that a connection with listeners receives NOTIFY while idle.
/// A statement waiting for the connection's pipeline (see pipeline.cpp).
struct Job {
  std::string sql;
  Params params;
  Future<void> done;
  Sent sent;
  ResultPtr last, error;
  std::exception_ptr failure;  ///< the connection failed under it
  bool sent_out = false;
};
using JobPtr = std::shared_ptr<Job>;

struct ConnectionState : std::enable_shared_from_this<ConnectionState> {
  ConnectionState(PGconn* c, ConnectOptions opts);
  ConnectionState(const ConnectionState&) = delete;
  ConnectionState& operator=(const ConnectionState&) = delete;
  ~ConnectionState();

  /// Registers the persistent reader once the connection is established.
  void start_watching();
  /// Throws ConnectionDoesNotExistError once the connection is closed or lost.
  void check_open() const;
  /// The connection is unusable from now on: the socket is no longer watched, waiters wake.
  void mark_lost(std::string why) noexcept;
  /// mark_lost and PQfinish.
  void finish() noexcept;

  /// Waits until the socket is readable (write=false) or writable or readable (write=true).
  Coro<void> wait_io(bool write);
  /// Sends libpq's output buffer.
  Coro<void> flush();
  /// True when the next result can be taken without waiting (checks the connection first).
  /// Loops wait with `while (!result_ready()) co_await wait_io(false);` and then take_result():
  /// a coroutine call per result that completes without suspending would deepen the stack
  /// on every iteration of a long pipeline when the compiler does not make the transfer a
  /// tail call (sanitizer builds).
  bool result_ready() {
    check_open();
    if (PQstatus(conn) == CONNECTION_BAD) {  // libpq saw it first: no result will ever come
      mark_lost("connection lost: " + libpq_message(conn));
      check_open();
    }
    return PQisBusy(conn) == 0;
  }
  /// PQgetResult; nullptr at the end of a statement.
  ResultPtr take_result() {
    PGresult* r = PQgetResult(conn);
    return ResultPtr(r);
  }
  /// After a cancelled wait: PQcancel off the loop, then read and drop what the statement still
  /// produces, so that the connection is in step again. Marks the connection lost on failure.
  Coro<void> abandon() noexcept;
  /// Reads every result up to the end of the statement (or, in pipeline mode, the sync).
  Coro<void> drain();

  /// Runs one statement under the connection's lock with its timeout: the last result.
  /// `prepared`: the name of a statement prepare() made, or empty (the cache decides).
  Coro<ResultPtr> run(Query q, Params params, bool simple, std::string prepared = {});
  Coro<ResultPtr> run_locked(const std::string& sql, const Params& params, bool simple,
                             const std::string& prepared);
  /// Flushes and reads the results of the one statement sent (outside pipeline mode): the last
  /// that is no error. Errors: the first error result's; CancelledError after abandon().
  Coro<ResultPtr> await_outcome();
  /// PREPARE under a new name, the parameter types inferred by the server.
  Coro<std::string> prepare(std::string sql);
  /// Sends the statement (no waiting): a cached prepared statement when there is one, else a
  /// prepare and the statement in one pipeline. Errors: as check_open, InterfaceError.
  Sent send(const std::string& sql, const Params& params, bool simple, const std::string& prepared);
  /// `own_pipeline`: enter pipeline mode and sync for a miss (false: the caller's pipeline).
  Sent send_cached(const std::string& sql, const Params& params, bool own_pipeline = true);
  /// Reads a pipelined statement's results up to its sync: its own result and the error.
  /// `exit` leaves pipeline mode after.
  Coro<std::pair<ResultPtr, ResultPtr>> read_pipelined(const Sent& sent, bool exit = true);

  /// Statements issued while others are in flight share one pipeline: each is sent at once
  /// (with a sync of its own, so an error stays its own) and its results are handed to it.
  Coro<ResultPtr> run_pipelined(const std::string& sql, const Params& params);
  /// The task that sends queued jobs and reads their results, while there are any.
  static Coro<void> drive(std::shared_ptr<ConnectionState> self);
  void send_queued();
  std::deque<JobPtr> queued, in_flight;
  bool driving = false;
  [[noreturn]] void raise_send_failure();
  /// Raises the error `error` carries; a connection that died with it is marked lost.
  [[noreturn]] void raise_error(const ResultPtr& error);

  void dispatch_notifications() noexcept;
  void on_readable() noexcept;
  void wake() noexcept;
  std::optional<Clock::duration> timeout_of(const Query& q) const {
    return q.timeout ? q.timeout : options.command_timeout;
  }

  PGconn* conn;
  int fd = -1;
  EventLoop* loop;
  ConnectOptions options;
  Lock lock;  ///< one statement (or pipeline, COPY) at a time
  std::optional<Future<void>> waiter;
  bool watching = false;
  std::string lost;  ///< why the connection is unusable; empty while it is fine
  std::multimap<std::string, std::function<void(const Notification&)>, std::less<>> listeners;
  StatementCache statements;
  /// The result format and parameter types of each statement prepare() made, by name.
  std::unordered_map<std::string, int> prepared_formats;
  std::unordered_map<std::string, std::vector<Oid>> prepared_types;
  /// The buffer of the last COPY FROM, for the next one.
  CopyRecords spare_copy;
  int transaction_depth = 0;
  std::uint64_t queries = 0;
};

}  // namespace weave::pg::detail
