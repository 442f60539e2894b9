// Connection's larger operations: transactions, executemany in pipeline mode and LISTEN/NOTIFY
// (COPY is in copy.cpp).
#include <cstdint>
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

}  // namespace

std::string detail::quote_identifier(PGconn* conn, const std::string& name) {
  char* q = PQescapeIdentifier(conn, name.c_str(), name.size());
  if (q == nullptr) throw InterfaceError(detail::libpq_message(conn));
  std::string out(q);
  PQfreemem(q);
  return out;
}

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
  detail::ParamSets encoded;
  for (const Params& set : sets) {
    for (const Param& p : set) encoded.add(p);
    encoded.end_set();
  }
  return executemany_sets(std::move(q), std::move(encoded));
}

Coro<void> Connection::executemany_sets(Query q, detail::ParamSets sets) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  auto batch = [](detail::ConnectionState& st, std::string sql,
                  detail::ParamSets sets) -> Coro<void> {
    auto held = co_await st.lock.scoped();
    st.check_open();
    if (sets.ends.empty()) co_return;
    PGconn* conn = st.conn;
    if (PQenterPipelineMode(conn) == 0) st.raise_send_failure();
    // One unnamed statement, parsed once, executed per parameter set, then one sync.
    const std::vector<Oid> types(sets.types.begin(), sets.types.end());
    if (PQsendPrepare(conn, "", sql.c_str(), static_cast<int>(types.size()), types.data()) == 0) {
      st.raise_send_failure();
    }
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    std::size_t begin = 0;
    for (const std::size_t end : sets.ends) {
      const std::size_t n = end - begin;
      if (values.size() < n) {
        values.resize(n);
        lengths.resize(n);
        formats.resize(n);
      }
      for (std::size_t i = 0; i < n; ++i) {
        const detail::ParamSets::Value& v = sets.values[begin + i];
        values[i] = v.length < 0 ? nullptr : sets.bytes.data() + v.offset;
        lengths[i] = v.length < 0 ? 0 : v.length;
        formats[i] = v.binary ? 1 : 0;
      }
      begin = end;
      if (PQsendQueryPrepared(conn, "", static_cast<int>(n), values.data(), lengths.data(),
                              formats.data(), 0) == 0) {
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
        // One result per row: only an error is kept (and wrapped), the others freed at once.
        PGresult* r = PQgetResult(conn);
        if (r == nullptr) continue;
        const ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_FATAL_ERROR && !error) {
          error = detail::ResultPtr(r);
          continue;
        }
        PQclear(r);
        if (s == PGRES_PIPELINE_SYNC) break;
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
  const std::string listen = "LISTEN " + detail::quote_identifier(st.conn, channel);
  if (first) co_await execute(listen);
}

Coro<void> Connection::remove_listener(std::string channel) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  if (st.listeners.erase(channel) == 0) co_return;
  const std::string unlisten = "UNLISTEN " + detail::quote_identifier(st.conn, channel);
  co_await execute(unlisten);
}

}  // namespace weave::pg
