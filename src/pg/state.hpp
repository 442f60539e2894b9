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
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "weave/future.hpp"
#include "weave/locks.hpp"
#include "weave/pg.hpp"

namespace weave::pg::detail {

/// The result format for a result with these columns: binary (1) when every column's type has a
/// binary decoder, else text (0).
int result_format_for(const PGresult* res) noexcept;

/// A result with its columns and where its fields are, placed inside the PGresult's own memory
/// (PQresultAlloc): PQclear frees them all, and a result costs no allocation of its own.
struct ResultData : ResultCount {
  ResultData(const ResultData&) = delete;
  ResultData& operator=(const ResultData&) = delete;
  /// Wraps `r` (null for none), which the returned object owns. Errors: std::bad_alloc.
  static ResultData* make(PGresult* r);
  /// Frees the result and this with it.
  void destroy() noexcept { PQclear(res); }
  /// Fills the columns: for a result whose rows are handed out. Errors: std::bad_alloc.
  void describe();
  /// Where `columns` points when there are no more than fit here.
  Column few_columns[4];

 private:
  explicit ResultData(PGresult* r) noexcept { res = r; }
};
static_assert(std::is_trivially_destructible_v<Column>);

/// The library's own reference to a result (counted with the rows', on the loop thread).
class ResultPtr {
 public:
  ResultPtr() noexcept = default;
  ResultPtr(std::nullptr_t) noexcept {}  // NOLINT: as a null pointer
  /// Owns `r` (null for none).
  explicit ResultPtr(PGresult* r) : p_(r != nullptr ? ResultData::make(r) : nullptr) {
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
    if (p_ != nullptr && --p_->refs == 0) p_->destroy();
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

/// libpq's parameter arrays for one execution. Where the statement's parameter types are known
/// (`types`: a prepare()d statement's, as the server inferred them), a binary parameter of
/// another type goes as text, which the server parses into its type as before, and a time value
/// of that type goes in binary (see Param::time).
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
/// (asyncpg's statement cache; 100 by default). A statement is looked up by its text and its
/// parameters' types as given, without building a key; a statement in flight refers to its
/// entry by id, which stays meaningful after the entry was evicted.
struct StatementCache {
  explicit StatementCache(std::size_t cap) : capacity(cap) {}
  struct Entry {
    std::string sql;
    std::vector<Oid> types;
    std::size_t hash = 0;
    std::string name;
    std::uint64_t id = 0;
    /// 1 (binary) once the statement's first result showed that every column has a binary
    /// decoder; 0 (text) until then and for the others.
    int result_format = 0;
    /// The parameter types the server inferred (described with the prepare, in its pipeline);
    /// empty until that description is read.
    std::vector<Oid> server_types;
  };
  using Position = std::list<Entry>::iterator;
  /// What a lookup compares: a statement's text and its parameters' types.
  struct Probe {
    std::string_view sql;
    const Params& params;
    std::size_t hash;
  };
  static std::size_t hash_of(std::string_view sql, const Params& params) noexcept;
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(const Position& p) const noexcept { return p->hash; }
    std::size_t operator()(const Probe& p) const noexcept { return p.hash; }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(const Position& a, const Position& b) const noexcept { return a == b; }
    bool operator()(const Probe& a, const Position& b) const noexcept;
    bool operator()(const Position& a, const Probe& b) const noexcept { return (*this)(b, a); }
  };

  /// The statement, or null; a hit becomes the most recent.
  const Entry* find(const Probe& probe);
  /// A new statement (the most recent); `evicted` gets the name of the one it pushed out.
  const Entry& insert(const Probe& probe, std::optional<std::string>& evicted);
  void erase(std::uint64_t id);
  /// Sets the statement's result format from its first result's column types.
  void learn(std::uint64_t id, const PGresult* res);
  /// Keeps the parameter types of the statement's description.
  void learn_types(std::uint64_t id, const PGresult* described);

  std::size_t capacity;
  std::list<Entry> order;  ///< most recently used first
  std::unordered_set<Position, Hash, Equal> entries;
  std::uint64_t next_id = 0;
};

/// How one statement went out: which result is the statement's, and what the cache did.
struct Sent {
  bool pipelined = false;   ///< a prepare (and maybe a DEALLOCATE) went first, then a sync
  int query_index = 0;      ///< the statement's results come after this many ends
  int prepare_index = -1;   ///< the prepare's, when there was one
  int describe_index = -1;  ///< the description's of its parameters, after the prepare
  std::uint64_t entry = 0;  ///< the cache entry's id, 0 when uncached
};

/// A pipelined statement's results as far as they have been read (see read_available).
struct PipelineRead {
  int index = 0;  ///< which statement of the pipeline the next result belongs to
  ResultPtr last, error;
};

/// A statement waiting for the connection's pipeline (see pipeline.cpp). It lives in the frame
/// of the coroutine that issued it; when that coroutine is cancelled after the statement went
/// out, a heap copy (an orphan) takes its place in the pipeline until its results are read.
struct Job {
  const std::string* sql = nullptr;  ///< until sent
  const Params* params = nullptr;
  Event done;  ///< set once `last`/`error`/`failure` are in
  Sent sent;
  ResultPtr last, error;
  std::exception_ptr failure;  ///< the connection failed under it
  bool sent_out = false;
  bool finished = false;  ///< its results are read (or it failed): no longer in a queue
  bool orphan = false;    ///< nobody waits for it: freed when its results are read
};

/// One connection. The loop watches its socket for as long as it is open: each readable event
/// reads what arrived (PQconsumeInput), delivers notifications and wakes the one statement
/// waiting, so that a connection with listeners receives NOTIFY while idle.

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
  /// `co_await readable()`: waits until the socket is readable, with no coroutine frame of its
  /// own (the statement's hot path waits here once per round trip).
  Event::WaitAwaiter readable() {
    check_open();
    io_ready.clear();
    return io_ready.wait();
  }
  /// Sends libpq's output buffer.
  Coro<void> flush();
  /// Sends what it can of libpq's output buffer without waiting: true when all of it went.
  bool try_flush() {
    check_open();
    const int r = PQflush(conn);
    if (r < 0) {
      mark_lost("connection lost: " + libpq_message(conn));
      check_open();
    }
    return r == 0;
  }
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

  /// Runs one statement with its timeout: the last result. `prepared`: the name of a statement
  /// prepare() made, or null (the cache decides). The arguments are the caller's, who awaits
  /// the coroutine returned at once.
  Coro<ResultPtr> run(const Query& q, const Params& params, bool simple,
                      const std::string* prepared = nullptr);
  /// run() with a timeout, or by the connection's lock.
  Coro<ResultPtr> run_limited(const Query& q, const Params& params, bool simple,
                              const std::string* prepared);
  Coro<ResultPtr> run_locked(const std::string& sql, const Params& params, bool simple,
                             const std::string* prepared);
  /// Flushes and reads the results of the one statement sent (outside pipeline mode): the last
  /// that is no error. Errors: the first error result's; CancelledError after abandon().
  Coro<ResultPtr> await_outcome();
  /// PREPARE under a new name, the parameter types inferred by the server.
  Coro<std::string> prepare(std::string sql);
  /// Sends the statement (no waiting): a cached prepared statement when there is one, else a
  /// prepare and the statement in one pipeline. Errors: as check_open, InterfaceError.
  Sent send(const std::string& sql, const Params& params, bool simple, const std::string* prepared);
  /// `own_pipeline`: enter pipeline mode and sync for a miss (false: the caller's pipeline).
  Sent send_cached(const std::string& sql, const Params& params, bool own_pipeline = true);
  /// Takes every result of a pipelined statement that arrived, without waiting, into `read`:
  /// its own result and the first error. True once its sync was read.
  bool read_available(const Sent& sent, PipelineRead& read);
  /// Reads a pipelined statement's results up to its sync: its own result and the error, and
  /// leaves pipeline mode.
  Coro<std::pair<ResultPtr, ResultPtr>> read_pipelined(const Sent& sent);

  /// Statements issued while others are in flight share one pipeline: each is sent at once
  /// (with a sync of its own, so an error stays its own) and its results are handed to it. A
  /// statement issued on an idle connection runs in its own coroutine, with no task.
  Coro<ResultPtr> run_pipelined(const std::string& sql, const Params& params);
  /// The result of a pipelined statement, or its error raised.
  ResultPtr outcome(Job& job);
  /// The task that sends queued jobs and reads their results, while there are any.
  static Coro<void> drive(std::shared_ptr<ConnectionState> self);
  /// Starts the driver task for the queued statements, or ends the pipeline's turn.
  void hand_over();
  void send_job(Job& job);
  void send_queued();
  /// Every queued and in-flight statement fails with `failure`.
  void fail_jobs(const std::exception_ptr& failure) noexcept;
  /// The statement was cancelled: withdrawn when still queued, else left to the pipeline as
  /// an orphan. True when it is alone in flight, so that cancelling it on the server hits it.
  bool withdraw(Job& job);
  std::deque<Job*> queued, in_flight;
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
  Lock lock;       ///< one statement (or pipeline, COPY) at a time
  Event io_ready;  ///< set by the reader (and writer) callback for the one waiting statement
  bool watching = false;
  std::string lost;  ///< why the connection is unusable; empty while it is fine
  std::multimap<std::string, std::function<void(const Notification&)>, std::less<>> listeners;
  StatementCache statements;
  /// The result format and parameter types of each statement prepare() made, by name.
  std::unordered_map<std::string, int> prepared_formats;
  std::unordered_map<std::string, std::vector<Oid>> prepared_types;
  /// The chunk buffer of the last COPY FROM, for the next one.
  CopyRecords spare_copy;
  int transaction_depth = 0;
  std::uint64_t queries = 0;
};

}  // namespace weave::pg::detail
