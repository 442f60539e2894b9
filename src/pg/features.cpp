// Connection's larger operations: transactions, executemany in pipeline mode and LISTEN/NOTIFY
// (COPY is in copy.cpp).
#include <algorithm>
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

namespace {
/// Encoded parameter sets as a source.
class EncodedSets final : public detail::ParamSource {
 public:
  explicit EncodedSets(detail::ParamSets sets) : sets_(std::move(sets)) {
    types = sets_.types;
    for (std::size_t i = 0, begin = 0; i < sets_.ends.size(); begin = sets_.ends[i++]) {
      count = std::max(count, sets_.ends[i] - begin);
    }
  }
  int next(const char** values, int* lengths, int* formats) override {
    if (set_ == sets_.ends.size()) return -1;
    const std::size_t begin = set_ == 0 ? 0 : sets_.ends[set_ - 1], end = sets_.ends[set_];
    ++set_;
    for (std::size_t i = 0; i < end - begin; ++i) {
      const detail::ParamSets::Value& v = sets_.values[begin + i];
      values[i] = v.length < 0 ? nullptr : sets_.bytes.data() + v.offset;
      lengths[i] = v.length < 0 ? 0 : v.length;
      formats[i] = v.binary ? 1 : 0;
    }
    return static_cast<int>(end - begin);  // another count than the first set's: the server's error
  }

 private:
  detail::ParamSets sets_;
  std::size_t set_ = 0;
};

/// The batch: one unnamed statement, parsed once, executed per parameter set, then one sync.
Coro<void> send_batch(detail::ConnectionState& st, std::string sql, detail::ParamSource& sets) {
  auto held = co_await st.lock.scoped();
  st.check_open();
  PGconn* conn = st.conn;
  std::vector<const char*> values(sets.count);
  std::vector<int> lengths(sets.count), formats(sets.count);
  int n = sets.next(values.data(), lengths.data(), formats.data());
  if (n < 0) co_return;
  if (PQenterPipelineMode(conn) == 0) st.raise_send_failure();
  const std::vector<Oid> types(sets.types.begin(), sets.types.end());
  if (PQsendPrepare(conn, "", sql.c_str(), static_cast<int>(types.size()), types.data()) == 0) {
    st.raise_send_failure();
  }
  do {
    if (PQsendQueryPrepared(conn, "", n, values.data(), lengths.data(), formats.data(), 0) == 0) {
      st.raise_send_failure();
    }
    st.queries++;
    n = sets.next(values.data(), lengths.data(), formats.data());
  } while (n >= 0);
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
}
}  // namespace

Coro<void> Connection::executemany_sets(Query q, detail::ParamSets sets) {
  EncodedSets source(std::move(sets));
  co_await executemany_in(std::move(q), source);
}

Coro<void> Connection::executemany_in(Query q, detail::ParamSource& sets) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  if (auto t = st.timeout_of(q)) {
    co_await weave::timeout(*t, send_batch(st, std::move(q.sql), sets));
  } else {
    co_await send_batch(st, std::move(q.sql), sets);
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
