#pragma once
// weave::pg's conversions between C++ values and PostgreSQL's formats, included by pg.hpp.
// Parameters are encoded eagerly (before the query's coroutine starts), so that a temporary
// argument never has to outlive the call, in the text format; results are decoded from the text
// or binary format the server sent (binary for statements whose every column type has a binary
// decoder here, see binary_result_type).

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
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

/// One encoded parameter: its text (nullopt for NULL) and the type the server is told (0 lets
/// the server infer it from the query, as for text and time values).
struct Param {
  std::optional<std::string> text;
  unsigned oid = 0;
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
  return Param{std::nullopt, oid};
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

template <class... A>
Params encode_all(const A&... args) {
  Params params;
  params.reserve(sizeof...(A));
  (params.push_back(encode(args)), ...);
  return params;
}

/// Throws DataError naming the column when the field is NULL.
std::string_view require_text(const Field& f);
void decode(const Field& f, bool& out);
void decode(const Field& f, std::int16_t& out);
void decode(const Field& f, std::int32_t& out);
void decode(const Field& f, std::int64_t& out);
void decode(const Field& f, long long& out);
void decode(const Field& f, double& out);
void decode(const Field& f, float& out);
void decode(const Field& f, std::string& out);
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
  /// The next element; false after the last.
  bool next(Field& element);

 private:
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
    Field element;
    while (elements.next(element)) {
      T v{};
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

/// The host names of a libpq conninfo (keywords or URI; `PGHOST` when it names none) resolved
/// with getaddrinfo, as the `host`, `hostaddr` and `port` keywords to pass after it: each
/// name becomes one entry per address it has (libpq tries them in order, as it would its own
/// lookups), `host` stays for TLS verification, and a socket directory or a literal address keeps
/// an empty `hostaddr`. Empty when there is nothing to resolve, when `hostaddr` is given, when
/// the conninfo does not parse (libpq then reports it) or when no name resolves (libpq then
/// reports that). It blocks: connect() runs it off the loop thread.
std::vector<std::pair<std::string, std::string>> resolve_hosts(const std::string& conninfo);
}  // namespace detail

}  // namespace weave::pg
