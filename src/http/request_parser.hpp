#pragma once
// The request side of llhttp, with the checks RFC 9112 asks of a server that llhttp 8.1 leaves
// out or that Debian's 8.1.0 lacks: obsolete line folding (5.2), a bare CR in a header line
// (CVE-2023-30589), a missing, repeated or malformed Host (3.2), a transfer coding other than a
// final chunked (6.1), Transfer-Encoding in an HTTP/1.0 request (6.1), control characters, and
// the size limits. Any of them fails the parse with the status to answer; the connection then
// closes, since the framing of what follows can no longer be trusted.
#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "weave/http.hpp"

namespace weave::http::detail {

struct ParserLimits {
  std::size_t max_line_size = 8190;
  std::size_t max_field_size = 8190;
  std::size_t max_headers = 128;
};

class RequestParser {
 public:
  /// What the parser tells: a head (written into the storage head() returns), body bytes, and
  /// the end of each request.
  class Sink {
   public:
    virtual ~Sink() = default;
    /// Where the next request's head goes; called as each request begins.
    virtual RequestHead& begin_request() = 0;
    virtual void head_complete() = 0;
    virtual void body(std::string_view data) = 0;
    virtual void request_complete() = 0;
  };

  RequestParser(Sink& sink, ParserLimits limits) noexcept;
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  /// Parses `data`, calling the sink as it goes. Returns false once the input is bad (for this
  /// and every later call); error_status() and error_reason() say why.
  bool feed(std::string_view data);
  bool failed() const noexcept { return error_status_ != 0; }
  int error_status() const noexcept { return error_status_; }
  std::string_view error_reason() const noexcept { return error_reason_; }
  /// No request is partly received.
  bool idle() const noexcept { return !in_message_; }
  /// A CONNECT or an Upgrade: the bytes after its head are not HTTP, so parsing ends there.
  bool upgraded() const noexcept { return upgraded_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t n);
  static int on_message_complete(llhttp_t* p);

  int fail(int status, const char* reason) noexcept;
  int finish_field() noexcept;
  int check_head() noexcept;
  static bool valid_host(std::string_view host) noexcept;

  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  Sink& sink_;
  ParserLimits limits_;
  RequestHead* head_ = nullptr;
  std::string field_;
  std::string value_;
  // Where the current value's last piece ended, and the bounds of the data being parsed and of
  // the data before it: a piece that does not continue the last one is a folded line.
  const char* value_end_ = nullptr;
  const char* data_begin_ = nullptr;
  const char* previous_data_end_ = nullptr;
  bool in_value_ = false;
  // Between a name and its value's first piece only ':' and blanks may stand; a line break there
  // is a fold of an empty value, which llhttp skips without a word.
  bool gap_open_ = false;
  bool gap_newline_ = false;
  const char* gap_start_ = nullptr;
  bool in_message_ = false;
  bool in_trailers_ = false;
  bool upgraded_ = false;
  int host_count_ = 0;
  int transfer_encoding_count_ = 0;
  int error_status_ = 0;
  const char* error_reason_ = "";
};

}  // namespace weave::http::detail
