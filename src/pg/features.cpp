// Connection's larger operations: transactions, executemany in pipeline mode, LISTEN/NOTIFY,
// and COPY in both directions.
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
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

/// Text as COPY's text format writes it: runs without a character to escape are appended whole.
void append_copy_text(std::string& line, std::string_view v) {
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

// ---- COPY's two formats ------------------------------------------------------------------------

using detail::CopyRecords;

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

/// One value of CopyRecords.
struct CopyValue {
  CopyRecords::Tag tag = CopyRecords::kNull;
  bool boolean = false;
  std::int64_t integer = 0;
  double real = 0;
  std::string_view text;
};

/// Reads CopyRecords' buffer back in order: row() before each row's values.
class CopyReader {
 public:
  explicit CopyReader(const std::string& data) : p_(data.data()) {}
  std::size_t row() {
    std::uint16_t n;
    std::memcpy(&n, p_, sizeof n);
    p_ += sizeof n;
    return n;
  }
  CopyValue value() {
    CopyValue v;
    v.tag = static_cast<CopyRecords::Tag>(*p_++);
    switch (v.tag) {
      case CopyRecords::kNull:
        break;
      case CopyRecords::kBool:
        v.boolean = *p_++ != 0;
        break;
      case CopyRecords::kInteger:
        std::memcpy(&v.integer, p_, sizeof v.integer);
        p_ += sizeof v.integer;
        break;
      case CopyRecords::kReal:
        std::memcpy(&v.real, p_, sizeof v.real);
        p_ += sizeof v.real;
        break;
      case CopyRecords::kText:
      case CopyRecords::kBytes: {
        std::uint32_t n;
        std::memcpy(&n, p_, sizeof n);
        p_ += sizeof n;
        v.text = std::string_view(p_, n);
        p_ += n;
        break;
      }
    }
    return v;
  }

 private:
  const char* p_;
};

/// Whether a value of this kind has a binary encoding for a column of type `column` that stores
/// what the text COPY would.
bool binary_copyable(unsigned column, CopyRecords::Tag tag) {
  switch (tag) {
    case CopyRecords::kNull:
      return true;
    case CopyRecords::kBool:
      return column == kBool;
    case CopyRecords::kInteger:
      return is_integer(column) || column == kFloat4 || column == kFloat8;
    case CopyRecords::kReal:
      return column == kFloat4 || column == kFloat8;
    case CopyRecords::kText:
      return is_textual(column);
    case CopyRecords::kBytes:
      return column == kBytea;
  }
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

[[noreturn]] void out_of_range(std::string_view column, const std::string& value,
                               const char* type) {
  throw DataError("column \"" + std::string(column) + "\": " + value + " is out of the range of " +
                  type);
}

/// One field of a binary COPY row, for a column of type `oid` that binary_copyable accepted.
void append_binary_field(std::string& out, const CopyValue& v, unsigned oid,
                         std::string_view column) {
  switch (v.tag) {
    case CopyRecords::kNull:
      append_be<std::uint32_t>(out, 0xffffffffu);
      return;
    case CopyRecords::kBool:
      append_be<std::uint32_t>(out, 1);
      out += v.boolean ? '\1' : '\0';
      return;
    case CopyRecords::kInteger:
      if (oid == kInt2) {
        if (!std::in_range<std::int16_t>(v.integer)) {
          out_of_range(column, std::to_string(v.integer), "int2");
        }
        append_be<std::uint32_t>(out, 2);
        append_be(out, static_cast<std::uint16_t>(v.integer));
      } else if (oid == kInt4) {
        if (!std::in_range<std::int32_t>(v.integer)) {
          out_of_range(column, std::to_string(v.integer), "int4");
        }
        append_be<std::uint32_t>(out, 4);
        append_be(out, static_cast<std::uint32_t>(v.integer));
      } else if (oid == kInt8) {
        append_be<std::uint32_t>(out, 8);
        append_be(out, static_cast<std::uint64_t>(v.integer));
      } else {
        CopyValue real = v;
        real.tag = CopyRecords::kReal;
        real.real = static_cast<double>(v.integer);
        append_binary_field(out, real, oid, column);
      }
      return;
    case CopyRecords::kReal:
      if (oid == kFloat4) {
        if (std::isfinite(v.real) && std::abs(v.real) > std::numeric_limits<float>::max()) {
          out_of_range(column, *detail::encode(v.real).text, "float4");
        }
        append_be<std::uint32_t>(out, 4);
        append_be(out, std::bit_cast<std::uint32_t>(static_cast<float>(v.real)));
      } else {
        append_be<std::uint32_t>(out, 8);
        append_be(out, std::bit_cast<std::uint64_t>(v.real));
      }
      return;
    case CopyRecords::kText:
    case CopyRecords::kBytes:
      if (oid == kJsonb) {  // version 1, then the text
        append_be(out, static_cast<std::uint32_t>(v.text.size() + 1));
        out += '\1';
      } else {
        append_be(out, static_cast<std::uint32_t>(v.text.size()));
      }
      out += v.text;
      return;
  }
}

/// One field of a text COPY line.
void append_text_field(std::string& line, const CopyValue& v) {
  switch (v.tag) {
    case CopyRecords::kNull:
      line += "\\N";
      return;
    case CopyRecords::kBool:
      line += v.boolean ? 't' : 'f';
      return;
    case CopyRecords::kInteger: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.integer);
      line.append(buf, end);
      return;
    }
    case CopyRecords::kReal:
      line += *detail::encode(v.real).text;
      return;
    case CopyRecords::kText:
      append_copy_text(line, v.text);
      return;
    case CopyRecords::kBytes: {
      static constexpr char kHex[] = "0123456789abcdef";
      line += "\\\\x";  // bytea's hex input, its backslash escaped for COPY
      for (unsigned char c : v.text) {
        line += kHex[c >> 4];
        line += kHex[c & 15];
      }
      return;
    }
  }
}

/// Encoded parameters as CopyRecords: typed ones as their values where their text reads back.
CopyRecords records_of(const std::vector<Params>& rows) {
  CopyRecords out;
  for (const Params& row : rows) {
    out.begin_row(row.size());
    for (const Param& p : row) {
      if (!p.text) {
        out.put_null();
        continue;
      }
      const std::string& t = *p.text;
      const char* end = t.data() + t.size();
      if (is_integer(p.oid)) {
        std::int64_t v = 0;
        auto [at, ec] = std::from_chars(t.data(), end, v);
        if (ec == std::errc() && at == end) {
          out.put_integer(v);
          continue;
        }
      } else if (p.oid == kFloat8) {
        double v = 0;
        auto [at, ec] = std::from_chars(t.data(), end, v);
        if (ec == std::errc() && at == end && std::isfinite(v)) {
          out.put_real(v);
          continue;
        }
      } else if (p.oid == kBool && (t == "t" || t == "f")) {
        out.put_bool(t == "t");
        continue;
      } else if (p.oid == kBytea) {
        Bytes b;
        detail::decode(Field{std::string_view(t), kBytea, "", false}, b);
        out.put_text(b.data, CopyRecords::kBytes);
        continue;
      }
      out.put_text(t);
    }
  }
  return out;
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
  return copy_records_in(std::move(table), records_of(rows), std::move(columns));
}

Coro<std::string> Connection::copy_records_in(std::string table, detail::CopyRecords rows,
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
    CopyReader scan(rows.data);
    for (std::size_t r = 0; binary && r < rows.rows; ++r) {
      const std::size_t n = scan.row();
      if (n != types.size()) binary = false;
      for (std::size_t i = 0; binary && i < n; ++i)
        binary = binary_copyable(types[i], scan.value().tag);
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
    CopyReader reader(rows.data);
    for (std::size_t r = 0; r < rows.rows; ++r) {
      const std::size_t n = reader.row();
      if (binary) {
        append_be(chunk, static_cast<std::uint16_t>(n));
        for (std::size_t i = 0; i < n; ++i) {
          append_binary_field(chunk, reader.value(), types[i], names[i]);
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) {
          if (i > 0) chunk += '\t';
          append_text_field(chunk, reader.value());
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
