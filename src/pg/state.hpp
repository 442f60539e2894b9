// weave::pg's private side: a connection's libpq handle and how the loop drives its socket.
// Only src/pg sees libpq.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "weave/future.hpp"
#include "weave/locks.hpp"
#include "weave/pg.hpp"

namespace weave::pg::detail {

struct ResultData {
  explicit ResultData(PGresult* r) noexcept : res(r) {}
  ResultData(const ResultData&) = delete;
  ResultData& operator=(const ResultData&) = delete;
  ~ResultData() { PQclear(res); }
  PGresult* res;
};
using ResultPtr = std::shared_ptr<ResultData>;

/// The error a failed result carries: PostgresError, or ConnectionDoesNotExistError when the
/// connection died with it.
[[noreturn]] void raise_result_error(PGconn* conn, const PGresult* res);
/// libpq's message without its trailing newline.
std::string libpq_message(PGconn* conn);

/// One connection. The loop watches its socket for as long as it is open: each readable event
/// reads what arrived (PQconsumeInput), delivers notifications and wakes the one statement
/// waiting, so that a connection with listeners receives NOTIFY while idle.
struct ConnectionState {
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
  /// The next result (PQgetResult), waiting for it; nullptr at the end of a statement.
  Coro<ResultPtr> next_result();
  /// After a cancelled wait: PQcancel off the loop, then read and drop what the statement still
  /// produces, so that the connection is in step again. Marks the connection lost on failure.
  Coro<void> abandon() noexcept;
  /// Reads every result up to the end of the statement (or, in pipeline mode, the sync).
  Coro<void> drain();

  /// Runs one statement under the connection's lock with its timeout: the last result.
  Coro<ResultPtr> run(Query q, Params params, bool simple);
  Coro<ResultPtr> run_locked(std::string sql, Params params, bool simple);
  /// Sends the statement (no waiting). Errors: as check_open, InterfaceError.
  void send(const std::string& sql, const Params& params, bool simple);
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
  int transaction_depth = 0;
  std::uint64_t queries = 0;
};

}  // namespace weave::pg::detail
