// How the loop drives one libpq connection: the persistent reader, waits for the socket,
// flushing, results, and the cancellation of a statement in flight.
#include "state.hpp"

#include <exception>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/timeouts.hpp"

namespace weave::pg::detail {

namespace {
std::string field_of(const PGresult* res, int code) {
  const char* v = PQresultErrorField(res, code);
  return v != nullptr ? v : "";
}
}  // namespace

std::string libpq_message(PGconn* conn) {
  std::string m = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

void raise_result_error(PGconn* conn, const PGresult* res) {
  std::string sqlstate = field_of(res, PG_DIAG_SQLSTATE);
  if (sqlstate.empty() || (conn != nullptr && PQstatus(conn) == CONNECTION_BAD)) {
    std::string m = PQresultErrorMessage(res);
    while (!m.empty() && m.back() == '\n') m.pop_back();
    if (m.empty()) m = libpq_message(conn);
    throw ConnectionDoesNotExistError("connection lost: " + m);
  }
  throw PostgresError(std::move(sqlstate), field_of(res, PG_DIAG_MESSAGE_PRIMARY),
                      field_of(res, PG_DIAG_MESSAGE_DETAIL), field_of(res, PG_DIAG_MESSAGE_HINT),
                      field_of(res, PG_DIAG_SEVERITY));
}

ConnectionState::ConnectionState(PGconn* c, ConnectOptions opts)
    : conn(c),
      loop(&get_running_loop()),
      options(std::move(opts)),
      statements(options.statement_cache_size) {}

ConnectionState::~ConnectionState() {
  finish();
}

void ConnectionState::start_watching() {
  fd = PQsocket(conn);
  loop->add_reader(fd, [this] { on_readable(); });
  watching = true;
}

void ConnectionState::check_open() const {
  if (!lost.empty()) throw ConnectionDoesNotExistError(lost);
}

void ConnectionState::mark_lost(std::string why) noexcept {
  if (lost.empty()) lost = why.empty() ? "the connection is closed" : std::move(why);
  if (watching) {
    watching = false;
    try {
      loop->remove_reader(fd);
      loop->remove_writer(fd);
    } catch (...) {  // the loop is closed: nothing watches the fd any more
    }
  }
  wake();
}

void ConnectionState::finish() noexcept {
  mark_lost("the connection is closed");
  if (conn != nullptr) PQfinish(std::exchange(conn, nullptr));
}

void ConnectionState::wake() noexcept {
  io_ready.set();
}

void ConnectionState::on_readable() noexcept {
  if (PQconsumeInput(conn) == 0) {
    mark_lost("connection lost: " + libpq_message(conn));
    return;
  }
  dispatch_notifications();
  wake();
}

void ConnectionState::dispatch_notifications() noexcept {
  while (PGnotify* n = PQnotifies(conn)) {
    Notification note{n->be_pid, n->relname, n->extra != nullptr ? n->extra : ""};
    PQfreemem(n);
    auto [first, last] = listeners.equal_range(note.channel);
    std::vector<std::function<void(const Notification&)>> callbacks;
    for (auto it = first; it != last; ++it) callbacks.push_back(it->second);
    for (auto& cb : callbacks) {
      try {
        cb(note);
      } catch (...) {
        loop->call_exception_handler(
            {"exception in a pg notification listener", std::current_exception(), std::nullopt});
      }
    }
  }
}

Coro<void> ConnectionState::wait_io(bool write) {
  if (!write) {
    co_await readable();
    co_return;
  }
  check_open();
  io_ready.clear();
  struct Withdraw {
    ConnectionState* self;
    ~Withdraw() {
      if (self->watching) self->loop->remove_writer(self->fd);
    }
  } withdraw{this};
  loop->add_writer(fd, [this] {
    // remove_writer destroys this callback (and its capture) while it runs: copy first.
    ConnectionState* self = this;
    self->loop->remove_writer(self->fd);
    self->wake();
  });
  co_await io_ready.wait();
}

Coro<void> ConnectionState::flush() {
  while (!try_flush()) co_await wait_io(true);
}

Coro<void> ConnectionState::drain() {
  co_await flush();
  if (PQpipelineStatus(conn) == PQ_PIPELINE_OFF) {
    for (;;) {
      while (!result_ready()) co_await wait_io(false);
      if (!take_result()) co_return;
    }
  }
  for (;;) {
    while (!result_ready()) co_await wait_io(false);
    ResultPtr r = take_result();
    if (r && PQresultStatus(r->res) == PGRES_PIPELINE_SYNC) break;
  }
  PQexitPipelineMode(conn);
}

Coro<void> ConnectionState::abandon() noexcept {
  try {
    check_open();
    std::shared_ptr<PGcancel> cancel(PQgetCancel(conn), [](PGcancel* c) { PQfreeCancel(c); });
    if (!cancel) throw InterfaceError("PQgetCancel failed");
    auto send_cancel = [cancel] {
      char error[256];
      PQcancel(cancel.get(), error, sizeof error);
    };
    co_await to_thread(send_cancel);
    co_await weave::timeout(std::chrono::seconds(10), drain());
  } catch (...) {
    mark_lost("the connection was closed: a cancelled statement could not be stopped");
  }
}

void ConnectionState::raise_error(const ResultPtr& error) {
  if (PQstatus(conn) == CONNECTION_BAD) mark_lost("connection lost: " + libpq_message(conn));
  raise_result_error(conn, error->res);
}

void ConnectionState::raise_send_failure() {
  if (PQstatus(conn) == CONNECTION_BAD) {
    mark_lost("connection lost: " + libpq_message(conn));
    check_open();
  }
  throw InterfaceError(libpq_message(conn));
}

Sent ConnectionState::send(const std::string& sql, const Params& params, bool simple,
                           const std::string* prepared) {
  check_open();
  if (simple) {
    if (PQsendQuery(conn, sql.c_str()) == 0) raise_send_failure();
    return {};
  }
  if (prepared == nullptr && statements.capacity > 0) return send_cached(sql, params);
  const int n = static_cast<int>(params.size());
  int ok = 0;
  if (prepared == nullptr) {
    std::vector<Oid> types(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) types[i] = params[i].oid;
    const Bound bound(params);
    ok = PQsendQueryParams(conn, sql.c_str(), n, types.data(), bound.values(), bound.lengths(),
                           bound.formats(), 0);
  } else {
    auto known = prepared_formats.find(*prepared);
    const int format = known != prepared_formats.end() ? known->second : 0;
    // The server inferred this statement's parameter types: a value of another type goes as text.
    auto typed = prepared_types.find(*prepared);
    const bool has_types = typed != prepared_types.end();
    const Bound bound(params, has_types ? typed->second.data() : nullptr,
                      has_types ? typed->second.size() : 0);
    ok = PQsendQueryPrepared(conn, prepared->c_str(), n, bound.values(), bound.lengths(),
                             bound.formats(), format);
  }
  if (ok == 0) raise_send_failure();
  return {};
}

Coro<ResultPtr> ConnectionState::run(const Query& q, const Params& params, bool simple,
                                     const std::string* prepared) {
  // The usual statement is the pipeline's coroutine itself, with no frame around it.
  if (!simple && prepared == nullptr && !timeout_of(q)) return run_pipelined(q.sql, params);
  return run_limited(q, params, simple, prepared);
}

Coro<ResultPtr> ConnectionState::run_limited(const Query& q, const Params& params, bool simple,
                                             const std::string* prepared) {
  const auto limit = timeout_of(q);
  if (!simple && prepared == nullptr) {
    co_return co_await weave::timeout(*limit, run_pipelined(q.sql, params));
  }
  if (limit) {
    co_return co_await weave::timeout(*limit, run_locked(q.sql, params, simple, prepared));
  }
  co_return co_await run_locked(q.sql, params, simple, prepared);
}

Coro<ResultPtr> ConnectionState::await_outcome() {
  ResultPtr last, error;
  std::exception_ptr cancelled;
  try {
    co_await flush();
    for (;;) {
      while (!result_ready()) co_await wait_io(false);
      ResultPtr r = take_result();
      if (!r) break;
      if (PQresultStatus(r->res) == PGRES_FATAL_ERROR) {
        if (!error) error = std::move(r);
      } else {
        last = std::move(r);
      }
    }
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (cancelled) {
    co_await abandon();
    std::rethrow_exception(cancelled);
  }
  if (error) raise_error(error);
  co_return last;
}

Coro<std::string> ConnectionState::prepare(std::string sql) {
  auto held = co_await lock.scoped();
  check_open();
  const std::string name = "weave_prepared_" + std::to_string(++statements.next_id);
  if (PQsendPrepare(conn, name.c_str(), sql.c_str(), 0, nullptr) == 0) raise_send_failure();
  co_await await_outcome();
  // Its result columns pick its result format, and its parameter types (inferred by the server)
  // which values go in binary: PQdescribePrepared, one more round trip here.
  if (PQsendDescribePrepared(conn, name.c_str()) == 0) raise_send_failure();
  const ResultPtr described = co_await await_outcome();
  if (described && PQresultStatus(described->res) == PGRES_COMMAND_OK) {
    prepared_formats[name] = result_format_for(described->res);
    std::vector<Oid>& types = prepared_types[name];
    for (int i = 0; i < PQnparams(described->res); ++i) {
      types.push_back(PQparamtype(described->res, i));
    }
  }
  co_return name;
}

Coro<ResultPtr> ConnectionState::run_locked(const std::string& sql, const Params& params,
                                            bool simple, const std::string* prepared) {
  auto held = co_await lock.scoped();
  const Sent sent = send(sql, params, simple, prepared);
  ++queries;
  ResultPtr last, error;
  std::exception_ptr cancelled;
  try {
    co_await flush();
    if (sent.pipelined) {
      std::tie(last, error) = co_await read_pipelined(sent);
    } else {
      for (;;) {
        while (!result_ready()) co_await wait_io(false);
        ResultPtr r = take_result();
        if (!r) break;
        ExecStatusType s = PQresultStatus(r->res);
        if (s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR || s == PGRES_BAD_RESPONSE) {
          if (!error) error = r;
        } else {
          last = std::move(r);
        }
      }
    }
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (cancelled) {
    if (sent.pipelined) statements.erase(sent.entry);  // whether the prepare ran is unknown
    co_await abandon();
    std::rethrow_exception(cancelled);
  }
  if (error) {
    // A cached plan that no longer fits (the table changed) is prepared afresh next time.
    const char* state = PQresultErrorField(error->res, PG_DIAG_SQLSTATE);
    if (sent.entry != 0 && state != nullptr && std::string_view(state) == "0A000") {
      statements.erase(sent.entry);
    }
    raise_error(error);
  }
  co_return last;
}

}  // namespace weave::pg::detail
