// C++ values to and from PostgreSQL's text format, and from its binary format (see
// include/weave/detail/pg_codec.hpp).
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "weave/pg.hpp"

namespace weave::pg::detail {

namespace {
using namespace std::chrono;

constexpr unsigned kBool = 16, kBytea = 17, kChar = 18, kName = 19, kInt8 = 20, kInt2 = 21,
                   kInt4 = 23, kText = 25, kOid = 26, kJson = 114, kFloat4 = 700, kFloat8 = 701,
                   kBpchar = 1042, kVarchar = 1043, kDate = 1082, kTimestamp = 1114,
                   kTimestamptz = 1184, kInterval = 1186, kUuid = 2950, kJsonb = 3802;

/// Days from 1970-01-01 (the system clock's epoch) to 2000-01-01 (PostgreSQL's).
constexpr long long kEpochDays = 10957;

[[noreturn]] void bad_value(const Field& f, std::string_view text, const char* what) {
  throw DataError("column \"" + std::string(f.column) + "\": \"" + std::string(text) +
                  "\" is not " + what);
}

template <class I>
void parse_integer(const Field& f, I& out) {
  std::string_view t = require_text(f);
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  if (ec != std::errc() || end != t.data() + t.size()) bad_value(f, t, "an integer of that size");
}

template <class F>
void parse_floating(const Field& f, F& out) {
  std::string_view t = require_text(f);
  if (t == "NaN") {
    out = std::numeric_limits<F>::quiet_NaN();
  } else if (t == "Infinity") {
    out = std::numeric_limits<F>::infinity();
  } else if (t == "-Infinity") {
    out = -std::numeric_limits<F>::infinity();
  } else {
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
    if (ec != std::errc() || end != t.data() + t.size()) bad_value(f, t, "a number");
  }
}

template <class F>
Param encode_floating(F v, unsigned oid) {
  if (std::isnan(v)) return {"NaN", oid};
  if (std::isinf(v)) return {v > 0 ? "Infinity" : "-Infinity", oid};
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return {std::string(buf, end), oid};
}

/// Reads `digits` decimal digits at `pos`; false when they are not there.
bool read_digits(std::string_view t, std::size_t& pos, std::size_t digits, long long& out) {
  if (pos + digits > t.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    char c = t[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += digits;
  return true;
}

/// A run of digits of any length (years may have more than four).
bool read_number(std::string_view t, std::size_t& pos, long long& out) {
  std::size_t start = pos;
  out = 0;
  while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') out = out * 10 + (t[pos++] - '0');
  return pos > start;
}

bool parse_date(std::string_view t, std::size_t& pos, sys_days& out) {
  long long y = 0, m = 0, d = 0;
  if (!read_number(t, pos, y) || pos >= t.size() || t[pos++] != '-') return false;
  if (!read_digits(t, pos, 2, m) || pos >= t.size() || t[pos++] != '-') return false;
  if (!read_digits(t, pos, 2, d)) return false;
  if (t.substr(t.size() >= 3 ? t.size() - 3 : 0) == " BC") y = 1 - y;
  year_month_day ymd{year(static_cast<int>(y)), month(static_cast<unsigned>(m)),
                     day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return false;
  out = sys_days(ymd);
  return true;
}

std::string format_date(sys_days d, std::string& suffix) {
  year_month_day ymd(d);
  int y = static_cast<int>(ymd.year());
  if (y <= 0) {
    y = 1 - y;
    suffix = " BC";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", y, static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

/// "HH:MM:SS[.ffffff]" into microseconds; hours may be any size (intervals).
bool parse_clock(std::string_view t, std::size_t& pos, long long& us) {
  long long h = 0, m = 0, s = 0;
  if (!read_number(t, pos, h) || pos >= t.size() || t[pos++] != ':') return false;
  if (!read_digits(t, pos, 2, m) || pos >= t.size() || t[pos++] != ':') return false;
  if (!read_digits(t, pos, 2, s)) return false;
  long long frac = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (n < 6) frac = frac * 10 + (t[pos] - '0');
      ++n;
      ++pos;
    }
    for (; n < 6; ++n) frac *= 10;
  }
  us = ((h * 60 + m) * 60 + s) * 1'000'000 + frac;
  return true;
}

std::string format_clock(long long us) {
  char buf[48];
  long long s = us / 1'000'000;
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld.%06lld", s / 3600, s / 60 % 60, s % 60,
                us % 1'000'000);
  return buf;
}

unsigned array_oid(unsigned element) {
  switch (element) {
    case kBool:
      return 1000;
    case kBytea:
      return 1001;
    case kInt2:
      return 1005;
    case kInt4:
      return 1007;
    case kInt8:
      return 1016;
    case kFloat4:
      return 1021;
    case kFloat8:
      return 1022;
    default:
      return 0;
  }
}

// ---- the binary format -------------------------------------------------------------------------

bool text_like(unsigned oid) {
  return oid == kText || oid == kVarchar || oid == kBpchar || oid == kName || oid == kJson;
}

bool binary_scalar(unsigned oid) {
  switch (oid) {
    case kBool:
    case kBytea:
    case kChar:
    case kInt8:
    case kInt2:
    case kInt4:
    case kOid:
    case kFloat4:
    case kFloat8:
    case kDate:
    case kTimestamp:
    case kTimestamptz:
    case kInterval:
    case kUuid:
    case kJsonb:
      return true;
    default:
      return text_like(oid);
  }
}

/// The element type of the array types whose elements binary_scalar accepts, else 0.
unsigned binary_array_element(unsigned oid) {
  switch (oid) {
    case 1000:
      return kBool;
    case 1001:
      return kBytea;
    case 1002:
      return kChar;
    case 1003:
      return kName;
    case 1005:
      return kInt2;
    case 1007:
      return kInt4;
    case 1009:
      return kText;
    case 1014:
      return kBpchar;
    case 1015:
      return kVarchar;
    case 1016:
      return kInt8;
    case 1021:
      return kFloat4;
    case 1022:
      return kFloat8;
    case 1028:
      return kOid;
    case 1115:
      return kTimestamp;
    case 1182:
      return kDate;
    case 1185:
      return kTimestamptz;
    case 1187:
      return kInterval;
    case 199:
      return kJson;
    case 2951:
      return kUuid;
    case 3807:
      return kJsonb;
    default:
      return 0;
  }
}

std::string type_name(unsigned oid) {
  switch (oid) {
    case kBool:
      return "bool";
    case kBytea:
      return "bytea";
    case kChar:
      return "\"char\"";
    case kInt8:
      return "int8";
    case kInt2:
      return "int2";
    case kInt4:
      return "int4";
    case kOid:
      return "oid";
    case kFloat4:
      return "float4";
    case kFloat8:
      return "float8";
    case kDate:
      return "date";
    case kTimestamp:
      return "timestamp";
    case kTimestamptz:
      return "timestamptz";
    case kInterval:
      return "interval";
    case kUuid:
      return "uuid";
    case kJsonb:
      return "jsonb";
    default:
      return text_like(oid) ? "text" : binary_array_element(oid) != 0 ? "array" : "a type";
  }
}

[[noreturn]] void bad_binary(const Field& f, const std::string& what) {
  throw DataError("column \"" + std::string(f.column) + "\": a binary " + type_name(f.oid) +
                  " value " + what);
}

/// The big-endian integer of N bytes at `p`.
template <class U>
U load(const char* p) {
  U v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little && sizeof(U) > 1) {
    if constexpr (sizeof(U) == 2) v = static_cast<U>(__builtin_bswap16(v));
    if constexpr (sizeof(U) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(U) == 8) v = __builtin_bswap64(v);
  }
  return v;
}

/// The field's bytes, which must be `size` long.
std::string_view sized(const Field& f, std::size_t size) {
  std::string_view t = require_text(f);
  if (t.size() != size) bad_binary(f, "has " + std::to_string(t.size()) + " bytes");
  return t;
}

/// An integer column's value; false when the column is no integer.
bool binary_integer(const Field& f, long long& v) {
  BinaryInteger type;
  std::size_t size = 4;
  switch (f.oid) {
    case kInt2:
      type = BinaryInteger::int2;
      size = 2;
      break;
    case kInt4:
      type = BinaryInteger::int4;
      break;
    case kOid:
      type = BinaryInteger::oid;
      break;
    case kInt8:
      type = BinaryInteger::int8;
      size = 8;
      break;
    default:
      return false;
  }
  v = load_binary_integer(type, sized(f, size).data());
  return true;
}

template <class I>
void decode_integer(const Field& f, I& out) {
  if (!f.binary) return parse_integer(f, out);
  long long v = 0;
  if (!binary_integer(f, v)) bad_binary(f, "is not an integer");
  if (!std::in_range<I>(v)) bad_binary(f, std::to_string(v) + " is not an integer of that size");
  out = static_cast<I>(v);
}

template <class F>
void decode_floating(const Field& f, F& out) {
  if (!f.binary) return parse_floating(f, out);
  double v = 0;
  long long i = 0;
  if (f.oid == kFloat8) {
    v = load_binary_float8(sized(f, 8).data());
  } else if (f.oid == kFloat4) {
    v = load_binary_float4(sized(f, 4).data());
  } else if (binary_integer(f, i)) {
    v = static_cast<double>(i);
  } else {
    bad_binary(f, "is not a number");
  }
  if (std::isfinite(v) && std::abs(v) > std::numeric_limits<F>::max()) {
    bad_binary(f, "is out of the range of that type");
  }
  out = static_cast<F>(v);
}

/// PostgreSQL's time values: microseconds (or days) since 2000-01-01; infinity at the ends.
Timestamp binary_timestamp(const Field& f) {
  if (f.oid == kDate) {
    const auto d = static_cast<std::int32_t>(load<std::uint32_t>(sized(f, 4).data()));
    if (d == std::numeric_limits<std::int32_t>::max() ||
        d == std::numeric_limits<std::int32_t>::min()) {
      bad_binary(f, "is infinite");
    }
    return Timestamp(sys_days(days(kEpochDays + d)));
  }
  if (f.oid != kTimestamp && f.oid != kTimestamptz) bad_binary(f, "is not a timestamp");
  const auto us = static_cast<std::int64_t>(load<std::uint64_t>(sized(f, 8).data()));
  if (us == std::numeric_limits<std::int64_t>::max() ||
      us == std::numeric_limits<std::int64_t>::min()) {
    bad_binary(f, "is infinite");
  }
  return Timestamp(sys_days(days(kEpochDays))) + microseconds(us);
}

std::string format_uuid(std::string_view b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    const auto c = static_cast<unsigned char>(b[i]);
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

/// A timestamp as PostgreSQL's ISO DateStyle writes it (fraction without trailing zeros).
std::string format_timestamp(Timestamp t) {
  const sys_days d = floor<days>(t);
  std::string suffix;
  std::string out = format_date(d, suffix);
  const long long us = (t - d).count();
  std::string clock = format_clock(us);
  if (us % 1'000'000 == 0) {
    clock.resize(clock.size() - 7);
  } else {
    while (clock.back() == '0') clock.pop_back();
  }
  return out + " " + clock + (suffix.empty() ? "" : suffix);
}

/// A binary jsonb value's text: after its version byte (1).
std::string_view jsonb_text(const Field& f) {
  std::string_view t = require_text(f);
  if (t.empty() || t[0] != 1) bad_binary(f, "has an unknown jsonb version");
  return t.substr(1);
}

/// A binary value as the text format would have shown it, for the types where that text does
/// not depend on the session's settings.
std::string binary_as_text(const Field& f) {
  std::string_view t = require_text(f);
  if (text_like(f.oid)) return std::string(t);
  long long i = 0;
  if (binary_integer(f, i)) return std::to_string(i);
  switch (f.oid) {
    case kJsonb:
      return std::string(jsonb_text(f));
    case kUuid:
      return format_uuid(sized(f, 16));
    case kBool:
      return sized(f, 1)[0] != 0 ? "t" : "f";
    case kChar: {  // PostgreSQL's charout: high-bit bytes as \\ooo, NUL as nothing
      if (t.empty()) return "";
      const auto c = static_cast<unsigned char>(t[0]);
      if (c < 0x80) return std::string(1, static_cast<char>(c));
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      return buf;
    }
    case kFloat4:
    case kFloat8: {
      double v = 0;
      decode_floating(f, v);
      return *encode_floating(v, kFloat8).text;
    }
    case kBytea: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out = "\\x";
      for (unsigned char c : t) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
      return out;
    }
    case kDate: {
      std::string suffix;
      std::string out = format_date(floor<days>(binary_timestamp(f)), suffix);
      return out + suffix;
    }
    case kTimestamp:
      return format_timestamp(binary_timestamp(f));
    case kTimestamptz: {  // in UTC: the binary value carries no time zone
      std::string out = format_timestamp(binary_timestamp(f));
      const std::size_t bc = out.find(" BC");
      out.insert(bc == std::string::npos ? out.size() : bc, "+00");
      return out;
    }
    default:
      bad_binary(f, "cannot be read as a string: cast it to text in the query");
  }
}
}  // namespace

// ---- encoding ----------------------------------------------------------------------------------

namespace {
/// `v`'s bytes, big-endian, as a binary parameter of type `oid`.
template <class U>
Param binary_param(U v, unsigned oid) {
  std::string bytes(sizeof v, '\0');
  for (std::size_t i = 0; i < sizeof v; ++i) {
    bytes[i] = static_cast<char>(static_cast<std::uint64_t>(v) >> (8 * (sizeof v - 1 - i)));
  }
  return {std::move(bytes), oid, true};
}
}  // namespace

Param encode(bool v) {
  return {std::string(1, v ? '\1' : '\0'), kBool, true};
}
Param encode(std::int16_t v) {
  return binary_param(static_cast<std::uint16_t>(v), kInt2);
}
Param encode(std::int32_t v) {
  return binary_param(static_cast<std::uint32_t>(v), kInt4);
}
Param encode(std::int64_t v) {
  return binary_param(static_cast<std::uint64_t>(v), kInt8);
}
Param encode(long long v) {
  return binary_param(static_cast<std::uint64_t>(v), kInt8);
}
Param encode(double v) {
  return binary_param(std::bit_cast<std::uint64_t>(v), kFloat8);
}
Param encode(float v) {
  return binary_param(std::bit_cast<std::uint32_t>(v), kFloat4);
}
Param encode(std::string_view v) {
  return {std::string(v), 0};
}

Param encode(const Bytes& v) {
  return {v.data, kBytea, true};
}

namespace {
/// A binary array's text literal, as encode_array writes it from the elements.
std::string binary_array_text(const Field& f) {
  BinaryArray array(f);
  std::vector<Param> elements;
  elements.reserve(array.size());
  Field e;
  unsigned element_oid = 0;
  while (array.next(e)) {
    element_oid = e.oid;
    elements.push_back(e.text ? Param{std::string(*e.text), e.oid, true} : Param{});
  }
  return *encode_array(elements, element_oid).text;
}
}  // namespace

Param to_text(const Param& p) {
  if (!p.binary || !p.text) return Param{p.text, p.oid, false};
  const Field f{std::string_view(*p.text), p.oid, "", true};
  if (binary_array_element(p.oid) != 0) return {binary_array_text(f), p.oid, false};
  switch (p.oid) {
    case kFloat4: {
      float v = 0;
      decode_floating(f, v);
      return encode_floating(v, kFloat4);
    }
    case kFloat8: {
      double v = 0;
      decode_floating(f, v);
      return encode_floating(v, kFloat8);
    }
    case kBool:
      return {*p.text == std::string_view("\1", 1) ? "t" : "f", kBool, false};
    default:  // integers as their digits, bytea in hex
      return {binary_as_text(f), p.oid, false};
  }
}

namespace {
/// Microseconds from 1970-01-01 (the system clock's epoch) to 2000-01-01 (PostgreSQL's).
constexpr std::int64_t kEpochMicroseconds = kEpochDays * 86'400'000'000LL;
}  // namespace

Param encode(sys_days v) {
  std::string suffix;
  std::string text = format_date(v, suffix);
  Param p{text + suffix, 0};
  const long long d = v.time_since_epoch().count() - kEpochDays;
  if (std::in_range<std::int32_t>(d)) {  // beyond, the server's text error stands
    p.time = Param::Time::date;
    p.time_value = d;
  }
  return p;
}

Param encode_timestamp(Timestamp v) {
  sys_days d = floor<days>(v);
  long long us = (v - d).count();
  std::string suffix;
  std::string text = format_date(d, suffix);
  Param p{text + " " + format_clock(us) + "+00" + suffix, 0};
  const std::int64_t since_1970 = v.time_since_epoch().count();
  if (since_1970 >= std::numeric_limits<std::int64_t>::min() + kEpochMicroseconds) {
    p.time = Param::Time::point;
    p.time_value = since_1970 - kEpochMicroseconds;
  }
  return p;
}

Param encode_interval(microseconds v) {
  long long us = v.count();
  if (us == std::numeric_limits<long long>::min()) throw DataError("interval out of range");
  std::string text = us < 0 ? "-" : "";
  text.append(format_clock(us < 0 ? -us : us));
  Param p{std::move(text), 0};
  p.time = Param::Time::interval;
  p.time_value = us;
  return p;
}

std::optional<Param> time_in_binary(const Param& p, unsigned type) {
  if (!p.text) return std::nullopt;
  const auto u = static_cast<std::uint64_t>(p.time_value);
  switch (p.time) {
    case Param::Time::point:
      if (type != kTimestamp && type != kTimestamptz) return std::nullopt;
      return binary_param(u, type);
    case Param::Time::date:
      if (type != kDate) return std::nullopt;
      return binary_param(static_cast<std::uint32_t>(u), type);
    case Param::Time::interval: {  // microseconds, then 0 days and 0 months, as the text says
      if (type != kInterval) return std::nullopt;
      Param out = binary_param(u, type);
      out.text->append(8, '\0');
      return out;
    }
    case Param::Time::none:
      break;
  }
  return std::nullopt;
}

Param encode_array(const std::vector<Param>& elements, unsigned element_oid) {
  std::string out = "{";
  for (std::size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) out += ',';
    if (!elements[i].text) {
      out += "NULL";
      continue;
    }
    out += '"';
    const Param element = to_text(elements[i]);
    for (char c : *element.text) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return {std::move(out), array_oid(element_oid)};
}

// ---- decoding ----------------------------------------------------------------------------------

std::string_view require_text(const Field& f) {
  if (!f.text) {
    throw DataError("column \"" + std::string(f.column) +
                    "\" is NULL: read it as std::optional to accept NULL");
  }
  return *f.text;
}

void decode_full(const Field& f, bool& out) {
  if (f.binary) {
    if (f.oid != kBool) bad_binary(f, "is not a boolean");
    out = sized(f, 1)[0] != 0;
    return;
  }
  std::string_view t = require_text(f);
  if (t == "t" || t == "true") {
    out = true;
  } else if (t == "f" || t == "false") {
    out = false;
  } else {
    bad_value(f, t, "a boolean");
  }
}
void decode_full(const Field& f, std::int16_t& out) {
  decode_integer(f, out);
}
void decode_full(const Field& f, std::int32_t& out) {
  decode_integer(f, out);
}
void decode_full(const Field& f, std::int64_t& out) {
  decode_integer(f, out);
}
void decode_full(const Field& f, long long& out) {
  decode_integer(f, out);
}
void decode_full(const Field& f, double& out) {
  decode_floating(f, out);
}
void decode_full(const Field& f, float& out) {
  decode_floating(f, out);
}
void decode_full(const Field& f, char& out) {
  const std::string_view t = require_text(f);
  if (f.oid != kChar && f.oid != 0) {  // 0: an element of a text array
    throw DataError("column \"" + std::string(f.column) + "\": a " + type_name(f.oid) +
                    " value is no \"char\": read it as std::string");
  }
  if (f.binary) {
    out = sized(f, 1)[0];
  } else if (t.size() <= 1) {  // the text format: the byte itself, nothing for '\0'
    out = t.empty() ? '\0' : t[0];
  } else {  // a high-bit byte, as charout writes it: \ooo
    if (t.size() != 4 || t[0] != '\\') bad_value(f, t, "a \"char\"");
    int v = 0;
    for (char c : t.substr(1)) {
      if (c < '0' || c > '7') bad_value(f, t, "a \"char\"");
      v = v * 8 + (c - '0');
    }
    out = static_cast<char>(v);
  }
}

void decode(const Field& f, std::string& out) {
  if (f.binary && f.oid == kChar && f.text && f.text->size() == 1 &&
      static_cast<unsigned char>((*f.text)[0] - 1) < 0x7f) {
    out.assign(1, (*f.text)[0]);  // a "char" (pg_type's typcategory, ...) without a temporary
    return;
  }
  if (f.binary && !text_like(f.oid)) {
    out = binary_as_text(f);
  } else {
    const std::string_view t = require_text(f);
    out.assign(t.data(), t.size());
  }
}

void decode(const Field& f, std::string_view& out) {
  const std::string_view t = require_text(f);
  if (text_like(f.oid) || !binary_result_type(f.oid)) {
    out = t;
  } else if (f.oid == kJsonb) {
    out = f.binary ? jsonb_text(f) : t;
  } else {
    throw DataError("column \"" + std::string(f.column) + "\": a " + type_name(f.oid) +
                    " value is no text to view: read it as std::string");
  }
}

void decode(const Field& f, Bytes& out) {
  if (f.binary) {
    if (f.oid != kBytea && !text_like(f.oid)) bad_binary(f, "is not bytea");
    const std::string_view t = require_text(f);
    out.data.assign(t.data(), t.size());
    return;
  }
  std::string_view t = require_text(f);
  if (t.substr(0, 2) != "\\x" || t.size() % 2 != 0) bad_value(f, t, "hex bytea");
  out.data.clear();
  out.data.reserve(t.size() / 2 - 1);
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    bad_value(f, t, "hex bytea");
  };
  for (std::size_t i = 2; i < t.size(); i += 2) {
    out.data += static_cast<char>(nibble(t[i]) << 4 | nibble(t[i + 1]));
  }
}

void decode(const Field& f, sys_days& out) {
  if (f.binary) {
    out = floor<days>(binary_timestamp(f));
    return;
  }
  std::string_view t = require_text(f);
  std::size_t pos = 0;
  if (!parse_date(t, pos, out)) bad_value(f, t, "a date");
}

void decode(const Field& f, Timestamp& out) {
  if (f.binary) {
    out = binary_timestamp(f);
    return;
  }
  std::string_view t = require_text(f);
  std::size_t pos = 0;
  sys_days d;
  long long us = 0;
  if (!parse_date(t, pos, d) || pos >= t.size() || t[pos++] != ' ' || !parse_clock(t, pos, us)) {
    bad_value(f, t, "a timestamp");
  }
  long long offset = 0;  // seconds east of UTC
  if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    const int sign = t[pos++] == '-' ? -1 : 1;
    long long h = 0, m = 0, s = 0;
    if (!read_digits(t, pos, 2, h)) bad_value(f, t, "a timestamp");
    if (pos < t.size() && t[pos] == ':' && (++pos, !read_digits(t, pos, 2, m))) {
      bad_value(f, t, "a timestamp");
    }
    if (pos < t.size() && t[pos] == ':' && (++pos, !read_digits(t, pos, 2, s))) {
      bad_value(f, t, "a timestamp");
    }
    offset = sign * (h * 3600 + m * 60 + s);
  }
  out = Timestamp(d) + microseconds(us) - seconds(offset);
}

void decode(const Field& f, microseconds& out) {
  if (f.binary) {  // microseconds, days, months; a day is 24 h and a month 30 days, as below
    if (f.oid != kInterval) bad_binary(f, "is not an interval");
    const char* p = sized(f, 16).data();
    const auto us = static_cast<std::int64_t>(load<std::uint64_t>(p));
    const auto d = static_cast<std::int32_t>(load<std::uint32_t>(p + 8));
    const auto m = static_cast<std::int32_t>(load<std::uint32_t>(p + 12));
    out = microseconds(us + (static_cast<long long>(m) * 30 + d) * 86'400'000'000LL);
    return;
  }
  // IntervalStyle postgres, the default: "[N year[s]] [N mon[s]] [N day[s]] [-]HH:MM:SS[.f]".
  std::string_view t = require_text(f);
  std::size_t pos = 0;
  long long total = 0;
  while (pos < t.size()) {
    if (t[pos] == ' ') {
      ++pos;
      continue;
    }
    const bool negative = t[pos] == '-' || t[pos] == '+' ? t[pos++] == '-' : false;
    std::size_t mark = pos;
    long long n = 0;
    if (!read_number(t, pos, n)) bad_value(f, t, "an interval");
    if (pos < t.size() && t[pos] == ':') {
      pos = mark;
      long long us = 0;
      if (!parse_clock(t, pos, us)) bad_value(f, t, "an interval");
      total += negative ? -us : us;
      continue;
    }
    std::size_t unit_end = t.find(' ', pos + 1);
    std::string_view unit = t.substr(pos + 1, unit_end == t.npos ? t.npos : unit_end - pos - 1);
    pos = unit_end == t.npos ? t.size() : unit_end;
    long long days_per = 0;
    if (unit.starts_with("year")) {
      days_per = 360;
    } else if (unit.starts_with("mon")) {
      days_per = 30;
    } else if (unit.starts_with("day")) {
      days_per = 1;
    } else {
      bad_value(f, t, "an interval");
    }
    const long long us = n * days_per * 86'400'000'000LL;
    total += negative ? -us : us;
  }
  out = microseconds(total);
}

std::vector<std::optional<std::string>> split_array(const Field& f) {
  std::string_view t = require_text(f);
  if (t.size() < 2 || t.front() != '{' || t.back() != '}') bad_value(f, t, "an array");
  std::vector<std::optional<std::string>> out;
  std::size_t pos = 1;
  const std::size_t end = t.size() - 1;
  if (pos == end) return out;
  for (;;) {
    if (t[pos] == '{')
      throw DataError("column \"" + std::string(f.column) +
                      "\": only one-dimensional arrays are supported");
    std::string element;
    bool quoted = false;
    if (t[pos] == '"') {
      quoted = true;
      ++pos;
      while (pos < end && t[pos] != '"') {
        if (t[pos] == '\\') ++pos;
        if (pos < end) element += t[pos++];
      }
      ++pos;
    } else {
      while (pos < end && t[pos] != ',') element += t[pos++];
    }
    if (!quoted && element == "NULL") {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(std::move(element));
    }
    if (pos >= end) break;
    if (t[pos] != ',') bad_value(f, t, "an array");
    ++pos;
  }
  return out;
}

bool binary_result_type(unsigned oid) noexcept {
  return binary_scalar(oid) || binary_array_element(oid) != 0;
}

BinaryArray::BinaryArray(const Field& f) : column_(f.column) {
  std::string_view t = require_text(f);
  auto malformed = [&] { bad_binary(f, "is malformed"); };
  if (t.size() < 12) malformed();
  const auto ndim = static_cast<std::int32_t>(load<std::uint32_t>(t.data()));
  element_oid_ = load<std::uint32_t>(t.data() + 8);
  t.remove_prefix(12);
  if (ndim > 1) {
    throw DataError("column \"" + std::string(f.column) +
                    "\": only one-dimensional arrays are supported");
  }
  if (ndim == 1) {
    if (t.size() < 8) malformed();
    const auto n = static_cast<std::int32_t>(load<std::uint32_t>(t.data()));
    if (n < 0) malformed();
    count_ = static_cast<std::size_t>(n);
    t.remove_prefix(8);
  } else if (ndim != 0) {
    malformed();
  }
  rest_ = t;
}

void BinaryArray::malformed() const {
  throw DataError("column \"" + std::string(column_) + "\": a binary array is malformed");
}

}  // namespace weave::pg::detail
