#pragma once
// What the client checks and writes before a request goes out: tokens, header values without
// CR/LF/NUL, and the request head.

#include <string>
#include <string_view>

#include "weave/http.hpp"

namespace weave::http::detail {

bool is_token(std::string_view s) noexcept;
/// Errors: ValueError for a name that is not a token or a value with CR, LF or NUL.
void check_header(std::string_view name, std::string_view value);
/// Errors: ValueError when `method` is not a token.
void check_method(std::string_view method);

/// How the body of a request is framed.
enum class BodyFraming { none, sized, chunked };

/// The request line and headers, ending with the empty line. Host, Accept, Accept-Encoding
/// (when `accept_encoding`) and User-Agent are added unless `headers` has them.
std::string request_head(std::string_view method, const URL& url, const Headers& headers,
                         BodyFraming framing, std::size_t content_length, bool accept_encoding,
                         bool close);

/// Whether a request with this method may be sent again after a stale connection (RFC 9110 9.2.2).
bool is_idempotent(std::string_view method) noexcept;

}  // namespace weave::http::detail
