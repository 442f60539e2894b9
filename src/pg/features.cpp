// Connection's larger operations: transactions, executemany in pipeline mode, LISTEN/NOTIFY,
// and COPY in both directions.
#include <bit>
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

// ---- binary COPY -------------------------------------------------------------------------------

constexpr unsigned kBool = 16, kBytea = 17, kName = 19, kInt8 = 20, kInt2 = 21, kInt4 = 23,
                   kText = 25, kJson = 114, kFloat4 = 700, kFloat8 = 701, kBpchar = 1042,
                   kVarchar = 1043, kJsonb = 3802;

bool is_integer(unsigned oid) {
  return oid == kInt2 || oid == kInt4 || oid == kInt8;
}
bool is_textual(unsigned oid) {
  return oid == kText || oid == kVarchar || oid == kBpchar || oid == kName || oid == kJson ||
         oid == kJsonb;
}

/// Whether a parameter of type `param` (as encode() typed it) has a binary encoding for a
/// column of type `column` that stores what the text COPY would.
bool binary_copyable(unsigned column, unsigned param) {
  if (is_textual(column)) return true;  // the value's text is what the column gets
  if (is_integer(column)) return is_integer(param);
  if (column == kFloat4 || column == kFloat8) {
    return is_integer(param) || param == kFloat4 || param == kFloat8;
  }
  if (column == kBool || column == kBytea) return param == column;
  return false;
}

template <class U>
void append_be(std::string& out, U v) {
  char b[sizeof(U)];
  for (std::size_t i = 0; i < sizeof(U); ++i) {
    b[i] = static_cast<char>(static_cast<std::uint64_t>(v) >> (8 * (sizeof(U) - 1 - i)));
  }
  out.append(b, sizeof b);
}

template <class T>
T parsed(const Param& p, std::string_view column) {
  T v{};
  detail::decode(Field{std::string_view(*p.text), 0, column, false}, v);
  return v;
}

/// One field of a binary COPY row: its length, then its binary value for a column of `oid`.
void append_binary_field(std::string& out, const Param& p, unsigned oid, std::string_view column) {
  if (!p.text) {
    append_be<std::uint32_t>(out, 0xffffffffu);
    return;
  }
  switch (oid) {
    case kBool:
      append_be<std::uint32_t>(out, 1);
      out += parsed<bool>(p, column) ? '\1' : '\0';
      return;
    case kInt2:
      append_be<std::uint32_t>(out, 2);
      append_be(out, static_cast<std::uint16_t>(parsed<std::int16_t>(p, column)));
      return;
    case kInt4:
      append_be<std::uint32_t>(out, 4);
      append_be(out, static_cast<std::uint32_t>(parsed<std::int32_t>(p, column)));
      return;
    case kInt8:
      append_be<std::uint32_t>(out, 8);
      append_be(out, static_cast<std::uint64_t>(parsed<std::int64_t>(p, column)));
      return;
    case kFloat4:
      append_be<std::uint32_t>(out, 4);
      append_be(out, std::bit_cast<std::uint32_t>(static_cast<float>(parsed<double>(p, column))));
      return;
    case kFloat8:
      append_be<std::uint32_t>(out, 8);
      append_be(out, std::bit_cast<std::uint64_t>(parsed<double>(p, column)));
      return;
    case kBytea: {
      const Bytes b = parsed<Bytes>(p, column);
      append_be(out, static_cast<std::uint32_t>(b.data.size()));
      out += b.data;
      return;
    }
    case kJsonb:  // version 1, then the text
      append_be(out, static_cast<std::uint32_t>(p.text->size() + 1));
      out += '\1';
      out += *p.text;
      return;
    default:
      append_be(out, static_cast<std::uint32_t>(p.text->size()));
      out += *p.text;
      return;
  }
}

/// The types of the columns a COPY fills (all of the table's, in order, when none are named),
/// read from a query that returns no row. Errors: the server's (no such table or column).
Coro<std::vector<Oid>> copy_column_types(detail::ConnectionState& st, const std::string& sql) {
  st.send(sql, {}, true, {});
  co_await st.flush();
  detail::ResultPtr error, described;
  for (;;) {
    while (!st.result_ready()) co_await st.wait_io(false);
    detail::ResultPtr r = st.take_result();
    if (!r) break;
    if (PQresultStatus(r->res) == PGRES_TUPLES_OK) {
      described = std::move(r);
    } else if (PQresultStatus(r->res) == PGRES_FATAL_ERROR && !error) {
      error = std::move(r);
    }
  }
  if (error) st.raise_error(error);
  std::vector<Oid> types;
  if (described) {
    for (int i = 0; i < PQnfields(described->res); ++i) types.push_back(PQftype(described->res, i));
  }
  co_return types;
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
  std::string target = quote_identifier(st.conn, table), column_list;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    column_list += (i > 0 ? ", " : "") + quote_identifier(st.conn, columns[i]);
  }
  std::exception_ptr cancelled;
  std::string tag;
  bool copying = false, refused = false;
  try {
    // Binary COPY when every column's type has a binary encoder for the values given (the
    // server then parses nothing); the text format otherwise.
    const std::string describe = "SELECT " + (columns.empty() ? std::string("*") : column_list) +
                                 " FROM " + target + " LIMIT 0";
    const std::vector<Oid> types = co_await copy_column_types(st, describe);
    bool binary = !types.empty();
    for (const Params& row : rows) {
      if (!binary) break;
      if (row.size() != types.size()) binary = false;
      for (std::size_t i = 0; binary && i < row.size(); ++i) {
        binary = binary_copyable(types[i], row[i].oid);
      }
    }
    std::string sql = "COPY " + target;
    if (!columns.empty()) sql += " (" + column_list + ")";
    sql += binary ? " FROM STDIN (FORMAT binary)" : " FROM STDIN";
    std::vector<std::string> names(types.size());
    if (binary) {
      for (std::size_t i = 0; i < types.size(); ++i) {
        names[i] = columns.empty() ? std::to_string(i + 1) : columns[i];
      }
    }
    co_await start_copy(st, sql, PGRES_COPY_IN);
    copying = true;
    constexpr std::size_t kChunk = 256 * 1024;
    std::string chunk;
    chunk.reserve(kChunk + 4096);
    if (binary) {
      chunk.append("PGCOPY\n\377\r\n\0", 11);  // signature
      append_be<std::uint32_t>(chunk, 0);      // flags
      append_be<std::uint32_t>(chunk, 0);      // header extension length
    }
    for (const Params& row : rows) {
      if (binary) {
        append_be(chunk, static_cast<std::uint16_t>(row.size()));
        for (std::size_t i = 0; i < row.size(); ++i) {
          append_binary_field(chunk, row[i], types[i], names[i]);
        }
      } else {
        for (std::size_t i = 0; i < row.size(); ++i) {
          if (i > 0) chunk += '\t';
          append_copy_field(chunk, row[i]);
        }
        chunk += '\n';
      }
      if (chunk.size() >= kChunk) {
        co_await put_copy_data(st, chunk);
        chunk.clear();
      }
    }
    if (binary) append_be<std::uint16_t>(chunk, 0xffff);  // trailer
    if (!chunk.empty()) co_await put_copy_data(st, chunk);
    while (PQputCopyEnd(st.conn, nullptr) == 0) co_await st.wait_io(true);
    co_await st.flush();
    tag = co_await finish_copy(st);
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  } catch (const DataError&) {
    if (!copying) throw;
    // A value the binary encoder refused: the COPY is rolled back, the connection stays usable.
    cancelled = std::current_exception();
    refused = true;
  }
  if (cancelled) {
    if (!copying) {  // cancelled while the column types were read
      co_await st.abandon();
      std::rethrow_exception(cancelled);
    }
    // Ending the copy with an error makes the server roll the COPY back.
    if (st.lost.empty() && PQputCopyEnd(st.conn, refused ? "refused" : "cancelled") >= 0) {
      if (refused) {
        try {
          co_await weave::timeout(std::chrono::seconds(10), st.drain());
        } catch (...) {
          st.mark_lost("the connection was closed: a refused COPY could not be ended");
        }
      } else {
        co_await st.abandon();
      }
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
