#pragma once
// weave::pg's conversions between C++ values and PostgreSQL's formats, included by pg.hpp.
// A statement's parameters are encoded eagerly (before the query's coroutine starts), so that a
// temporary argument never has to outlive the call; the rows of COPY and executemany are read
// as they are sent (see CopySource, ParamSource). Results are decoded from the text or binary
// format the server sent (binary for statements whose every column type has a binary decoder
// here, see binary_result_type).

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace weave::pg {

/// A client-side problem, asyncpg's InterfaceError: misuse, a closed connection, bad data.
class InterfaceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// A value that cannot become the requested C++ type (asyncpg's DataError), e.g. NULL read into
/// a non-optional; the message names the column.
class DataError : public InterfaceError {
 public:
  using InterfaceError::InterfaceError;
};

/// bytea: raw bytes, kept apart from text so that neither is mistaken for the other.
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

/// One field of a result row as the server sent it.
struct Field {
  std::optional<std::string_view> text;  ///< the value's bytes, nullopt for NULL
  unsigned oid = 0;                      ///< the column's type
  std::string_view column;               ///< for error messages
  bool binary = false;                   ///< `text` is in the binary format of `oid`
};

/// One encoded parameter: its bytes (nullopt for NULL), the type the server is told (0 lets
/// the server infer it from the query, as for text and time values) and their format: binary
/// (PostgreSQL's binary form of `oid`: integers, floats, bool, bytea, which the server then does
/// not parse) or text.
struct Param {
  /// What a time value sent as text (its type inferred by the server) is.
  enum class Time : unsigned char { none, point, date, interval };
  std::optional<std::string> text;
  unsigned oid = 0;
  bool binary = false;
  /// A time value's binary form, kept with its text: where the statement's parameter type is
  /// known (a prepare()d statement's, from the server) to be its own (timestamp or timestamptz
  /// for a point, date, interval) it goes in the binary format instead, which the server
  /// neither parses nor shifts by the session's time zone. `time_value`: microseconds since
  /// 2000-01-01 00:00 UTC (a point), days since 2000-01-01 (a date), microseconds (an interval).
  Time time = Time::none;
  std::int64_t time_value = 0;
};
using Params = std::vector<Param>;

namespace detail {
using Timestamp = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

Param encode(bool v);
Param encode(std::int16_t v);
Param encode(std::int32_t v);
Param encode(std::int64_t v);
Param encode(long long v);
Param encode(double v);
Param encode(float v);
Param encode(std::string_view v);
Param encode(const Bytes& v);
Param encode(std::chrono::sys_days v);
Param encode_timestamp(Timestamp v);
Param encode_interval(std::chrono::microseconds v);
/// An array literal from encoded elements; `element_oid` picks the array type.
Param encode_array(const std::vector<Param>& elements, unsigned element_oid);
/// The parameter in the text format (a binary one converted, a text one as it is).
Param to_text(const Param& p);
/// A time value in the binary format of `type`, the statement's parameter type; nullopt when it
/// is not the value's type (or not a time value): the text then goes as it is.
std::optional<Param> time_in_binary(const Param& p, unsigned type);

inline Param encode(const std::string& v) {
  return encode(std::string_view(v));
}
inline Param encode(const char* v) {
  return encode(std::string_view(v));
}
inline Param encode(std::nullopt_t) {
  return Param{};
}
template <class D>
Param encode(std::chrono::time_point<std::chrono::system_clock, D> v) {
  return encode_timestamp(std::chrono::time_point_cast<std::chrono::microseconds>(v));
}
template <class R, class P>
Param encode(std::chrono::duration<R, P> v) {
  return encode_interval(std::chrono::duration_cast<std::chrono::microseconds>(v));
}
template <class T>
Param encode(const std::optional<T>& v) {
  if (v) return encode(*v);
  const unsigned oid = encode(T{}).oid;  // NULL, typed as T is
  return Param{std::nullopt, oid, false};
}
template <class T>
Param encode(const std::vector<T>& v) {
  std::vector<Param> elements;
  elements.reserve(v.size());
  for (const auto& e : v) elements.push_back(encode(e));
  using E = std::remove_cvref_t<T>;
  unsigned oid = v.empty() ? encode(E{}).oid : elements.front().oid;
  return encode_array(elements, oid);
}

/// executemany's parameter sets, encoded eagerly into one buffer: no container per set. The
/// first set's types are the statement's; a later binary value of another type is kept as text.
struct ParamSets {
  struct Value {
    std::size_t offset = 0;
    int length = -1;  ///< -1: NULL
    bool binary = false;
  };
  std::vector<unsigned> types;    ///< the first set's
  std::vector<Value> values;      ///< every set's, in order
  std::vector<std::size_t> ends;  ///< where each set's values end in `values`
  std::string bytes;

  void add(const Param& p) {
    const std::size_t column = values.size() - (ends.empty() ? 0 : ends.back());
    if (ends.empty()) types.push_back(p.oid);
    if (p.binary && p.text && column < types.size() && types[column] != p.oid) {
      return add(to_text(p));
    }
    Value v;
    v.binary = p.binary;
    if (p.text) {
      v.offset = bytes.size();
      v.length = static_cast<int>(p.text->size());
      bytes += *p.text;
      bytes += '\0';  // libpq reads a text value up to its NUL
    }
    values.push_back(v);
  }
  void end_set() { ends.push_back(values.size()); }
};

/// Rows for COPY in COPY's binary tuple format: per row a 16-bit value count, then per value a
/// 32-bit length (-1 for NULL) and the bytes, big-endian, each value in the binary form of its
/// C++ kind (see CopySource). A COPY encodes its rows a chunk at a time into one of these, kept
/// by the connection for its next COPY.
struct CopyRecords {
  /// The C++ kind of a column's values, named by the PostgreSQL type whose binary form they
  /// have (kText: the value's text, also for types encode() writes as text).
  enum Kind : char { kBool, kInt2, kInt4, kInt8, kFloat8, kText, kBytes };
  std::size_t rows = 0;

  /// `n` more bytes at the end, to be written through the pointer returned.
  char* grow(std::size_t n) {
    if (size_ + n > capacity_) reserve(std::max(size_ + n, capacity_ * 2));
    char* p = buffer_.get() + size_;
    size_ += n;
    return p;
  }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::unique_ptr<char[]> b(new char[n]);
    if (size_ > 0) std::memcpy(b.get(), buffer_.get(), size_);
    buffer_ = std::move(b);
    capacity_ = n;
  }
  /// Empty, the buffer kept.
  void clear() noexcept {
    size_ = 0;
    rows = 0;
  }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  /// For a writer that keeps its position in a local (the stores through a char* would make
  /// the compiler reload size_ after each of them): the end of the data and of the buffer,
  /// and commit() with the new end and the rows written there.
  char* end() noexcept { return buffer_.get() + size_; }
  char* buffer_end() noexcept { return buffer_.get() + capacity_; }
  void commit(char* end, std::size_t more_rows) noexcept {
    size_ = static_cast<std::size_t>(end - buffer_.get());
    rows += more_rows;
  }
  std::string_view data() const noexcept { return {buffer_.get(), size_}; }

 private:
  std::unique_ptr<char[]> buffer_;
  std::size_t size_ = 0, capacity_ = 0;
};

inline char* put_be16(char* p, std::uint16_t v) noexcept {
  v = __builtin_bswap16(v);
  std::memcpy(p, &v, sizeof v);
  return p + sizeof v;
}
inline char* put_be32(char* p, std::uint32_t v) noexcept {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, sizeof v);
  return p + sizeof v;
}
inline char* put_be64(char* p, std::uint64_t v) noexcept {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof v);
  return p + sizeof v;
}

template <class T>
struct CopyCodec;  // kind, size and writer of the types COPY encodes without encode()
template <>
struct CopyCodec<bool> {
  static constexpr CopyRecords::Kind kind = CopyRecords::kBool;
  static std::size_t size(bool) noexcept { return 1; }
  static char* write(char* p, bool v) noexcept {
    *p = v ? 1 : 0;
    return p + 1;
  }
};
template <>
struct CopyCodec<std::int16_t> {
  static constexpr CopyRecords::Kind kind = CopyRecords::kInt2;
  static std::size_t size(std::int16_t) noexcept { return 2; }
  static char* write(char* p, std::int16_t v) noexcept {
    return put_be16(p, static_cast<std::uint16_t>(v));
  }
};
template <>
struct CopyCodec<std::int32_t> {
  static constexpr CopyRecords::Kind kind = CopyRecords::kInt4;
  static std::size_t size(std::int32_t) noexcept { return 4; }
  static char* write(char* p, std::int32_t v) noexcept {
    return put_be32(p, static_cast<std::uint32_t>(v));
  }
};
template <>
struct CopyCodec<std::int64_t> {
  static constexpr CopyRecords::Kind kind = CopyRecords::kInt8;
  static std::size_t size(std::int64_t) noexcept { return 8; }
  static char* write(char* p, std::int64_t v) noexcept {
    return put_be64(p, static_cast<std::uint64_t>(v));
  }
};
template <>
struct CopyCodec<long long> : CopyCodec<std::int64_t> {};
template <>
struct CopyCodec<double> {
  static constexpr CopyRecords::Kind kind = CopyRecords::kFloat8;
  static std::size_t size(double) noexcept { return 8; }
  static char* write(char* p, double v) noexcept {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return put_be64(p, bits);
  }
};
template <>
struct CopyCodec<Bytes> {
  static constexpr CopyRecords::Kind kind = CopyRecords::kBytes;
  static std::size_t size(const Bytes& v) noexcept { return v.data.size(); }
  static char* write(char* p, const Bytes& v) noexcept {
    if (!v.data.empty()) std::memcpy(p, v.data.data(), v.data.size());
    return p + v.data.size();
  }
};
/// `n` bytes from `from` to `p`: short ones (most text values of a row) with two overlapping
/// moves instead of a call.
inline char* put_bytes(char* p, const char* from, std::size_t n) noexcept {
  if (n >= 8 && n <= 16) {
    std::uint64_t head, tail;
    std::memcpy(&head, from, 8);
    std::memcpy(&tail, from + n - 8, 8);
    std::memcpy(p, &head, 8);
    std::memcpy(p + n - 8, &tail, 8);
  } else if (n != 0) {
    std::memcpy(p, from, n);
  }
  return p + n;
}
struct CopyTextCodec {
  static constexpr CopyRecords::Kind kind = CopyRecords::kText;
  static std::size_t size(std::string_view v) noexcept { return v.size(); }
  static char* write(char* p, std::string_view v) noexcept {
    return put_bytes(p, v.data(), v.size());
  }
};
template <>
struct CopyCodec<std::string> : CopyTextCodec {};
template <>
struct CopyCodec<std::string_view> : CopyTextCodec {};
template <>
struct CopyCodec<const char*> : CopyTextCodec {};
template <>
struct CopyCodec<char*> : CopyTextCodec {};
template <std::size_t N>
struct CopyCodec<char[N]> : CopyTextCodec {};

template <class T>
concept CopyDirect = requires {
  CopyCodec<T>::kind;
};

/// A value's length word and bytes: 4 + its size, or 4 for NULL.
template <class T>
std::size_t copy_size(const T& v) noexcept {
  return 4 + CopyCodec<T>::size(v);
}
template <class T>
std::size_t copy_size(const std::optional<T>& v) noexcept {
  return 4 + (v ? CopyCodec<T>::size(*v) : 0);
}
template <class T>
[[gnu::always_inline]] inline char* copy_write(char* p, const T& v) noexcept {
  char* at = p + 4;
  char* end = CopyCodec<T>::write(at, v);
  put_be32(p, static_cast<std::uint32_t>(end - at));
  return end;
}
template <class T>
char* copy_write(char* p, const std::optional<T>& v) noexcept {
  if (!v) return put_be32(p, 0xffffffffu);
  return copy_write(p, *v);
}

template <class T>
struct CopyKindOf {
  static constexpr CopyRecords::Kind value = CopyRecords::kText;  // encode()'s text
  static constexpr bool direct = false;
};
template <CopyDirect T>
struct CopyKindOf<T> {
  static constexpr CopyRecords::Kind value = CopyCodec<T>::kind;
  static constexpr bool direct = true;
};
template <class T>
struct CopyKindOf<std::optional<T>> : CopyKindOf<T> {};

/// A value encode() writes as text (dates, times, float, ...), or NULL.
template <class T>
void copy_put_text(CopyRecords& r, const T& v) {
  const Param p = encode(v);
  if (!p.text) {
    put_be32(r.grow(4), 0xffffffffu);
    return;
  }
  char* at = r.grow(4 + p.text->size());
  put_be32(at, static_cast<std::uint32_t>(p.text->size()));
  std::memcpy(at + 4, p.text->data(), p.text->size());
}

/// One row of `A...` into `r`, value by value (rows of direct kinds only go through
/// CopyTuples' cursor instead).
template <class... A>
void copy_row(CopyRecords& r, const std::tuple<A...>& row) {
  ++r.rows;
  put_be16(r.grow(2), static_cast<std::uint16_t>(sizeof...(A)));
  auto one = [&r](const auto& v) {
    using U = std::remove_cvref_t<decltype(v)>;
    if constexpr (CopyKindOf<U>::direct) {
      copy_write(r.grow(copy_size(v)), v);
    } else {
      copy_put_text(r, v);
    }
  };
  std::apply([&one](const auto&... v) { (one(v), ...); }, row);
}

/// The rows an operation reads as it sends them: the caller's vector where it is, or the
/// vector moved in (moving a vector keeps its elements where they are, so the cursor stays
/// valid when the holder itself moves into a coroutine frame).
template <class Row>
class HeldRows {
 public:
  // Implicit: the sources below take a HeldRows made from the vector given to the operation.
  HeldRows(const std::vector<Row>& rows)  // NOLINT(google-explicit-constructor)
      : next(rows.data()), end(rows.data() + rows.size()) {}
  HeldRows(std::vector<Row>&& rows)  // NOLINT(google-explicit-constructor)
      : owned_(std::move(rows)), next(owned_.data()), end(owned_.data() + owned_.size()) {}
  HeldRows(HeldRows&&) noexcept = default;
  HeldRows(const HeldRows&) = delete;  // a copy would point into the other's vector
  HeldRows& operator=(const HeldRows&) = delete;
  HeldRows& operator=(HeldRows&&) = delete;
  ~HeldRows() = default;

 private:
  std::vector<Row> owned_;  // first: next and end are initialized from it

 public:
  const Row* next;  ///< the next row to send
  const Row* end;
};

/// Where a COPY's rows come from, read as the COPY goes (asyncpg reads its records' iterable
/// the same way): the kinds of their columns, and the rows encoded a chunk at a time.
class CopySource {
 public:
  /// Per column; when `uniform` is false (encoded parameters of several shapes) every value
  /// is kText.
  std::vector<CopyRecords::Kind> kinds;
  bool uniform = true;
  /// Appends the next rows to `chunk` until it holds `limit` bytes or the rows ran out;
  /// returns whether rows are left.
  virtual bool fill(CopyRecords& chunk, std::size_t limit) = 0;

 protected:
  ~CopySource() = default;
};

/// The rows of a vector of tuples, as HeldRows holds them.
template <class... A>
class CopyTuples final : public CopySource {
 public:
  explicit CopyTuples(HeldRows<std::tuple<A...>> rows) : rows_(std::move(rows)) {
    kinds = {CopyKindOf<std::remove_cvref_t<A>>::value...};
  }
  bool fill(CopyRecords& chunk, std::size_t limit) override {
    if constexpr ((CopyKindOf<std::remove_cvref_t<A>>::direct && ...)) {
      fill_direct(chunk, limit);
    } else {
      while (rows_.next != rows_.end && chunk.size() < limit) copy_row(chunk, *rows_.next++);
    }
    return rows_.next != rows_.end;
  }

 private:
  /// Rows of direct kinds only, written through a local cursor.
  void fill_direct(CopyRecords& chunk, std::size_t limit) {
    const std::size_t goal = chunk.size() + limit;
    chunk.reserve(goal + 4096);  // slack: most rows fit without a check of their own
    char* p = chunk.end();
    char* stop = p - chunk.size() + goal;
    char* room = chunk.buffer_end();
    const std::tuple<A...>* row = rows_.next;
    const std::tuple<A...>* const last = rows_.end;
    for (; row != last && p < stop; ++row) {
      const std::size_t size =
          std::apply([](const auto&... v) { return (std::size_t{2} + ... + copy_size(v)); }, *row);
      if (size > static_cast<std::size_t>(room - p)) {  // a row larger than the slack
        chunk.commit(p, static_cast<std::size_t>(row - rows_.next));
        rows_.next = row;
        chunk.reserve(chunk.size() + size);
        p = chunk.end();
        stop = p - chunk.size() + goal;
        room = chunk.buffer_end();
      }
      p = put_be16(p, static_cast<std::uint16_t>(sizeof...(A)));
      std::apply([&p](const auto&... v) { ((p = copy_write(p, v)), ...); }, *row);
    }
    chunk.commit(p, static_cast<std::size_t>(row - rows_.next));
    rows_.next = row;
  }

  HeldRows<std::tuple<A...>> rows_;
};

/// Throws DataError naming the column when the field is NULL.
std::string_view require_text(const Field& f);

/// The big-endian integer at `p`.
inline std::uint32_t load_be32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap32(v);
}
inline std::uint64_t load_be64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_bswap64(v);
}
/// The binary integer types (Row's direct reads name them by their column's kind, in this order).
enum class BinaryInteger : unsigned char { int2, int4, int8, oid };
/// The binary value of integer type `type` at `p`, widened.
inline long long load_binary_integer(BinaryInteger type, const char* p) noexcept {
  switch (type) {
    case BinaryInteger::int4:
      return static_cast<std::int32_t>(load_be32(p));
    case BinaryInteger::int8:
      return static_cast<std::int64_t>(load_be64(p));
    case BinaryInteger::oid:
      return load_be32(p);
    case BinaryInteger::int2:
      break;
  }
  std::uint16_t u;
  std::memcpy(&u, p, sizeof u);
  return static_cast<std::int16_t>(__builtin_bswap16(u));
}
/// `v` into `out`; false when it is out of range for I.
template <class I>
bool store_in_range(long long v, I& out) noexcept {
  if (!std::in_range<I>(v)) return false;
  out = static_cast<I>(v);
  return true;
}
/// The binary float4/float8 values at `p`.
inline float load_binary_float4(const char* p) noexcept {
  return std::bit_cast<float>(load_be32(p));
}
inline double load_binary_float8(const char* p) noexcept {
  return std::bit_cast<double>(load_be64(p));
}
/// The `n` bytes at `p` of a binary int2/int4/int8/oid value of type `oid`, read straight into
/// `out`; false for another type or size, or a value out of range for I. Inline: it runs once
/// per field of a result.
template <class I>
bool binary_integer_at(unsigned oid, const char* p, std::size_t n, I& out) noexcept {
  BinaryInteger type;
  if (oid == 23 && n == 4) {
    type = BinaryInteger::int4;
  } else if (oid == 20 && n == 8) {
    type = BinaryInteger::int8;
  } else if (oid == 21 && n == 2) {
    type = BinaryInteger::int2;
  } else if (oid == 26 && n == 4) {
    type = BinaryInteger::oid;
  } else {
    return false;
  }
  return store_in_range(load_binary_integer(type, p), out);
}
/// The same of a field; false for anything else (NULL, text too), which the full decoder then
/// handles or reports.
template <class I>
bool binary_integer_fast(const Field& f, I& out) noexcept {
  return f.binary && f.text && binary_integer_at(f.oid, f.text->data(), f.text->size(), out);
}

// The full decoders: the text format, conversions between types, and the errors.
void decode_full(const Field& f, bool& out);
void decode_full(const Field& f, std::int16_t& out);
void decode_full(const Field& f, std::int32_t& out);
void decode_full(const Field& f, std::int64_t& out);
void decode_full(const Field& f, long long& out);
void decode_full(const Field& f, double& out);
void decode_full(const Field& f, float& out);

inline void decode(const Field& f, bool& out) {
  if (f.binary && f.oid == 16 && f.text && f.text->size() == 1) {
    out = (*f.text)[0] != 0;
    return;
  }
  decode_full(f, out);
}
inline void decode(const Field& f, std::int16_t& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, std::int32_t& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, std::int64_t& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, long long& out) {
  if (!binary_integer_fast(f, out)) decode_full(f, out);
}
inline void decode(const Field& f, double& out) {
  if (f.binary && f.oid == 701 && f.text && f.text->size() == 8) {
    out = load_binary_float8(f.text->data());
    return;
  }
  decode_full(f, out);
}
inline void decode(const Field& f, float& out) {
  if (f.binary && f.oid == 700 && f.text && f.text->size() == 4) {
    out = load_binary_float4(f.text->data());
    return;
  }
  decode_full(f, out);
}
void decode(const Field& f, std::string& out);
/// A "char" value (pg_type's typcategory, ...) as its one byte ('\0' for the empty one).
/// Errors: DataError for another type.
void decode_full(const Field& f, char& out);
inline void decode(const Field& f, char& out) {
  if (f.binary && f.oid == 18 && f.text && f.text->size() == 1) {
    out = (*f.text)[0];
    return;
  }
  decode_full(f, out);
}
/// The text without a copy, valid as long as the row's result: for text-like types (text,
/// varchar, char(n), name, json, jsonb) and for the types that always arrive as text (numeric,
/// inet, ...). Others (integers, bytea, time values) raise DataError: read them as std::string.
void decode(const Field& f, std::string_view& out);
void decode(const Field& f, Bytes& out);
void decode(const Field& f, std::chrono::sys_days& out);
void decode(const Field& f, Timestamp& out);
void decode(const Field& f, std::chrono::microseconds& out);
/// The elements of a one-dimensional array literal, NULL elements as nullopt.
std::vector<std::optional<std::string>> split_array(const Field& f);

/// True when results of type `oid` are decoded from the binary format (scalars, their
/// one-dimensional arrays, text-like types); a statement with any other column stays text.
bool binary_result_type(unsigned oid) noexcept;

/// The elements of a binary array, in order, as binary fields of the element type; they point
/// into the field's bytes. Errors: DataError for a malformed or multi-dimensional array.
class BinaryArray {
 public:
  explicit BinaryArray(const Field& f);
  std::size_t size() const noexcept { return count_; }
  /// Every element appended to `out` when all are non-NULL integers of the element type and in
  /// range for I (the common case, read in one pass over the bytes); false otherwise, with `out`
  /// as it was and nothing read, for next() to go element by element.
  template <class I>
  bool integers(std::vector<I>& out) {
    std::size_t width = 0;
    if (element_oid_ == 23) width = 4;
    if (element_oid_ == 20) width = 8;
    if (element_oid_ == 21) width = 2;
    if (width == 0 || read_ != 0 || rest_.size() < count_ * (4 + width)) return false;
    const std::size_t before = out.size();
    const char* p = rest_.data();
    for (std::size_t i = 0; i < count_; ++i, p += 4 + width) {
      long long v = 0;
      if (big_endian32(p) != width) break;
      if (width == 4) {
        v = static_cast<std::int32_t>(big_endian32(p + 4));
      } else if (width == 8) {
        v = static_cast<std::int64_t>(std::uint64_t{big_endian32(p + 4)} << 32 |
                                      big_endian32(p + 8));
      } else {
        const auto* b = reinterpret_cast<const unsigned char*>(p + 4);
        v = static_cast<std::int16_t>(b[0] << 8 | b[1]);
      }
      if (!std::in_range<I>(v)) break;
      out.push_back(static_cast<I>(v));
    }
    if (out.size() - before == count_) return true;
    out.resize(before);
    return false;
  }
  /// The next element; false after the last.
  bool next(Field& element) {
    if (read_ == count_) return false;
    if (rest_.size() < 4) malformed();
    const auto len = static_cast<std::int32_t>(big_endian32(rest_.data()));
    rest_.remove_prefix(4);
    element.oid = element_oid_;
    element.column = column_;
    element.binary = true;
    if (len < 0) {
      element.text.reset();
    } else {
      if (rest_.size() < static_cast<std::size_t>(len)) malformed();
      element.text = rest_.substr(0, static_cast<std::size_t>(len));
      rest_.remove_prefix(static_cast<std::size_t>(len));
    }
    ++read_;
    return true;
  }
  static std::uint32_t big_endian32(const char* p) noexcept {
    const auto* b = reinterpret_cast<const unsigned char*>(p);
    return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
  }

 private:
  [[noreturn]] void malformed() const;
  std::string_view rest_;
  std::string_view column_;
  unsigned element_oid_ = 0;
  std::size_t count_ = 0, read_ = 0;
};

template <class D>
requires(!std::is_same_v<D, std::chrono::microseconds>) void decode(
    const Field& f, std::chrono::time_point<std::chrono::system_clock, D>& out) {
  Timestamp t;
  decode(f, t);
  out = std::chrono::time_point_cast<D>(t);
}
template <class R, class P>
requires(!std::is_same_v<std::chrono::duration<R, P>, std::chrono::microseconds>) void decode(
    const Field& f, std::chrono::duration<R, P>& out) {
  std::chrono::microseconds us;
  decode(f, us);
  out = std::chrono::duration_cast<std::chrono::duration<R, P>>(us);
}
template <class T>
void decode(const Field& f, std::optional<T>& out) {
  if (!f.text) {
    out.reset();
    return;
  }
  T v{};
  decode(f, v);
  out = std::move(v);
}
template <class T>
void decode(const Field& f, std::vector<T>& out) {
  out.clear();
  if (f.binary) {
    BinaryArray elements(f);
    out.reserve(elements.size());
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (elements.integers(out)) return;
    }
    Field element;
    while (elements.next(element)) {
      T v{};
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        if (binary_integer_fast(element, v)) {
          out.push_back(v);
          continue;
        }
      }
      decode(element, v);
      out.push_back(std::move(v));
    }
    return;
  }
  for (const auto& e : split_array(f)) {
    Field element{e ? std::optional<std::string_view>(*e) : std::nullopt, 0, f.column};
    T v{};
    decode(element, v);
    out.push_back(std::move(v));
  }
}

/// The host names of a libpq conninfo (keywords or URI; then the connection service it or
/// `PGSERVICE` names, from the service files libpq reads; then `PGHOST`) resolved
/// with getaddrinfo, as the `host`, `hostaddr` and `port` keywords to pass after it: each
/// name becomes one entry per address it has (libpq tries them in order, as it would its own
/// lookups), `host` stays for TLS verification, and a socket directory or a literal address keeps
/// an empty `hostaddr`. Empty when there is nothing to resolve, when `hostaddr` is given, when
/// the conninfo does not parse (libpq then reports it) or when no name resolves (libpq then
/// reports that). It blocks: connect() runs it off the loop thread.
std::vector<std::pair<std::string, std::string>> resolve_hosts(const std::string& conninfo);
}  // namespace detail

}  // namespace weave::pg
