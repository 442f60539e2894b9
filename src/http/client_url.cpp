// URL parsing and joining for the client, and the checks that keep a request's head well-formed:
// no CR, LF or NUL reaches the wire from a URL or a header (header injection).
#include <charconv>
#include <string>
#include <string_view>

#include "client_request.hpp"
#include "weave/http.hpp"

namespace weave::http {

namespace {

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

/// Escapes what may not appear raw in a request target; existing %XX escapes stay as they are.
std::string escape_target(std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c >= 0x80 || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' ||
        c == '`' || c == '{' || c == '|' || c == '}') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0f];
    } else {
      out += ch;
    }
  }
  return out;
}

std::uint16_t default_port(std::string_view scheme) {
  return scheme == "https" ? 443 : 80;
}

/// Removes "." and ".." segments (RFC 3986 5.2.4).
std::string remove_dot_segments(std::string_view path) {
  std::string out;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t end = path.find('/', i + 1);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(i, end - i);  // "/name" or "name"
    if (seg == "/." || seg == ".") {
      if (end == path.size()) out += '/';
    } else if (seg == "/.." || seg == "..") {
      const std::size_t cut = out.rfind('/');
      out.erase(cut == std::string::npos ? 0 : cut);
      if (end == path.size()) out += '/';
    } else {
      out += seg;
    }
    i = end;
  }
  return out.empty() ? "/" : out;
}

}  // namespace

URL URL::parse(std::string_view text) {
  for (char ch : text) {
    if (is_control(static_cast<unsigned char>(ch))) {
      throw InvalidURL("URL contains a control character (CR, LF, NUL, ...): refused");
    }
  }
  const std::size_t colon = text.find("://");
  if (colon == std::string_view::npos) throw InvalidURL("URL without scheme: " + std::string(text));
  URL url;
  url.scheme = lower(text.substr(0, colon));
  if (url.scheme != "http" && url.scheme != "https") {
    throw InvalidURL("unsupported URL scheme: " + url.scheme);
  }
  std::string_view rest = text.substr(colon + 3);
  const std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    throw InvalidURL("credentials in the URL are not supported; send an Authorization header");
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw InvalidURL("unclosed IPv6 literal in URL");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw InvalidURL("bad characters after IPv6 literal in URL");
      port_text = after.substr(1);
    }
    if (url.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      throw InvalidURL("bad IPv6 literal in URL");
    }
  } else {
    const std::size_t c = authority.rfind(':');
    url.host = lower(authority.substr(0, c));
    if (c != std::string_view::npos) port_text = authority.substr(c + 1);
    if (url.host.find_first_of(" \"<>\\^`{|}[]") != std::string::npos) {
      throw InvalidURL("bad character in URL host");
    }
  }
  if (url.host.empty()) throw InvalidURL("URL without host: " + std::string(text));
  url.port = default_port(url.scheme);
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      std::string message = "bad port in URL: ";
      message.append(port_text);
      throw InvalidURL(message);
    }
    url.port = static_cast<std::uint16_t>(value);
  }
  target = target.substr(0, target.find('#'));
  if (target.empty() || target.front() == '?') {
    std::string rooted(1, '/');
    rooted += escape_target(target);
    url.target = std::move(rooted);
  } else {
    url.target = escape_target(target);
  }
  return url;
}

URL URL::join(std::string_view location) const {
  if (location.find("://") != std::string_view::npos &&
      location.find("://") < location.find_first_of("/?#")) {
    return parse(location);
  }
  if (location.substr(0, 2) == "//") return parse(scheme + ":" + std::string(location));
  for (char ch : location) {
    if (is_control(static_cast<unsigned char>(ch))) {
      throw InvalidURL("URL contains a control character (CR, LF, NUL, ...): refused");
    }
  }
  URL out = *this;
  location = location.substr(0, location.find('#'));
  if (location.empty()) return out;
  if (location.front() == '?') {
    out.target = target.substr(0, target.find('?')) + escape_target(location);
    return out;
  }
  const std::size_t q = location.find('?');
  std::string path(location.substr(0, q));
  const std::string query = q == std::string_view::npos ? "" : std::string(location.substr(q));
  if (path.front() != '/') {
    const std::string base = target.substr(0, target.find('?'));
    path = base.substr(0, base.rfind('/') + 1) + path;
  }
  out.target = escape_target(remove_dot_segments(path) + query);
  return out;
}

std::string URL::host_header() const {
  std::string h;
  const bool ipv6 = host.find(':') != std::string::npos;
  if (ipv6) h += '[';
  h += host;
  if (ipv6) h += ']';
  if (port != default_port(scheme)) {
    h += ':';
    h += std::to_string(port);
  }
  return h;
}

std::string URL::origin() const {
  return scheme + "://" + host_header();
}

namespace detail {

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(ch) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

void check_header(std::string_view name, std::string_view value) {
  if (!is_token(name)) {
    throw ValueError("invalid HTTP header name (not a token, or with CR, LF or NUL): refused");
  }
  for (char ch : value) {
    if (ch == '\r' || ch == '\n' || ch == '\0') {
      throw ValueError("HTTP header value of '" + std::string(name) +
                       "' contains CR, LF or NUL: refused (header injection)");
    }
  }
}

void check_method(std::string_view method) {
  if (!is_token(method)) throw ValueError("invalid HTTP method: refused");
}

}  // namespace detail

}  // namespace weave::http
