#include "target.hpp"

namespace weave::http::detail {
namespace {
int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool percent_decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  if (in.find_first_of(plus_is_space ? "%+" : "%") == std::string_view::npos) {
    out.assign(in);
    return true;
  }
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

bool split_target(std::string_view target, std::string& path, std::string_view& query_string,
                  QueryParams& query) {
  query.clear();
  query_string = {};
  path.clear();
  if (target == "*") {
    path.push_back('*');  // not operator=: g++ 12's -Wrestrict misfires on it (GCC PR 105329)
    return true;
  }
  if (std::size_t scheme = target.find("://");
      scheme != std::string_view::npos && target.front() != '/') {
    // absolute-form: the path starts after the authority.
    std::size_t start = target.find_first_of("/?", scheme + 3);
    target = start == std::string_view::npos ? std::string_view("/") : target.substr(start);
  }
  std::size_t mark = target.find('?');
  std::string_view raw_path = target.substr(0, mark);
  if (mark != std::string_view::npos) query_string = target.substr(mark + 1);
  if (raw_path.empty()) {
    path.push_back('/');
  } else if (!percent_decode(raw_path, path, false)) {
    return false;
  }
  std::string_view q = query_string;
  std::string name;
  std::string value;
  while (!q.empty()) {
    std::size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    if (!percent_decode(pair.substr(0, eq), name, true)) return false;
    value.clear();
    if (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), value, true)) {
      return false;
    }
    query.add(name, value);
  }
  return true;
}

}  // namespace weave::http::detail

namespace weave::http {

std::optional<std::string_view> QueryParams::get(std::string_view name) const noexcept {
  for (const auto& [k, v] : params_) {
    if (k == name) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<std::string_view> QueryParams::get_all(std::string_view name) const {
  std::vector<std::string_view> values;
  for (const auto& [k, v] : params_) {
    if (k == name) values.emplace_back(v);
  }
  return values;
}

void QueryParams::add(std::string name, std::string value) {
  params_.emplace_back(std::move(name), std::move(value));
}

}  // namespace weave::http
