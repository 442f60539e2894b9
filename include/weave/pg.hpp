#pragma once
/// \file pg.hpp
/// weave::pg: a PostgreSQL client in asyncpg's roles (connect, fetch/fetchrow/fetchval/execute,
/// executemany, transaction, Pool, LISTEN/NOTIFY, COPY) on libpq's asynchronous API. The loop
/// drives libpq's socket; nothing that can block runs on the loop thread. This header does not
/// include libpq's: it declares the one libpq function a row's field read calls inline.
///
///   weave::pg::Connection conn = co_await weave::pg::connect("postgresql://u@host/db");
///   int n = co_await conn.fetchval<int>("select $1::int + 1", 41);

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/detail/pg_codec.hpp"

// libpq's PQgetvalue, as libpq-fe.h declares it (PGresult is `struct pg_result`): a field read
// is this one call, as in a C client, with nothing put aside per field beforehand.
extern "C" {
struct pg_result;
char* PQgetvalue(const pg_result* res, int tup_num, int field_num);
}

namespace weave::pg {

/// An error the server reported (asyncpg's PostgresError); sqlstate() tells which (e.g. "42P01"
/// for an undefined table, "57014" for a cancelled statement).
class PostgresError : public std::runtime_error {
 public:
  PostgresError(std::string sqlstate, std::string message, std::string detail, std::string hint,
                std::string severity);
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& detail() const noexcept { return detail_; }
  const std::string& hint() const noexcept { return hint_; }
  const std::string& severity() const noexcept { return severity_; }

 private:
  std::string sqlstate_, message_, detail_, hint_, severity_;
};
/// The connection could not be opened (refused, bad conninfo, authentication, timeout).
class ConnectionFailureError : public InterfaceError {
 public:
  using InterfaceError::InterfaceError;
};
/// The connection is gone: closed by the client, or lost (the server died, the network broke).
/// A connection that raised this is closed for good.
class ConnectionDoesNotExistError : public InterfaceError {
 public:
  using InterfaceError::InterfaceError;
};

namespace detail {
struct ResultData;
struct ConnectionState;
struct PoolState;
/// What a row's field needs of its column, read once per result.
struct Column {
  /// `width` of a column whose values' lengths are asked of the library, one by one.
  static constexpr int kAskLength = 0;
  /// `width` of a column whose values are text without NUL bytes (name, text, ...): their
  /// length is their terminator's position (the library terminates every value).
  static constexpr int kTerminated = -1;
  /// What Row::get reads a binary column's values as without a Field: the types of one form
  /// (a fixed size, or text), each read one way. none for every other column.
  enum class Kind : unsigned char {
    none,
    boolean,
    character,
    int2,
    int4,
    int8,
    oid,
    float4,
    float8,
    text
  };
  /// The integer type of an int2, int4, int8 or oid kind (they are in BinaryInteger's order).
  static constexpr BinaryInteger integer_of(Kind k) noexcept {
    return static_cast<BinaryInteger>(static_cast<unsigned>(k) - static_cast<unsigned>(Kind::int2));
  }
  unsigned oid = 0;
  bool binary = false;
  Kind kind = Kind::none;
  /// A binary type's fixed size (int4: 4, ...), kTerminated or kAskLength.
  int width = kAskLength;
  std::string_view name;
};
static_assert(Column::integer_of(Column::Kind::int2) == BinaryInteger::int2 &&
              Column::integer_of(Column::Kind::int4) == BinaryInteger::int4 &&
              Column::integer_of(Column::Kind::int8) == BinaryInteger::int8 &&
              Column::integer_of(Column::Kind::oid) == BinaryInteger::oid);

/// One result as its rows see it: the references to it (its rows and the library's handles),
/// the library's result, and, once its rows are handed out, its columns. Not atomic: a
/// result's rows are counted on one thread at a time (see Row).
struct ResultCount {
  mutable std::size_t refs = 0;
  pg_result* res = nullptr;
  const Column* columns = nullptr;
  std::size_t ncolumns = 0;
  /// Where libpq points every NULL of this result (and nothing else but PQsetvalue's empty
  /// values): a value elsewhere is not NULL, one here is asked. nullptr when that is not known
  /// of this libpq, and every value is asked.
  const char* null_value = nullptr;
};
/// Frees the result once its last reference went.
void free_result(const ResultCount* result) noexcept;
/// The length of a field of a kAskLength column.
std::size_t field_length(const ResultCount* result, int row, std::size_t column) noexcept;
/// Whether a field whose value is at ResultCount::null_value (or any, when that is unknown) is
/// NULL.
bool field_is_null(const ResultCount* result, int row, std::size_t column) noexcept;
[[noreturn]] void no_column(std::size_t index);
}  // namespace detail

namespace detail {
/// The element type of an array parameter sent in the binary format, and that array's type.
template <class T>
struct BinaryElement {
  static constexpr unsigned oid = 0, array_oid = 0;  // none: the text format
};
template <class T>
requires(CopyKindOf<T>::direct) struct BinaryElement<T> {
  static constexpr CopyRecords::Kind kind = CopyKindOf<T>::value;
  static constexpr unsigned oid = kind == CopyRecords::kBool     ? 16
                                  : kind == CopyRecords::kInt2   ? 21
                                  : kind == CopyRecords::kInt4   ? 23
                                  : kind == CopyRecords::kInt8   ? 20
                                  : kind == CopyRecords::kFloat8 ? 701
                                  : kind == CopyRecords::kBytes  ? 17
                                                                 : 0;
  static constexpr unsigned array_oid = oid == 16    ? 1000
                                        : oid == 21  ? 1005
                                        : oid == 23  ? 1007
                                        : oid == 20  ? 1016
                                        : oid == 701 ? 1022
                                        : oid == 17  ? 1001
                                                     : 0;
};

/// A statement's parameter: as encode(), and a vector of integers, doubles, bools or bytes (or
/// their optionals, NULL elements) in PostgreSQL's binary array format, of the same array type
/// the text format names, written in one pass (text elements keep the text format, whose
/// array type the server infers).
template <class T>
Param encode_param(const T& v) {
  return encode(v);
}
template <class T>
requires(BinaryElement<T>::array_oid != 0) Param encode_param(const std::vector<T>& v) {
  constexpr std::size_t kHeader = 20;  // ndim, flags, element type; size and lower bound
  std::size_t size = v.empty() ? 12 : kHeader;
  bool nulls = false;
  for (const T& e : v) {
    size += copy_size(e);
    if constexpr (!CopyDirect<T>) nulls = nulls || !e;
  }
  std::string bytes(size, '\0');
  char* p = put_be32(bytes.data(), v.empty() ? 0 : 1);
  p = put_be32(p, nulls ? 1 : 0);
  p = put_be32(p, BinaryElement<T>::oid);
  if (!v.empty()) {
    p = put_be32(p, static_cast<std::uint32_t>(v.size()));
    p = put_be32(p, 1);
  }
  for (const T& e : v) p = copy_write(p, e);
  return Param{std::move(bytes), BinaryElement<T>::array_oid, true};
}
/// NULL, or the vector as encode_param sends it.
template <class T>
Param encode_param(const std::optional<std::vector<T>>& v) {
  if (v) return encode_param(*v);
  return Param{std::nullopt, BinaryElement<T>::array_oid, false};
}
/// One parameter of an executemany set, as ParamSets::add(encode(v)) adds it; the kinds COPY
/// writes directly (integers, double, bool, bytes, text) straight into the set's buffer.
template <class T>
void add_param(ParamSets& sets, const T& v) {
  if constexpr (CopyDirect<T>) {
    if (sets.ends.empty()) sets.types.push_back(BinaryElement<T>::oid);
    ParamSets::Value value;
    value.offset = sets.bytes.size();
    value.length = static_cast<int>(CopyCodec<T>::size(v));
    value.binary = CopyCodec<T>::kind != CopyRecords::kText;
    sets.bytes.resize(value.offset + static_cast<std::size_t>(value.length) + 1);
    char* end = CopyCodec<T>::write(sets.bytes.data() + value.offset, v);
    *end = '\0';  // libpq reads a text value up to its NUL
    sets.values.push_back(value);
  } else {
    sets.add(encode(v));
  }
}
template <class T>
requires CopyDirect<T>
void add_param(ParamSets& sets, const std::optional<T>& v) {
  if (v) return add_param(sets, *v);
  if (sets.ends.empty()) sets.types.push_back(BinaryElement<T>::oid);
  sets.values.push_back(ParamSets::Value{});
}
/// The type a parameter of a direct kind is sent as (0: text, which the server infers).
template <class T>
struct DirectOid {
  static constexpr unsigned value = BinaryElement<T>::oid;
};
template <class T>
struct DirectOid<std::optional<T>> : DirectOid<T> {};
/// Where executemany's parameter sets come from, read as the batch is sent (asyncpg iterates its
/// args the same way): the parameter types, and each set as libpq takes it.
class ParamSource {
 public:
  std::vector<unsigned> types;  ///< per parameter; 0: the server infers it (text)
  std::size_t count = 0;        ///< the most parameters of a set
  /// The next set into `values`, `lengths` and `formats` (room for `count` each), valid until
  /// the next call: its parameter count, -1 when none is left. A value may point into the
  /// source's rows (a std::string's NUL-terminated text, a Bytes' bytes) or into its scratch.
  virtual int next(const char** values, int* lengths, int* formats) = 0;

 protected:
  ~ParamSource() = default;
};

/// One value of a direct kind as libpq takes it: numbers in their binary form in `scratch`,
/// text and bytes where they are (text needs its NUL: a string_view is copied into `text`,
/// reserved beforehand so that earlier values stay put).
template <class T>
void bind_direct(const T& v, const char*& value, int& length, int& format, char*& scratch,
                 std::string& text) noexcept {
  if constexpr (std::is_same_v<T, std::string>) {
    value = v.c_str();
    length = static_cast<int>(v.size());
    format = 0;
  } else if constexpr (std::is_same_v<T, std::string_view>) {
    const std::size_t at = text.size();
    text.append(v);
    text += '\0';
    value = text.data() + at;
    length = static_cast<int>(v.size());
    format = 0;
  } else if constexpr (CopyCodec<T>::kind == CopyRecords::kText) {  // const char*, char[N]
    if constexpr (std::is_pointer_v<T>) {
      value = v;  // nullptr: NULL
    } else {
      value = &v[0];
    }
    length = 0;  // libpq reads a text value up to its NUL
    format = 0;
  } else if constexpr (std::is_same_v<T, Bytes>) {
    value = v.data.data();
    length = static_cast<int>(v.data.size());
    format = 1;
  } else {
    char* end = CopyCodec<T>::write(scratch, v);
    value = scratch;
    length = static_cast<int>(end - scratch);
    format = 1;
    scratch = end;
  }
}
template <class T>
void bind_direct(const std::optional<T>& v, const char*& value, int& length, int& format,
                 char*& scratch, std::string& text) noexcept {
  if (v) return bind_direct(*v, value, length, format, scratch, text);
  value = nullptr;
  length = 0;
  format = 0;
}
template <class T>
std::size_t text_scratch_size(const T&) noexcept {
  return 0;
}
inline std::size_t text_scratch_size(std::string_view v) noexcept {
  return v.size() + 1;
}
inline std::size_t text_scratch_size(const std::optional<std::string_view>& v) noexcept {
  return v ? v->size() + 1 : 0;
}

/// The parameter sets of a vector of tuples of direct kinds, as HeldRows holds them, each value
/// bound where it is.
template <class... A>
class ParamTuples final : public ParamSource {
 public:
  explicit ParamTuples(HeldRows<std::tuple<A...>> rows) : rows_(std::move(rows)) {
    types = {DirectOid<std::remove_cvref_t<A>>::value...};
    count = sizeof...(A);
  }

  int next(const char** values, int* lengths, int* formats) override {
    if (rows_.next == rows_.end) return -1;
    const std::tuple<A...>& row = *rows_.next++;
    text_.clear();
    text_.reserve(std::apply(
        [](const auto&... v) { return (std::size_t{0} + ... + text_scratch_size(v)); }, row));
    char* scratch = numbers_;
    std::size_t i = 0;
    std::apply(
        [&](const auto&... v) {
          ((bind_direct(v, values[i], lengths[i], formats[i], scratch, text_), ++i), ...);
        },
        row);
    return static_cast<int>(sizeof...(A));
  }

 private:
  HeldRows<std::tuple<A...>> rows_;
  char numbers_[8 * sizeof...(A) + 1] = {};  ///< the widest binary number is 8 bytes
  std::string text_;
};

template <class... A>
Params encode_params(const A&... args) {
  Params params;
  params.reserve(sizeof...(A));
  (params.push_back(encode_param(args)), ...);
  return params;
}
}  // namespace detail

/// One row of a result. Cheap to copy: the rows of one result share it, counted without atomic
/// operations (a result of 1,000 rows would otherwise pay 2,000 of them). Like a Future, a
/// result's rows are not thread-safe: copy and destroy the rows of one result on one thread at
/// a time (moving all of them to another thread, or reading them there by reference, is fine).
class Row {
 public:
  /// Takes over one reference the caller counted for it.
  Row(const detail::ResultCount* result, int row) noexcept : result_(result), row_(row) {}
  Row(const Row& o) noexcept : result_(o.result_), row_(o.row_) {
    if (result_ != nullptr) ++result_->refs;
  }
  Row(Row&& o) noexcept : result_(std::exchange(o.result_, nullptr)), row_(o.row_) {}
  Row& operator=(Row o) noexcept {
    std::swap(result_, o.result_);
    row_ = o.row_;
    return *this;
  }
  ~Row() {
    if (result_ != nullptr && --result_->refs == 0) detail::free_result(result_);
  }

  std::size_t size() const noexcept;
  std::string_view column_name(std::size_t index) const;
  /// The index of the column `name`. Errors: std::out_of_range when there is none.
  std::size_t index_of(std::string_view name) const;
  bool is_null(std::size_t index) const;
  /// The raw field; index out of range throws std::out_of_range. Inline: it runs once per field
  /// read.
  Field field(std::size_t index) const {
    const detail::ResultCount& r = *result_;
    if (index >= r.ncolumns) detail::no_column(index);
    const detail::Column& column = r.columns[index];
    Field f;
    f.oid = column.oid;
    f.column = column.name;
    f.binary = column.binary;
    const char* value = value_at(index);
    if (value == nullptr) return f;
    if (column.width > 0) {
      f.text = std::string_view(value, static_cast<std::size_t>(column.width));
    } else if (column.width == detail::Column::kTerminated) {
      f.text = std::string_view(value);
    } else {
      f.text = std::string_view(value, detail::field_length(result_, row_, index));
    }
    return f;
  }

  /// The value converted to T; NULL only into std::optional. Errors: DataError (NULL into a
  /// non-optional, text that is no T), std::out_of_range (no such column).
  template <class T, std::integral I>
  T get(I index) const {
    T out{};
    if (direct(static_cast<std::size_t>(index), out)) return out;
    detail::decode(field(static_cast<std::size_t>(index)), out);
    return out;
  }
  template <class T>
  T get(std::string_view name) const {
    return get<T>(index_of(name));
  }
  template <class T>
  T get(const char* name) const {
    return get<T>(index_of(name));
  }

 private:
  /// The field's bytes, nullptr for NULL; `index` is in range.
  const char* value_at(std::size_t index) const noexcept {
    const detail::ResultCount& r = *result_;
    const char* v = PQgetvalue(r.res, row_, static_cast<int>(index));
    if ((v == r.null_value || r.null_value == nullptr) &&
        detail::field_is_null(result_, row_, index)) {
      return nullptr;
    }
    return v;
  }
  /// Whether direct() reads a column of `kind` into a T.
  template <class T>
  static constexpr bool reads(detail::Column::Kind kind) noexcept {
    using Kind = detail::Column::Kind;
    if constexpr (std::is_same_v<T, bool>) {
      return kind == Kind::boolean;
    } else if constexpr (std::is_same_v<T, char>) {
      return kind == Kind::character;
    } else if constexpr (std::is_integral_v<T> && sizeof(T) > 1) {
      return kind >= Kind::int2 && kind <= Kind::oid;
    } else if constexpr (std::is_same_v<T, double>) {
      return kind == Kind::float8;
    } else if constexpr (std::is_same_v<T, float>) {
      return kind == Kind::float4;
    } else if constexpr (std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>) {
      return kind == Kind::text;
    } else {
      return false;
    }
  }
  /// A non-NULL value of a column whose kind reads() accepts, straight into `out`, without a
  /// Field; false for anything else (an integer out of range for T too), which decode() then
  /// reads or reports. The fewest tests a checked read can make: the column, its kind, the one
  /// libpq call and the NULL test.
  template <class T>
  bool direct(std::size_t index, T& out) const {
    using Kind = detail::Column::Kind;
    const detail::ResultCount& r = *result_;
    if (index >= r.ncolumns) return false;
    const Kind kind = r.columns[index].kind;
    if (!reads<T>(kind)) return false;
    const char* p = PQgetvalue(r.res, row_, static_cast<int>(index));
    if (p == result_->null_value) return false;  // NULL, or a value that field() tells apart
    if constexpr (std::is_same_v<T, bool>) {
      out = *p != 0;
    } else if constexpr (std::is_same_v<T, char>) {
      out = *p;
    } else if constexpr (std::is_integral_v<T> && sizeof(T) > 1) {
      const detail::BinaryInteger type = detail::Column::integer_of(kind);
      return detail::store_in_range(detail::load_binary_integer(type, p), out);
    } else if constexpr (std::is_same_v<T, double>) {
      out = detail::load_binary_float8(p);
    } else if constexpr (std::is_same_v<T, float>) {
      out = detail::load_binary_float4(p);
    } else if constexpr (std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>) {
      out = T(p);
    } else {
      return false;
    }
    return true;
  }
  const detail::ResultCount* result_;
  int row_;
};

/// A statement with per-call options; a plain string converts to one.
struct Query {
  Query(std::string_view text) : sql(text) {}    // NOLINT: implicit on purpose
  Query(const char* text) : sql(text) {}         // NOLINT
  Query(const std::string& text) : sql(text) {}  // NOLINT
  Query(std::string_view text, Clock::duration timeout) : sql(text), timeout(timeout) {}
  std::string sql;
  /// Cancels the statement on the server and raises TimeoutError when it runs longer; the
  /// connection's command_timeout when unset.
  std::optional<Clock::duration> timeout;
};

struct ConnectOptions {
  /// For the whole connection set-up (DNS, TCP, TLS, authentication). TimeoutError when over.
  std::optional<Clock::duration> timeout = std::chrono::seconds(60);
  /// Default Query::timeout of every statement on this connection.
  std::optional<Clock::duration> command_timeout;
  /// Prepared statements kept per connection, least recently used evicted (0: none kept).
  std::size_t statement_cache_size = 100;
};

enum class IsolationLevel { read_committed, repeatable_read, serializable, read_uncommitted };
struct TransactionOptions {
  std::optional<IsolationLevel> isolation;
  bool readonly = false;
  bool deferrable = false;
};

/// A NOTIFY delivered on a channel this connection listens to.
struct Notification {
  int pid = 0;
  std::string channel;
  std::string payload;
};

/// A statement prepared by Connection::prepare (asyncpg's PreparedStatement): parsed once, its
/// parameter types inferred by the server, run by name as often as needed on its connection.
class PreparedStatement {
 public:
  PreparedStatement(std::shared_ptr<detail::ConnectionState> state, std::string name,
                    std::string query) noexcept
      : state_(std::move(state)), name_(std::move(name)), query_(std::move(query)) {}
  template <class... A>
  Coro<std::vector<Row>> fetch(const A&... args) {
    return fetch_params(detail::encode_params(args...));
  }
  template <class... A>
  Coro<std::optional<Row>> fetchrow(const A&... args) {
    return fetchrow_params(detail::encode_params(args...));
  }
  template <class T, class... A>
  Coro<T> fetchval(const A&... args) {
    return value_of<T>(fetchrow_params(detail::encode_params(args...)));
  }
  template <class... A>
  Coro<std::string> execute(const A&... args) {
    return execute_params(detail::encode_params(args...));
  }
  Coro<std::vector<Row>> fetch_params(Params params);
  Coro<std::optional<Row>> fetchrow_params(Params params);
  Coro<std::string> execute_params(Params params);
  const std::string& get_name() const noexcept { return name_; }
  const std::string& get_query() const noexcept { return query_; }

 private:
  template <class T>
  static Coro<T> value_of(Coro<std::optional<Row>> row) {
    std::optional<Row> r = co_await std::move(row);
    if (!r) throw DataError("fetchval: the query returned no row");
    co_return r->get<T>(0);
  }
  std::shared_ptr<detail::ConnectionState> state_;
  std::string name_, query_;
};

class Connection;
using TransactionBody = std::function<Coro<void>(Connection&)>;

/// One server connection (asyncpg.Connection). Statements on one connection run one after the
/// other; a Pool runs them side by side. Cheap to move; not copyable.
class Connection {
 public:
  Connection() = default;
  explicit Connection(std::shared_ptr<detail::ConnectionState> state) noexcept
      : state_(std::move(state)) {}
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  ~Connection();

  /// Every row. Parameters are $1, $2, ... in the order given.
  template <class... A>
  Coro<std::vector<Row>> fetch(Query q, const A&... args) {
    return fetch_params(std::move(q), detail::encode_params(args...));
  }
  /// The first row, nullopt when there is none.
  template <class... A>
  Coro<std::optional<Row>> fetchrow(Query q, const A&... args) {
    return fetchrow_params(std::move(q), detail::encode_params(args...));
  }
  /// The first column of the first row. Errors: DataError when there is no row.
  template <class T, class... A>
  Coro<T> fetchval(Query q, const A&... args) {
    return fetchval_of<T>(fetchrow_params(std::move(q), detail::encode_params(args...)));
  }
  /// The command tag ("INSERT 0 1"). Without arguments the simple protocol runs, so `sql` may
  /// hold several statements.
  template <class... A>
  Coro<std::string> execute(Query q, const A&... args) {
    return execute_params(std::move(q), detail::encode_params(args...), sizeof...(A) == 0);
  }
  /// Runs `sql` once per parameter set in one pipeline: one round trip for the batch. Sets of
  /// direct kinds (integers, double, bool, strings, bytes, their optionals) are read as the
  /// batch is sent: a vector passed as an lvalue must stay alive and unchanged until the call
  /// is done; one passed as an rvalue is moved into the operation. Others are encoded at once.
  template <class... A>
  Coro<void> executemany(Query q, const std::vector<std::tuple<A...>>& rows) {
    if constexpr ((detail::CopyKindOf<std::remove_cvref_t<A>>::direct && ...)) {
      return executemany_from(std::move(q), detail::ParamTuples<A...>(rows));
    } else {
      detail::ParamSets sets;
      sets.values.reserve(rows.size() * sizeof...(A));
      sets.ends.reserve(rows.size());
      for (const auto& r : rows) {
        std::apply([&sets](const auto&... a) { (detail::add_param(sets, a), ...); }, r);
        sets.end_set();
        if (sets.ends.size() == 1) sets.bytes.reserve(sets.bytes.size() * rows.size());
      }
      return executemany_sets(std::move(q), std::move(sets));
    }
  }
  template <class... A>
  requires(detail::CopyKindOf<std::remove_cvref_t<A>>::direct&&...) Coro<void> executemany(
      Query q, std::vector<std::tuple<A...>>&& rows) {
    return executemany_from(std::move(q), detail::ParamTuples<A...>(std::move(rows)));
  }
  /// The batch of a source that lives in this coroutine's frame.
  template <class Source>
  Coro<void> executemany_from(Query q, Source sets) {
    co_return co_await executemany_in(std::move(q), sets);
  }
  /// As executemany, from encoded parameter sets.
  Coro<void> executemany_sets(Query q, detail::ParamSets sets);
  /// As executemany, from a source read while the batch is sent.
  Coro<void> executemany_in(Query q, detail::ParamSource& sets);

  Coro<std::vector<Row>> fetch_params(Query q, Params params);
  Coro<std::optional<Row>> fetchrow_params(Query q, Params params);
  Coro<std::string> execute_params(Query q, Params params, bool simple = false);
  Coro<void> executemany_params(Query q, std::vector<Params> sets);

  /// Prepares `q` by name, outside the statement cache; it lives as long as the connection.
  /// Errors: PostgresError (e.g. a syntax error).
  Coro<PreparedStatement> prepare(Query q);

  /// BEGIN (with `options`), the body, COMMIT; ROLLBACK when the body throws or is cancelled,
  /// and the exception goes on. Nested calls (inside a transaction) use a SAVEPOINT instead.
  Coro<void> transaction(TransactionBody body, TransactionOptions options = {});

  /// LISTEN `channel`; `callback` runs on the loop for each notification.
  Coro<void> add_listener(std::string channel, std::function<void(const Notification&)> callback);
  /// UNLISTEN `channel` and drop its callbacks.
  Coro<void> remove_listener(std::string channel);

  /// COPY `table` FROM STDIN with the rows given; returns the command tag ("COPY 3"). The rows
  /// are read as the COPY sends them, a chunk at a time (as asyncpg iterates its records): a
  /// vector passed as an lvalue must stay alive and unchanged until the COPY is done; one
  /// passed as an rvalue is moved into the operation.
  template <class... A>
  Coro<std::string> copy_records_to_table(std::string table,
                                          const std::vector<std::tuple<A...>>& records,
                                          std::vector<std::string> columns = {}) {
    return copy_from_source(std::move(table), detail::CopyTuples<A...>(records),
                            std::move(columns));
  }
  template <class... A>
  Coro<std::string> copy_records_to_table(std::string table,
                                          std::vector<std::tuple<A...>>&& records,
                                          std::vector<std::string> columns = {}) {
    return copy_from_source(std::move(table), detail::CopyTuples<A...>(std::move(records)),
                            std::move(columns));
  }
  /// The COPY of a source that lives in this coroutine's frame.
  template <class Source>
  Coro<std::string> copy_from_source(std::string table, Source rows,
                                     std::vector<std::string> columns) {
    co_return co_await copy_records_in(std::move(table), rows, std::move(columns));
  }
  /// As copy_records_to_table, from encoded parameters.
  Coro<std::string> copy_rows_in(std::string table, std::vector<Params> rows,
                                 std::vector<std::string> columns);
  /// COPY FROM STDIN of the source's rows: binary when every column's type takes its values in
  /// the binary format, else text. The source is read while the COPY runs.
  Coro<std::string> copy_records_in(std::string table, detail::CopySource& rows,
                                    std::vector<std::string> columns);
  /// COPY (`query`) TO STDOUT: `output` gets each row as COPY's text line, as it streams in.
  /// Returns the command tag.
  Coro<std::string> copy_from_query(std::string query,
                                    std::function<void(std::string_view line)> output);

  /// Closes the connection politely (Terminate message). Idempotent.
  Coro<void> close();
  /// Closes at once, without waiting.
  void terminate() noexcept;
  bool is_closed() const noexcept;
  bool is_in_transaction() const noexcept;
  /// The backend's process id (pg_backend_pid()).
  int get_server_pid() const noexcept;
  const std::shared_ptr<detail::ConnectionState>& state() const noexcept { return state_; }

 private:
  template <class T>
  static Coro<T> fetchval_of(Coro<std::optional<Row>> row) {
    std::optional<Row> r = co_await std::move(row);
    if (!r) throw DataError("fetchval: the query returned no row");
    co_return r->get<T>(0);
  }
  std::shared_ptr<detail::ConnectionState> state_;
};

/// Opens a connection. `conninfo` is any libpq connection string: keywords
/// ("host=... dbname=...") or a URI ("postgresql://user@host:port/db?sslmode=require").
/// Errors: ConnectionFailureError; TimeoutError after options.timeout.
Coro<Connection> connect(std::string conninfo, ConnectOptions options = {});

struct PoolOptions {
  std::size_t min_size = 10;  ///< opened by create_pool
  std::size_t max_size = 10;
  /// A connection is replaced after this many queries.
  std::uint64_t max_queries = 50000;
  /// An idle connection older than this is closed instead of handed out (0: never).
  Clock::duration max_inactive_connection_lifetime = std::chrono::seconds(300);
  /// Default for acquire(): TimeoutError when no connection frees up in time.
  std::optional<Clock::duration> timeout;
  ConnectOptions connect;
};

/// A connection taken from a Pool, given back (reset) when this is destroyed or released.
class PoolConnection {
 public:
  PoolConnection() = default;
  PoolConnection(std::shared_ptr<detail::PoolState> pool, Connection conn) noexcept
      : pool_(std::move(pool)), conn_(std::move(conn)) {}
  PoolConnection(PoolConnection&& o) noexcept = default;
  PoolConnection& operator=(PoolConnection&& o) noexcept;
  ~PoolConnection();
  Connection* operator->() noexcept { return &conn_; }
  Connection& operator*() noexcept { return conn_; }
  /// Gives the connection back now and waits for its reset.
  Coro<void> release();

 private:
  std::shared_ptr<detail::PoolState> pool_;
  Connection conn_;
};

/// asyncpg.Pool: up to max_size connections shared by the tasks that acquire them.
class Pool {
 public:
  Pool() = default;
  explicit Pool(std::shared_ptr<detail::PoolState> state) noexcept : state_(std::move(state)) {}

  /// A connection, waiting for one to free up. Errors: TimeoutError (after `timeout`, or the
  /// pool's), InterfaceError once the pool is closing, what connect raises. Cancellation: no
  /// connection is taken.
  Coro<PoolConnection> acquire(std::optional<Clock::duration> timeout = std::nullopt);

  template <class... A>
  Coro<std::vector<Row>> fetch(Query q, const A&... args) {
    return run_fetch(std::move(q), detail::encode_params(args...));
  }
  template <class... A>
  Coro<std::optional<Row>> fetchrow(Query q, const A&... args) {
    return run_fetchrow(std::move(q), detail::encode_params(args...));
  }
  template <class T, class... A>
  Coro<T> fetchval(Query q, const A&... args) {
    return fetchval_of<T>(run_fetchrow(std::move(q), detail::encode_params(args...)));
  }
  template <class... A>
  Coro<std::string> execute(Query q, const A&... args) {
    return run_execute(std::move(q), detail::encode_params(args...), sizeof...(A) == 0);
  }

  /// Waits until every connection is back, then closes them all.
  Coro<void> close();
  /// Closes every connection at once; those in use fail their next statement.
  void terminate() noexcept;
  std::size_t get_size() const noexcept;       ///< open connections, idle or in use
  std::size_t get_idle_size() const noexcept;  ///< open and idle

 private:
  Coro<std::vector<Row>> run_fetch(Query q, Params p);
  Coro<std::optional<Row>> run_fetchrow(Query q, Params p);
  Coro<std::string> run_execute(Query q, Params p, bool simple);
  template <class T>
  static Coro<T> fetchval_of(Coro<std::optional<Row>> row) {
    std::optional<Row> r = co_await std::move(row);
    if (!r) throw DataError("fetchval: the query returned no row");
    co_return r->get<T>(0);
  }
  std::shared_ptr<detail::PoolState> state_;
};

/// Opens a pool with options.min_size connections. Errors: as connect.
Coro<Pool> create_pool(std::string dsn, PoolOptions options = {});

}  // namespace weave::pg
