// Connection's larger operations: transactions, executemany in pipeline mode, LISTEN/NOTIFY,
// and COPY in both directions.
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "state.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/timeouts.hpp"

namespace weave::pg {

namespace {
/// The state, shared for the whole operation (the Connection object may go meanwhile).
std::shared_ptr<detail::ConnectionState> open_state(
    const std::shared_ptr<detail::ConnectionState>& s) {
  if (s == nullptr) throw ConnectionDoesNotExistError("the connection is closed");
  s->check_open();
  return s;
}

std::string begin_statement(const TransactionOptions& o) {
  std::string sql = "BEGIN";
  if (o.isolation) {
    switch (*o.isolation) {
      case IsolationLevel::read_committed:
        sql += " ISOLATION LEVEL READ COMMITTED";
        break;
      case IsolationLevel::repeatable_read:
        sql += " ISOLATION LEVEL REPEATABLE READ";
        break;
      case IsolationLevel::serializable:
        sql += " ISOLATION LEVEL SERIALIZABLE";
        break;
      case IsolationLevel::read_uncommitted:
        sql += " ISOLATION LEVEL READ UNCOMMITTED";
        break;
    }
  }
  if (o.readonly) sql += " READ ONLY";
  if (o.deferrable) sql += " DEFERRABLE";
  return sql;
}

std::string quote_identifier(PGconn* conn, const std::string& name) {
  char* q = PQescapeIdentifier(conn, name.c_str(), name.size());
  if (q == nullptr) throw InterfaceError(detail::libpq_message(conn));
  std::string out(q);
  PQfreemem(q);
  return out;
}

/// A value as COPY's text format writes it: runs without a character to escape are appended
/// whole.
void append_copy_field(std::string& line, const Param& p) {
  if (!p.text) {
    line += "\\N";
    return;
  }
  const std::string_view v = *p.text;
  std::size_t from = 0;
  for (;;) {
    const std::size_t at = v.find_first_of("\\\t\n\r", from);
    line.append(v.data() + from, (at == std::string_view::npos ? v.size() : at) - from);
    if (at == std::string_view::npos) return;
    const char c = v[at];
    line += '\\';
    line += c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
    from = at + 1;
  }
}
}  // namespace

// ---- transactions ------------------------------------------------------------------------------

Coro<void> Connection::transaction(TransactionBody body, TransactionOptions options) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  const bool nested = st.transaction_depth > 0;
  const std::string savepoint = "weave_savepoint_" + std::to_string(st.transaction_depth + 1);
  const std::string begin = nested ? "SAVEPOINT " + savepoint : begin_statement(options);
  co_await execute(begin);
  ++st.transaction_depth;
  std::exception_ptr error;
  try {
    co_await body(*this);
  } catch (...) {  // CancelledError too: the transaction is rolled back, then it goes on
    error = std::current_exception();
  }
  --st.transaction_depth;
  if (error) {
    const std::string rollback =
        nested ? "ROLLBACK TO SAVEPOINT " + savepoint + "; RELEASE SAVEPOINT " + savepoint
               : std::string("ROLLBACK");
    try {
      co_await execute(rollback);
    } catch (...) {  // a lost connection rolls back on its own; the body's error is the news
    }
    std::rethrow_exception(error);
  }
  const std::string commit = nested ? "RELEASE SAVEPOINT " + savepoint : std::string("COMMIT");
  co_await execute(commit);
}

// ---- executemany -------------------------------------------------------------------------------

Coro<void> Connection::executemany_params(Query q, std::vector<Params> sets) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  auto batch = [](detail::ConnectionState& st, std::string sql,
                  std::vector<Params> sets) -> Coro<void> {
    auto held = co_await st.lock.scoped();
    st.check_open();
    if (sets.empty()) co_return;
    PGconn* conn = st.conn;
    if (PQenterPipelineMode(conn) == 0) st.raise_send_failure();
    // One unnamed statement, parsed once, executed per parameter set, then one sync.
    std::vector<Oid> types;
    for (const Param& p : sets.front()) types.push_back(p.oid);
    if (PQsendPrepare(conn, "", sql.c_str(), static_cast<int>(types.size()), types.data()) == 0) {
      st.raise_send_failure();
    }
    std::vector<const char*> values;
    for (const Params& set : sets) {
      values.clear();
      for (const Param& p : set) values.push_back(p.text ? p.text->c_str() : nullptr);
      if (PQsendQueryPrepared(conn, "", static_cast<int>(values.size()), values.data(), nullptr,
                              nullptr, 0) == 0) {
        st.raise_send_failure();
      }
      st.queries++;
    }
    if (PQpipelineSync(conn) == 0) st.raise_send_failure();
    detail::ResultPtr error;
    std::exception_ptr cancelled;
    try {
      co_await st.flush();
      for (;;) {
        while (!st.result_ready()) co_await st.wait_io(false);
        detail::ResultPtr r = st.take_result();
        if (!r) continue;
        ExecStatusType s = PQresultStatus(r->res);
        if (s == PGRES_PIPELINE_SYNC) break;
        if (s == PGRES_FATAL_ERROR && !error) error = r;
      }
    } catch (const CancelledError&) {
      cancelled = std::current_exception();
    }
    if (cancelled) {
      co_await st.abandon();
      std::rethrow_exception(cancelled);
    }
    PQexitPipelineMode(conn);
    if (error) st.raise_error(error);
  };
  if (auto t = st.timeout_of(q)) {
    co_await weave::timeout(*t, batch(st, std::move(q.sql), std::move(sets)));
  } else {
    co_await batch(st, std::move(q.sql), std::move(sets));
  }
}

// ---- LISTEN / NOTIFY ---------------------------------------------------------------------------

Coro<void> Connection::add_listener(std::string channel,
                                    std::function<void(const Notification&)> callback) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  const bool first = st.listeners.find(channel) == st.listeners.end();
  st.listeners.emplace(channel, std::move(callback));
  const std::string listen = "LISTEN " + quote_identifier(st.conn, channel);
  if (first) co_await execute(listen);
}

Coro<void> Connection::remove_listener(std::string channel) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  if (st.listeners.erase(channel) == 0) co_return;
  const std::string unlisten = "UNLISTEN " + quote_identifier(st.conn, channel);
  co_await execute(unlisten);
}

// ---- COPY --------------------------------------------------------------------------------------

namespace {
/// Starts a COPY with the simple protocol: true once the server is in the expected copy state.
Coro<void> start_copy(detail::ConnectionState& st, const std::string& sql, ExecStatusType want) {
  st.send(sql, {}, true, {});
  co_await st.flush();
  while (!st.result_ready()) co_await st.wait_io(false);
  detail::ResultPtr r = st.take_result();
  if (!r) throw InterfaceError("COPY: no answer");
  if (PQresultStatus(r->res) != want) {
    if (PQresultStatus(r->res) == PGRES_FATAL_ERROR) {
      co_await st.drain();
      st.raise_error(r);
    }
    throw InterfaceError("COPY: unexpected answer " +
                         std::string(PQresStatus(PQresultStatus(r->res))));
  }
}

/// The command tag at the end of a COPY, or its error.
Coro<std::string> finish_copy(detail::ConnectionState& st) {
  detail::ResultPtr error, last;
  for (;;) {
    while (!st.result_ready()) co_await st.wait_io(false);
    detail::ResultPtr r = st.take_result();
    if (!r) break;
    if (PQresultStatus(r->res) == PGRES_FATAL_ERROR && !error) error = r;
    last = r;
  }
  if (error) st.raise_error(error);
  co_return last ? std::string(PQcmdStatus(last->res)) : std::string();
}

Coro<void> put_copy_data(detail::ConnectionState& st, const std::string& chunk) {
  for (;;) {
    st.check_open();
    int r = PQputCopyData(st.conn, chunk.data(), static_cast<int>(chunk.size()));
    if (r == 1) co_return;
    if (r < 0) st.raise_send_failure();
    co_await st.wait_io(true);
    co_await st.flush();
  }
}
}  // namespace

Coro<std::string> Connection::copy_rows_in(std::string table, std::vector<Params> rows,
                                           std::vector<std::string> columns) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  auto held = co_await st.lock.scoped();
  st.check_open();
  std::string sql = "COPY " + quote_identifier(st.conn, table);
  if (!columns.empty()) {
    sql += " (";
    for (std::size_t i = 0; i < columns.size(); ++i) {
      sql += (i > 0 ? ", " : "") + quote_identifier(st.conn, columns[i]);
    }
    sql += ")";
  }
  sql += " FROM STDIN";
  std::exception_ptr cancelled;
  std::string tag;
  try {
    co_await start_copy(st, sql, PGRES_COPY_IN);
    constexpr std::size_t kChunk = 256 * 1024;
    std::string chunk;
    chunk.reserve(kChunk + 4096);
    for (const Params& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (i > 0) chunk += '\t';
        append_copy_field(chunk, row[i]);
      }
      chunk += '\n';
      if (chunk.size() >= kChunk) {
        co_await put_copy_data(st, chunk);
        chunk.clear();
      }
    }
    if (!chunk.empty()) co_await put_copy_data(st, chunk);
    while (PQputCopyEnd(st.conn, nullptr) == 0) co_await st.wait_io(true);
    co_await st.flush();
    tag = co_await finish_copy(st);
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (cancelled) {
    // Ending the copy with an error makes the server roll the COPY back.
    if (st.lost.empty() && PQputCopyEnd(st.conn, "cancelled") >= 0) {
      co_await st.abandon();
    } else {
      st.mark_lost("the connection was closed: a cancelled COPY could not be stopped");
    }
    std::rethrow_exception(cancelled);
  }
  co_return tag;
}

Coro<std::string> Connection::copy_from_query(std::string query,
                                              std::function<void(std::string_view)> output) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  auto held = co_await st.lock.scoped();
  st.check_open();
  std::exception_ptr cancelled;
  std::string tag;
  try {
    const std::string sql = "COPY (" + query + ") TO STDOUT";
    co_await start_copy(st, sql, PGRES_COPY_OUT);
    for (;;) {
      st.check_open();
      char* buf = nullptr;
      int n = PQgetCopyData(st.conn, &buf, 1);
      if (n > 0) {
        struct Free {
          char* p;
          ~Free() { PQfreemem(p); }
        } free_buf{buf};
        std::string_view line(buf, static_cast<std::size_t>(n));
        if (line.ends_with('\n')) line.remove_suffix(1);
        output(line);
      } else if (n == 0) {
        co_await st.wait_io(false);
      } else {
        break;  // -1: done, -2: an error, which the final result carries
      }
    }
    tag = co_await finish_copy(st);
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (cancelled) {
    // The rows still streaming in cannot be told apart from the next statement's: close.
    st.mark_lost("the connection was closed: a COPY TO was cancelled");
    std::rethrow_exception(cancelled);
  }
  co_return tag;
}

}  // namespace weave::pg
