// The request head, written once into one string so that a request without a large body goes
// out in one write.
#include "client_request.hpp"

#include <string>

namespace weave::http::detail {

std::string request_head(std::string_view method, const URL& url, const Headers& headers,
                         BodyFraming framing, std::size_t content_length, bool accept_encoding,
                         bool close) {
  std::string out;
  out.reserve(128 + url.target.size());
  out.append(method).append(" ").append(url.target).append(" HTTP/1.1\r\n");
  if (!headers.contains("Host")) out.append("Host: ").append(url.host_header()).append("\r\n");
  for (const HeaderField& f : headers) {
    // The framing is ours to write: a caller's Content-Length or Transfer-Encoding could
    // contradict the body actually sent (request smuggling).
    if (iequals(f.name, "Content-Length") || iequals(f.name, "Transfer-Encoding")) continue;
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  if (!headers.contains("Accept")) out.append("Accept: */*\r\n");
  if (accept_encoding && !headers.contains("Accept-Encoding")) {
    out.append("Accept-Encoding: gzip, deflate\r\n");
  }
  if (!headers.contains("User-Agent")) out.append("User-Agent: weave-http/1.0\r\n");
  if (close && !headers.contains("Connection")) out.append("Connection: close\r\n");
  if (framing == BodyFraming::sized) {
    out.append("Content-Length: ").append(std::to_string(content_length)).append("\r\n");
  } else if (framing == BodyFraming::chunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
  out.append("\r\n");
  return out;
}

bool is_idempotent(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

}  // namespace weave::http::detail
