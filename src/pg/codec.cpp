// C++ values to and from PostgreSQL's text format (see include/weave/detail/pg_codec.hpp).
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "weave/pg.hpp"

namespace weave::pg::detail {

namespace {
using namespace std::chrono;

constexpr unsigned kBool = 16, kBytea = 17, kInt8 = 20, kInt2 = 21, kInt4 = 23, kFloat4 = 700,
                   kFloat8 = 701;

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
}  // namespace

// ---- encoding ----------------------------------------------------------------------------------

Param encode(bool v) {
  return {v ? "t" : "f", kBool};
}
Param encode(std::int16_t v) {
  return {std::to_string(v), kInt2};
}
Param encode(std::int32_t v) {
  return {std::to_string(v), kInt4};
}
Param encode(std::int64_t v) {
  return {std::to_string(v), kInt8};
}
Param encode(long long v) {
  return {std::to_string(v), kInt8};
}
Param encode(double v) {
  return encode_floating(v, kFloat8);
}
Param encode(float v) {
  return encode_floating(v, kFloat4);
}
Param encode(std::string_view v) {
  return {std::string(v), 0};
}

Param encode(const Bytes& v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + v.data.size() * 2);
  for (unsigned char c : v.data) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return {std::move(out), kBytea};
}

Param encode(sys_days v) {
  std::string suffix;
  std::string text = format_date(v, suffix);
  return {text + suffix, 0};
}

Param encode_timestamp(Timestamp v) {
  sys_days d = floor<days>(v);
  long long us = (v - d).count();
  std::string suffix;
  std::string text = format_date(d, suffix);
  return {text + " " + format_clock(us) + "+00" + suffix, 0};
}

Param encode_interval(microseconds v) {
  long long us = v.count();
  if (us == std::numeric_limits<long long>::min()) throw DataError("interval out of range");
  std::string text = us < 0 ? "-" : "";
  text.append(format_clock(us < 0 ? -us : us));
  return {std::move(text), 0};
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
    for (char c : *elements[i].text) {
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

void decode(const Field& f, bool& out) {
  std::string_view t = require_text(f);
  if (t == "t" || t == "true") {
    out = true;
  } else if (t == "f" || t == "false") {
    out = false;
  } else {
    bad_value(f, t, "a boolean");
  }
}
void decode(const Field& f, std::int16_t& out) {
  parse_integer(f, out);
}
void decode(const Field& f, std::int32_t& out) {
  parse_integer(f, out);
}
void decode(const Field& f, std::int64_t& out) {
  parse_integer(f, out);
}
void decode(const Field& f, long long& out) {
  parse_integer(f, out);
}
void decode(const Field& f, double& out) {
  parse_floating(f, out);
}
void decode(const Field& f, float& out) {
  parse_floating(f, out);
}
void decode(const Field& f, std::string& out) {
  out = std::string(require_text(f));
}

void decode(const Field& f, Bytes& out) {
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
  std::string_view t = require_text(f);
  std::size_t pos = 0;
  if (!parse_date(t, pos, out)) bad_value(f, t, "a date");
}

void decode(const Field& f, Timestamp& out) {
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

}  // namespace weave::pg::detail
