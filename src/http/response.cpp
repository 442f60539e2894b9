// Responses: StreamResponse and Response, and how a connection writes them.
#include <cerrno>
#include <charconv>
#include <ctime>
#include <system_error>

#include "server_connection.hpp"
#include "weave/errors.hpp"

namespace weave::http {
namespace {
// A header name is a token (RFC 9110 5.1); names and values never hold CR, LF or NUL, which
// would let a value start a header or a response of its own.
bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool injects(std::string_view s) noexcept {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

void check_field(std::string_view name, std::string_view value) {
  if (!is_token(name))
    throw ValueError("http: a header name must be a token: " + std::string(name));
  if (injects(value)) throw ValueError("http: CR, LF or NUL in the value of " + std::string(name));
}

// The Date header, made once a second (RFC 9110 5.6.7's IMF-fixdate).
std::string_view http_date() {
  thread_local std::time_t cached_second = 0;
  thread_local char text[32];
  thread_local std::size_t length = 0;
  timespec now{};
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  if (now.tv_sec != cached_second) {
    cached_second = now.tv_sec;
    std::tm tm{};
    gmtime_r(&cached_second, &tm);
    length = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  return {text, length};
}

void append_number(std::string& out, std::uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  (void)ec;
  out.append(digits, end);
}

bool bodiless_status(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}
}  // namespace

StreamResponse::StreamResponse(int status, std::string reason) : status_(200) {
  set_status(status, std::move(reason));
}

std::string_view StreamResponse::reason() const noexcept {
  return reason_.empty() ? reason_phrase(status_) : std::string_view(reason_);
}

void StreamResponse::check_not_prepared() const {
  if (prepared()) throw ValueError("http: the response's head was already sent");
}

void StreamResponse::set_status(int status, std::string reason) {
  check_not_prepared();
  if (status < 100 || status > 999) throw ValueError("http: a status is 100..999");
  if (injects(reason)) throw ValueError("http: CR, LF or NUL in a reason phrase");
  status_ = status;
  reason_ = std::move(reason);
}

void StreamResponse::set_header(std::string name, std::string value) {
  check_not_prepared();
  check_field(name, value);
  headers_.set(std::move(name), std::move(value));
}

void StreamResponse::add_header(std::string name, std::string value) {
  check_not_prepared();
  check_field(name, value);
  headers_.add(std::move(name), std::move(value));
}

void StreamResponse::set_content_length(std::uint64_t length) {
  check_not_prepared();
  content_length_ = length;
  chunked_ = false;
}

Coro<void> StreamResponse::prepare(Request& request) {
  if (prepared()) throw RuntimeError("http: prepare() was already called");
  co_await request.connection_->prepare(*this, request);
}

Coro<void> StreamResponse::write(std::string data) {
  if (!prepared()) throw RuntimeError("http: write() before prepare()");
  if (eof_written_) throw RuntimeError("http: write() after write_eof()");
  co_await connection_->write_body(*this, std::move(data), false);
}

Coro<void> StreamResponse::drain() {
  if (!prepared()) throw RuntimeError("http: drain() before prepare()");
  co_await connection_->drain();
}

Coro<void> StreamResponse::write_eof(std::string data) {
  if (!prepared()) throw RuntimeError("http: write_eof() before prepare()");
  if (eof_written_) co_return;
  co_await connection_->write_body(*this, std::move(data), true);
}

Response::Response(int status, std::string body) : StreamResponse(status), body_(std::move(body)) {}

Response::Response(int status, std::string body, std::string content_type)
    : StreamResponse(status), body_(std::move(body)), content_type_(std::move(content_type)) {
  if (injects(content_type_)) throw ValueError("http: CR, LF or NUL in a Content-Type");
}

Response::Response(StreamResponse&& streamed) noexcept : StreamResponse(std::move(streamed)) {}

std::string_view Response::content_type() const noexcept {
  return content_type_.empty() ? std::string_view("text/plain; charset=utf-8")
                               : std::string_view(content_type_);
}

namespace detail {

void ServerConnection::write_head(Pending& p, const StreamResponse& r,
                                  std::string_view content_type,
                                  std::optional<std::uint64_t> length, bool chunked) {
  const bool close = must_close_after(p) || (!length && !chunked);
  if (close) closing_ = true;
  out_ += "HTTP/1.1 ";
  append_number(out_, static_cast<std::uint64_t>(r.status_));
  out_ += ' ';
  out_ += r.reason();
  out_ += "\r\n";
  if (!content_type.empty() && !r.headers_.contains("content-type")) {
    out_ += "Content-Type: ";
    out_ += content_type;
    out_ += "\r\n";
  }
  if (length && !bodiless_status(r.status_)) {
    out_ += "Content-Length: ";
    append_number(out_, *length);
    out_ += "\r\n";
  }
  if (chunked) out_ += "Transfer-Encoding: chunked\r\n";
  out_ += "Date: ";
  out_ += http_date();
  out_ += "\r\n";
  if (!options_.server_header.empty() && !r.headers_.contains("server")) {
    out_ += "Server: ";
    out_ += options_.server_header;
    out_ += "\r\n";
  }
  if (close) {
    out_ += "Connection: close\r\n";
  } else if (p.request.version().minor == 0) {
    out_ += "Connection: keep-alive\r\n";
  }
  for (const HeaderField& f : r.headers_) {
    // The framing is the server's to say: a handler's own would contradict it.
    if (iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding") ||
        iequals(f.name, "connection")) {
      continue;
    }
    out_ += f.name;
    out_ += ": ";
    out_ += f.value;
    out_ += "\r\n";
  }
  out_ += "\r\n";
  p.answered = true;
}

void ServerConnection::respond(Pending& p, Response& response) {
  const bool head_only = p.request.method() == "HEAD" || bodiless_status(response.status_);
  write_head(p, response, response.content_type(), response.body_.size(), false);
  if (!head_only) out_ += response.body_;
}

void ServerConnection::respond_error(Pending& p, int status, std::string_view body,
                                     const Headers* headers, std::string_view reason) {
  Response response(status, std::string(body));
  if (!reason.empty() && reason != reason_phrase(status)) response.reason_ = std::string(reason);
  if (headers != nullptr) {
    for (const HeaderField& f : *headers) response.add_header(f.name, f.value);
  }
  // A request that failed to parse says nothing trustworthy about the connection's future.
  if (p.error_status != 0 || status == 400 || status == 408 || status == 413 || status == 414 ||
      status == 431) {
    closing_ = true;
  }
  respond(p, response);
}

Coro<void> ServerConnection::prepare(StreamResponse& response, Request& request) {
  Pending& p = *front_;
  if (&p.request != &request || p.answered) {
    throw RuntimeError("http: this request already has a response");
  }
  response.head_only_ = request.method() == "HEAD" || bodiless_status(response.status_);
  std::optional<std::uint64_t> length = response.content_length_;
  bool chunked = false;
  if (!length && !response.head_only_ && request.version().minor >= 1) {
    chunked = true;
  }
  response.chunked_ = chunked;
  response.connection_ = this;
  write_head(p, response, {}, length, chunked);
  flush();
  co_await drain();
}

Coro<void> ServerConnection::write_body(StreamResponse& r, std::string data, bool last) {
  if (lost_) throw std::system_error(ECONNRESET, std::generic_category(), "http: client gone");
  if (r.content_length_ && r.body_written_ + data.size() > *r.content_length_) {
    throw ValueError("http: more body than the declared Content-Length");
  }
  r.body_written_ += data.size();
  if (last) {
    r.eof_written_ = true;
    if (r.content_length_ && r.body_written_ != *r.content_length_ && !r.head_only_) {
      closing_ = true;  // the client would wait for the rest: only closing ends its wait
      throw ValueError("http: less body than the declared Content-Length");
    }
  }
  if (!r.head_only_) {
    if (r.chunked_) {
      if (!data.empty()) {
        char digits[20];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, data.size(), 16);
        (void)ec;
        out_.append(digits, end);
        out_ += "\r\n";
        out_ += data;
        out_ += "\r\n";
      }
      if (last) out_ += "0\r\n\r\n";
    } else {
      out_ += data;
    }
  }
  flush();
  co_await drain();
}

Coro<void> ServerConnection::drain() {
  if (lost_) throw std::system_error(ECONNRESET, std::generic_category(), "http: client gone");
  co_await wait_writable();
  if (lost_) throw std::system_error(ECONNRESET, std::generic_category(), "http: client gone");
}

}  // namespace detail
}  // namespace weave::http
