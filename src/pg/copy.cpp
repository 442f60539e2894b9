// COPY in both directions. Rows are encoded a chunk at a time in COPY's binary tuple format
// (see CopyRecords): when the table's columns have the types of the values' kinds each chunk
// goes out as it is; a column of another type that takes the value in binary (an int into an
// int2, a double into a float4, text into jsonb) is converted on the way; anything else makes
// the COPY text.
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
using detail::CopyRecords;
using detail::CopySource;

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

/// The column type whose binary form a kind's values have, exactly (0: none).
unsigned exact_type(CopyRecords::Kind kind) {
  switch (kind) {
    case CopyRecords::kBool:
      return kBool;
    case CopyRecords::kInt2:
      return kInt2;
    case CopyRecords::kInt4:
      return kInt4;
    case CopyRecords::kInt8:
      return kInt8;
    case CopyRecords::kFloat8:
      return kFloat8;
    case CopyRecords::kBytes:
      return kBytea;
    case CopyRecords::kText:
      return 0;
  }
  return 0;
}
bool passes_through(CopyRecords::Kind kind, unsigned column) {
  if (kind == CopyRecords::kText) return is_textual(column) && column != kJsonb;
  return exact_type(kind) == column;
}

/// Whether a value of this kind has a binary encoding for a column of type `column` that stores
/// what the text COPY would.
bool binary_copyable(CopyRecords::Kind kind, unsigned column) {
  switch (kind) {
    case CopyRecords::kBool:
      return column == kBool;
    case CopyRecords::kInt2:
    case CopyRecords::kInt4:
    case CopyRecords::kInt8:
      return is_integer(column) || column == kFloat4 || column == kFloat8;
    case CopyRecords::kFloat8:
      return column == kFloat4 || column == kFloat8;
    case CopyRecords::kText:
      return is_textual(column);
    case CopyRecords::kBytes:
      return column == kBytea;
  }
  return false;
}

/// One value of CopyRecords, read back.
struct CopyValue {
  enum Tag { kNull, kBool, kInteger, kReal, kText, kBytes } tag = kNull;
  bool boolean = false;
  std::int64_t integer = 0;
  double real = 0;
  std::string_view text;
};

/// Reads a chunk's tuples back in order: row() before each row's values.
class CopyReader {
 public:
  CopyReader(const CopyRecords& chunk, const CopySource& source)
      : p_(chunk.data().data()), source_(source) {}
  std::size_t row() {
    std::uint16_t n;
    std::memcpy(&n, p_, sizeof n);
    p_ += sizeof n;
    return __builtin_bswap16(n);
  }
  /// The value of column `i`.
  CopyValue value(std::size_t i) {
    const auto len = static_cast<std::int32_t>(detail::load_be32(p_));
    p_ += 4;
    CopyValue v;
    if (len < 0) return v;
    const char* at = p_;
    p_ += len;
    switch (source_.uniform ? source_.kinds[i] : CopyRecords::kText) {
      case CopyRecords::kBool:
        v.tag = CopyValue::kBool;
        v.boolean = *at != 0;
        break;
      case CopyRecords::kInt2: {
        std::uint16_t u;
        std::memcpy(&u, at, sizeof u);
        v.tag = CopyValue::kInteger;
        v.integer = static_cast<std::int16_t>(__builtin_bswap16(u));
        break;
      }
      case CopyRecords::kInt4:
        v.tag = CopyValue::kInteger;
        v.integer = static_cast<std::int32_t>(detail::load_be32(at));
        break;
      case CopyRecords::kInt8:
        v.tag = CopyValue::kInteger;
        v.integer = static_cast<std::int64_t>(detail::load_be64(at));
        break;
      case CopyRecords::kFloat8:
        v.tag = CopyValue::kReal;
        v.real = detail::load_binary_float8(at);
        break;
      case CopyRecords::kText:
        v.tag = CopyValue::kText;
        v.text = std::string_view(at, static_cast<std::size_t>(len));
        break;
      case CopyRecords::kBytes:
        v.tag = CopyValue::kBytes;
        v.text = std::string_view(at, static_cast<std::size_t>(len));
        break;
    }
    return v;
  }

 private:
  const char* p_;
  const CopySource& source_;
};

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
    case CopyValue::kNull:
      append_be<std::uint32_t>(out, 0xffffffffu);
      return;
    case CopyValue::kBool:
      append_be<std::uint32_t>(out, 1);
      out += v.boolean ? '\1' : '\0';
      return;
    case CopyValue::kInteger:
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
        real.tag = CopyValue::kReal;
        real.real = static_cast<double>(v.integer);
        append_binary_field(out, real, oid, column);
      }
      return;
    case CopyValue::kReal:
      if (oid == kFloat4) {
        if (std::isfinite(v.real) && std::abs(v.real) > std::numeric_limits<float>::max()) {
          out_of_range(column, *detail::to_text(detail::encode(v.real)).text, "float4");
        }
        append_be<std::uint32_t>(out, 4);
        append_be(out, std::bit_cast<std::uint32_t>(static_cast<float>(v.real)));
      } else {
        append_be<std::uint32_t>(out, 8);
        append_be(out, std::bit_cast<std::uint64_t>(v.real));
      }
      return;
    case CopyValue::kText:
    case CopyValue::kBytes:
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

/// One field of a text COPY line.
void append_text_field(std::string& line, const CopyValue& v) {
  switch (v.tag) {
    case CopyValue::kNull:
      line += "\\N";
      return;
    case CopyValue::kBool:
      line += v.boolean ? 't' : 'f';
      return;
    case CopyValue::kInteger: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.integer);
      line.append(buf, end);
      return;
    }
    case CopyValue::kReal:
      line += *detail::to_text(detail::encode(v.real)).text;
      return;
    case CopyValue::kText:
      append_copy_text(line, v.text);
      return;
    case CopyValue::kBytes: {
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

/// The kind a parameter's text stands for, when it reads back as that kind (else kText).
CopyRecords::Kind kind_of(const Param& p) {
  if (p.binary) {  // the bytes are the kind's binary form already
    switch (p.oid) {
      case kBool:
        return CopyRecords::kBool;
      case kInt2:
        return CopyRecords::kInt2;
      case kInt4:
        return CopyRecords::kInt4;
      case kInt8:
        return CopyRecords::kInt8;
      case kFloat8:
        return CopyRecords::kFloat8;
      case kBytea:
        return CopyRecords::kBytes;
      default:
        return CopyRecords::kText;
    }
  }
  const std::string& t = *p.text;
  const char* end = t.data() + t.size();
  if (is_integer(p.oid)) {
    std::int64_t v = 0;
    auto [at, ec] = std::from_chars(t.data(), end, v);
    if (ec != std::errc() || at != end) return CopyRecords::kText;
    if (p.oid == kInt2 && std::in_range<std::int16_t>(v)) return CopyRecords::kInt2;
    if (p.oid == kInt4 && std::in_range<std::int32_t>(v)) return CopyRecords::kInt4;
    return CopyRecords::kInt8;
  }
  if (p.oid == kFloat8) {
    double v = 0;
    auto [at, ec] = std::from_chars(t.data(), end, v);
    return ec == std::errc() && at == end && std::isfinite(v) ? CopyRecords::kFloat8
                                                              : CopyRecords::kText;
  }
  if (p.oid == kBool && (t == "t" || t == "f")) return CopyRecords::kBool;
  if (p.oid == kBytea) return CopyRecords::kBytes;
  return CopyRecords::kText;
}

/// One parameter's value in the binary form of `kind` (the parameter reads back as it).
void put_param(CopyRecords& out, const Param& p, CopyRecords::Kind kind) {
  if (!p.text) {
    detail::put_be32(out.grow(4), 0xffffffffu);
    return;
  }
  if (p.binary) {
    if (kind_of(p) == kind && kind != CopyRecords::kText) {
      detail::copy_write(out.grow(4 + p.text->size()), std::string_view(*p.text));
    } else {
      const Param text = detail::to_text(p);
      detail::copy_write(out.grow(4 + text.text->size()), std::string_view(*text.text));
    }
    return;
  }
  const std::string& t = *p.text;
  std::int64_t i = 0;
  double d = 0;
  switch (kind) {
    case CopyRecords::kBool:
      detail::copy_write(out.grow(5), t == "t");
      return;
    case CopyRecords::kInt2:
      std::from_chars(t.data(), t.data() + t.size(), i);
      detail::copy_write(out.grow(6), static_cast<std::int16_t>(i));
      return;
    case CopyRecords::kInt4:
      std::from_chars(t.data(), t.data() + t.size(), i);
      detail::copy_write(out.grow(8), static_cast<std::int32_t>(i));
      return;
    case CopyRecords::kInt8:
      std::from_chars(t.data(), t.data() + t.size(), i);
      detail::copy_write(out.grow(12), i);
      return;
    case CopyRecords::kFloat8:
      std::from_chars(t.data(), t.data() + t.size(), d);
      detail::copy_write(out.grow(12), d);
      return;
    case CopyRecords::kBytes: {
      Bytes b;
      detail::decode(Field{std::string_view(t), kBytea, "", false}, b);
      detail::copy_write(out.grow(detail::copy_size(b)), b);
      return;
    }
    case CopyRecords::kText:
      detail::copy_write(out.grow(4 + t.size()), std::string_view(t));
      return;
  }
}

/// Encoded parameters as a COPY's rows: a column whose every value reads back as one kind gets
/// that kind (typed parameters keep their binary COPY), any other column kText.
class ParamRows final : public CopySource {
 public:
  explicit ParamRows(const std::vector<Params>& rows) : next_(rows.begin()), end_(rows.end()) {
    if (rows.empty()) return;
    const std::size_t n = rows.front().size();
    std::vector<std::optional<CopyRecords::Kind>> found(n);
    for (const Params& row : rows) {
      if (row.size() != n) uniform = false;
      for (std::size_t i = 0; uniform && i < n; ++i) {
        if (!row[i].text) continue;
        const CopyRecords::Kind k = kind_of(row[i]);
        if (!found[i]) found[i] = k;
        if (*found[i] != k) found[i] = CopyRecords::kText;
      }
    }
    for (const auto& k : found) kinds.push_back(uniform && k ? *k : CopyRecords::kText);
  }
  bool fill(CopyRecords& chunk, std::size_t limit) override {
    for (; next_ != end_ && chunk.size() < limit; ++next_) {
      const Params& row = *next_;
      detail::put_be16(chunk.grow(2), static_cast<std::uint16_t>(row.size()));
      for (std::size_t i = 0; i < row.size(); ++i) {
        put_param(chunk, row[i], uniform ? kinds[i] : CopyRecords::kText);
      }
      ++chunk.rows;
    }
    return next_ != end_;
  }

 private:
  std::vector<Params>::const_iterator next_, end_;
};

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

/// How the rows go out, given the columns' types.
enum class CopyPlan { kAsIs, kConverted, kText };

CopyPlan plan_for(const CopySource& rows, const std::vector<Oid>& types) {
  if (types.empty() || !rows.uniform || rows.kinds.size() != types.size()) return CopyPlan::kText;
  bool as_is = true;
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (!binary_copyable(rows.kinds[i], types[i])) return CopyPlan::kText;
    as_is = as_is && passes_through(rows.kinds[i], types[i]);
  }
  return as_is ? CopyPlan::kAsIs : CopyPlan::kConverted;
}

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

Coro<void> put_copy_data(detail::ConnectionState& st, std::string_view chunk) {
  for (;;) {
    st.check_open();
    int r = PQputCopyData(st.conn, chunk.data(), static_cast<int>(chunk.size()));
    if (r == 1) co_return;
    if (r < 0) st.raise_send_failure();
    co_await st.wait_io(true);
    co_await st.flush();
  }
}

/// A COPY's rows are encoded, and go to libpq, in chunks of about this size: the buffer a
/// connection keeps stays this small whatever the COPY's size; libpq copies each chunk into its
/// output buffer and moves down what the socket did not take, so a bigger one only costs more
/// copying.
constexpr std::size_t kChunk = std::size_t{64} * 1024;
/// The largest chunk buffer a connection keeps for its next COPY (a row can exceed kChunk).
constexpr std::size_t kSpareLimit = std::size_t{16} * 1024 * 1024;
constexpr char kSignature[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";  // + flags, extension

/// The encoded chunk to libpq, in slices of at most kChunk.
Coro<void> put_chunk(detail::ConnectionState& st, std::string_view data) {
  while (!data.empty()) {
    const std::size_t n = std::min(data.size(), kChunk);
    co_await put_copy_data(st, data.substr(0, n));
    data.remove_prefix(n);
  }
}

/// The rows as they are encoded, the signature before them and the trailer after.
Coro<void> send_as_is(detail::ConnectionState& st, CopySource& rows, CopyRecords& chunk) {
  chunk.clear();
  std::memcpy(chunk.grow(19), kSignature, 19);
  for (;;) {
    const bool more = rows.fill(chunk, kChunk);
    if (!more) std::memcpy(chunk.grow(2), "\377\377", 2);
    co_await put_chunk(st, chunk.data());
    chunk.clear();
    if (!more) co_return;
  }
}

/// The rows re-encoded, binary for `types` or text, through a second buffer.
Coro<void> send_converted(detail::ConnectionState& st, CopySource& rows, CopyRecords& chunk,
                          bool binary, const std::vector<Oid>& types,
                          const std::vector<std::string>& names) {
  std::string out;
  out.reserve(kChunk + 4096);
  if (binary) out.append(kSignature, 19);
  for (bool more = true; more;) {
    chunk.clear();
    more = rows.fill(chunk, kChunk);
    CopyReader reader(chunk, rows);
    for (std::size_t r = 0; r < chunk.rows; ++r) {
      const std::size_t n = reader.row();
      if (binary) {
        append_be(out, static_cast<std::uint16_t>(n));
        for (std::size_t i = 0; i < n; ++i) {
          append_binary_field(out, reader.value(i), types[i], names[i]);
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) {
          if (i > 0) out += '\t';
          append_text_field(out, reader.value(i));
        }
        out += '\n';
      }
      if (out.size() >= kChunk) {
        co_await put_copy_data(st, out);
        out.clear();
      }
    }
  }
  chunk.clear();
  if (binary) append_be<std::uint16_t>(out, 0xffff);  // trailer
  if (!out.empty()) co_await put_copy_data(st, out);
}

/// The state, shared for the whole operation (the Connection object may go meanwhile).
std::shared_ptr<detail::ConnectionState> open_state(
    const std::shared_ptr<detail::ConnectionState>& s) {
  if (s == nullptr) throw ConnectionDoesNotExistError("the connection is closed");
  s->check_open();
  return s;
}
}  // namespace

Coro<std::string> Connection::copy_rows_in(std::string table, std::vector<Params> rows,
                                           std::vector<std::string> columns) {
  ParamRows source(rows);
  co_return co_await copy_records_in(std::move(table), source, std::move(columns));
}

Coro<std::string> Connection::copy_records_in(std::string table, detail::CopySource& rows,
                                              std::vector<std::string> columns) {
  const auto shared = open_state(state_);
  detail::ConnectionState& st = *shared;
  auto held = co_await st.lock.scoped();
  st.check_open();
  std::string target = detail::quote_identifier(st.conn, table), column_list;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    column_list += (i > 0 ? ", " : "") + detail::quote_identifier(st.conn, columns[i]);
  }
  std::exception_ptr cancelled;
  std::string tag;
  bool copying = false, refused = false;
  try {
    const std::string describe = "SELECT " + (columns.empty() ? std::string("*") : column_list) +
                                 " FROM " + target + " LIMIT 0";
    const std::vector<Oid> types = co_await copy_column_types(st, describe);
    const CopyPlan plan = plan_for(rows, types);
    std::string sql = "COPY " + target;
    if (!columns.empty()) sql += " (" + column_list + ")";
    sql += plan != CopyPlan::kText ? " FROM STDIN (FORMAT binary)" : " FROM STDIN";
    std::vector<std::string> names(types.size());
    if (plan == CopyPlan::kConverted) {
      for (std::size_t i = 0; i < types.size(); ++i) {
        names[i] = columns.empty() ? std::to_string(i + 1) : columns[i];
      }
    }
    co_await start_copy(st, sql, PGRES_COPY_IN);
    copying = true;
    // The connection's chunk buffer, taken for the COPY (an error drops it).
    CopyRecords chunk = std::exchange(st.spare_copy, CopyRecords{});
    if (plan == CopyPlan::kAsIs) {
      co_await send_as_is(st, rows, chunk);
    } else {
      co_await send_converted(st, rows, chunk, plan == CopyPlan::kConverted, types, names);
    }
    while (PQputCopyEnd(st.conn, nullptr) == 0) co_await st.wait_io(true);
    copying = false;
    co_await st.flush();
    tag = co_await finish_copy(st);
    if (chunk.capacity() <= kSpareLimit) st.spare_copy = std::move(chunk);
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  } catch (...) {
    if (!copying) throw;
    // A value the encoders refused (or a row that could not be read): the COPY is rolled
    // back, the connection stays usable.
    cancelled = std::current_exception();
    refused = true;
  }
  if (cancelled) {
    if (!copying) {  // before the COPY began, or once its end was sent: as any statement
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
