#include "request_parser.hpp"

#include <algorithm>
#include <cstring>

namespace weave::http::detail {
namespace {
RequestParser& self(llhttp_t* p) {
  return *static_cast<RequestParser*>(p->data);
}

bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

// Characters a field value may not hold: CR, LF and NUL always (RFC 9110 5.5), and the other
// controls but HT (obs-text, 0x80 and up, is allowed).
bool bad_value_char(unsigned char c) noexcept {
  return (c < 0x20 && c != '\t') || c == 0x7f;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}
}  // namespace

void RequestHead::clear() noexcept {
  method.clear();
  target.clear();
  version = {};
  headers.clear();
  keep_alive = true;
  chunked = false;
  expect_continue = false;
  content_length.reset();
}

RequestParser::RequestParser(Sink& sink, ParserLimits limits) noexcept
    : sink_(sink), limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = on_message_begin;
  settings_.on_url = on_url;
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_header_value_complete = on_header_value_complete;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

bool RequestParser::feed(std::string_view data) {
  if (failed()) return false;
  const char* at = data.data();
  const char* end = data.data() + data.size();
  data_begin_ = at;
  if (gap_open_) gap_start_ = at;
  while (at < end && !upgraded_) {
    llhttp_errno_t err = llhttp_execute(&parser_, at, static_cast<std::size_t>(end - at));
    if (err == HPE_OK) break;
    if (failed()) break;
    if (err == HPE_PAUSED_UPGRADE && !upgraded_) {
      // An Upgrade the server does not take: the exchange goes on in HTTP (RFC 9110 7.8).
      at = llhttp_get_error_pos(&parser_);
      llhttp_resume_after_upgrade(&parser_);
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE || err == HPE_PAUSED) break;
    fail(400, llhttp_get_error_reason(&parser_));
    break;
  }
  if (gap_open_ && !failed() && gap_start_ != nullptr && gap_start_ <= end) {
    const std::size_t n = static_cast<std::size_t>(end - gap_start_);
    gap_newline_ = gap_newline_ || std::memchr(gap_start_, '\r', n) != nullptr ||
                   std::memchr(gap_start_, '\n', n) != nullptr;
  }
  previous_data_end_ = end;
  return !failed();
}

int RequestParser::fail(int status, const char* reason) noexcept {
  if (error_status_ == 0) {
    error_status_ = status;
    error_reason_ = reason != nullptr ? reason : "Bad Request";
  }
  return HPE_USER;
}

int RequestParser::on_message_begin(llhttp_t* p) {
  RequestParser& s = self(p);
  s.head_ = &s.sink_.begin_request();
  s.head_->clear();
  s.in_message_ = true;
  s.in_trailers_ = false;
  s.in_value_ = false;
  s.gap_open_ = false;
  s.host_count_ = 0;
  s.transfer_encoding_count_ = 0;
  s.field_.clear();
  s.value_.clear();
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, std::size_t n) {
  RequestParser& s = self(p);
  if (s.head_->target.size() + n > s.limits_.max_line_size) {
    return s.fail(414, "Request-URI Too Long");
  }
  s.head_->target.append(at, n);
  return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  RequestParser& s = self(p);
  if (s.field_.size() + n > s.limits_.max_field_size) {
    return s.fail(431, "Request Header Fields Too Large");
  }
  if (std::memchr(at, '\r', n) != nullptr || std::memchr(at, '\n', n) != nullptr) {
    return s.fail(400, "Bare CR or LF in a header name");
  }
  s.field_.append(at, n);
  s.gap_open_ = true;
  s.gap_newline_ = false;
  s.gap_start_ = at + n;
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  RequestParser& s = self(p);
  if (n == 0) return 0;  // an empty value; llhttp places it past the line's end
  // llhttp drops the whitespace after the colon, so a value's first piece that starts with some
  // is a continuation line; so is a later piece that does not start where the last one ended
  // (or, across two reads, at the start of the new data right after the old data's end).
  bool folded = false;
  if (!s.in_value_) {
    folded = n > 0 && is_ows(at[0]);
    if (s.gap_open_) {
      const std::size_t gap = static_cast<std::size_t>(at - s.gap_start_);
      folded = folded || s.gap_newline_ || std::memchr(s.gap_start_, '\r', gap) != nullptr ||
               std::memchr(s.gap_start_, '\n', gap) != nullptr;
      s.gap_open_ = false;
    }
  } else {
    const bool contiguous =
        at == s.value_end_ || (s.value_end_ == s.previous_data_end_ && at == s.data_begin_);
    folded = !contiguous;
  }
  if (folded) return s.fail(400, "Obsolete line folding in a header");
  s.in_value_ = true;
  s.value_end_ = at + n;
  if (s.value_.size() + n > s.limits_.max_field_size) {
    return s.fail(431, "Request Header Fields Too Large");
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (bad_value_char(static_cast<unsigned char>(at[i]))) {
      return s.fail(
          400, at[i] == '\r' ? "Bare CR in a header value" : "Control character in a header value");
    }
  }
  s.value_.append(at, n);
  return 0;
}

int RequestParser::on_header_value_complete(llhttp_t* p) {
  return self(p).finish_field();
}

int RequestParser::finish_field() noexcept {
  in_value_ = false;
  gap_open_ = false;
  if (in_trailers_) {
    // Trailer fields are read and dropped: none of them may change how the request is handled.
    field_.clear();
    value_.clear();
    return 0;
  }
  if (head_->headers.size() >= limits_.max_headers) {
    return fail(431, "Too many header fields");
  }
  if (iequals(field_, "host")) ++host_count_;
  if (iequals(field_, "transfer-encoding")) ++transfer_encoding_count_;
  std::string_view value = trim(value_);
  head_->headers.add(field_, std::string(value));
  field_.clear();
  value_.clear();
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  RequestParser& s = self(p);
  RequestHead& h = *s.head_;
  h.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(p)));
  h.version = {llhttp_get_http_major(p), llhttp_get_http_minor(p)};
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.chunked = (p->flags & F_CHUNKED) != 0;
  if ((p->flags & F_CONTENT_LENGTH) != 0) h.content_length = p->content_length;
  s.gap_open_ = false;
  if (s.check_head() != 0) return -1;
  s.in_trailers_ = true;
  if (h.method == "CONNECT") s.upgraded_ = true;
  s.sink_.head_complete();
  return 0;
}

int RequestParser::check_head() noexcept {
  RequestHead& h = *head_;
  if (h.version.major != 1) {
    fail(505, "HTTP Version Not Supported");
    return error_status_;
  }
  if (host_count_ > 1) {
    fail(400, "More than one Host header");
    return error_status_;
  }
  if (host_count_ == 0 && h.version.minor >= 1) {
    fail(400, "Missing Host header");
    return error_status_;
  }
  if (host_count_ == 1 && !valid_host(*h.headers.get("host"))) {
    fail(400, "Malformed Host header");
    return error_status_;
  }
  if (transfer_encoding_count_ > 0) {
    if (h.version.minor == 0) {
      fail(400, "Transfer-Encoding in an HTTP/1.0 request");
      return error_status_;
    }
    int chunked = 0;
    for (std::string_view v : h.headers.get_all("transfer-encoding")) {
      while (!v.empty()) {
        std::size_t comma = v.find(',');
        std::string_view coding = trim(v.substr(0, comma));
        v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
        if (coding.empty()) continue;
        if (!iequals(coding, "chunked")) {
          fail(501, "Transfer coding not implemented");
          return error_status_;
        }
        ++chunked;
      }
    }
    if (chunked != 1) {
      fail(400, "Transfer-Encoding must be a single final chunked");
      return error_status_;
    }
  }
  if (std::optional<std::string_view> expect = h.headers.get("expect")) {
    if (!iequals(*expect, "100-continue")) {
      fail(417, "Expectation Failed");
      return error_status_;
    }
    h.expect_continue = h.version.minor >= 1;
  }
  const std::string_view target = h.target;
  const bool origin_form = !target.empty() && target.front() == '/';
  const bool asterisk_form = target == "*" && h.method == "OPTIONS";
  const bool absolute_form = target.starts_with("http://") || target.starts_with("https://");
  const bool authority_form = h.method == "CONNECT" && !target.empty();
  if (!origin_form && !asterisk_form && !absolute_form && !authority_form) {
    fail(400, "Malformed request-target");
    return error_status_;
  }
  return 0;
}

bool RequestParser::valid_host(std::string_view host) noexcept {
  auto port_ok = [](std::string_view port) {
    return port.size() <= 5 &&
           std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!host.empty() && host.front() == '[') {
    std::size_t close = host.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : host.substr(1, close - 1)) {
      const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return false;
    }
    std::string_view rest = host.substr(close + 1);
    return rest.empty() || (rest.front() == ':' && port_ok(rest.substr(1)));
  }
  std::size_t colon = host.find(':');
  std::string_view name = host.substr(0, colon);
  for (char c : name) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && (c == '\0' || std::strchr("-._~!$&'()*+,;=%", c) == nullptr)) return false;
  }
  return colon == std::string_view::npos || port_ok(host.substr(colon + 1));
}

int RequestParser::on_body(llhttp_t* p, const char* at, std::size_t n) {
  self(p).sink_.body(std::string_view(at, n));
  return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  RequestParser& s = self(p);
  s.in_message_ = false;
  s.in_trailers_ = false;
  s.sink_.request_complete();
  // Nothing after a CONNECT's head is HTTP; the connection closes after its answer.
  return s.upgraded_ ? HPE_PAUSED : 0;
}

}  // namespace weave::http::detail
