#pragma once
// What the HTTP suites share: a raw client that sends bytes as given (so that malformed input
// reaches the server unchanged) and takes the answers apart, and a server on a free port.

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/bounded.hpp"
#include "weave/http.hpp"
#include "weave/weave.hpp"

namespace weave_test {

/// One response as it came over the wire.
struct RawResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (weave::http::iequals(k, name)) return v;
    }
    return std::nullopt;
  }
};

/// Takes the responses out of `bytes`, as many as are complete; `rest` gets what is left.
/// `head_only` marks the responses (by index) that answer a HEAD and so have no body.
inline std::vector<RawResponse> parse_responses(std::string_view bytes, std::string* rest = nullptr,
                                                const std::vector<bool>& head_only = {}) {
  std::vector<RawResponse> out;
  while (true) {
    std::size_t end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos) break;
    RawResponse r;
    std::string_view head = bytes.substr(0, end);
    std::size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    if (!status_line.starts_with("HTTP/1.1 ") || status_line.size() < 12) {
      throw std::runtime_error("bad status line: " + std::string(status_line));
    }
    r.status = std::stoi(std::string(status_line.substr(9, 3)));
    r.reason = std::string(status_line.substr(status_line.size() > 13 ? 13 : 12));
    std::string_view fields = eol == std::string_view::npos ? "" : head.substr(eol + 2);
    while (!fields.empty()) {
      std::size_t e = fields.find("\r\n");
      std::string_view line = fields.substr(0, e);
      std::size_t colon = line.find(':');
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
      fields = e == std::string_view::npos ? "" : fields.substr(e + 2);
    }
    std::string_view after = bytes.substr(end + 4);
    const bool no_body = (out.size() < head_only.size() && head_only[out.size()]) ||
                         r.status == 204 || r.status == 304 || r.status / 100 == 1;
    if (no_body) {
      bytes = after;
    } else if (auto length = r.header("content-length")) {
      std::size_t n = std::stoul(*length);
      if (after.size() < n) break;
      r.body = std::string(after.substr(0, n));
      bytes = after.substr(n);
    } else if (auto te = r.header("transfer-encoding"); te && *te == "chunked") {
      bool complete = false;
      std::string body;
      while (true) {
        std::size_t le = after.find("\r\n");
        if (le == std::string_view::npos) break;
        std::size_t size = std::stoul(std::string(after.substr(0, le)), nullptr, 16);
        if (after.size() < le + 2 + size + 2) break;
        body += after.substr(le + 2, size);
        after = after.substr(le + 2 + size + 2);
        if (size == 0) {
          complete = true;
          break;
        }
      }
      if (!complete) break;
      r.body = std::move(body);
      bytes = after;
    } else {
      r.body = std::string(after);  // until the close
      bytes = {};
    }
    out.push_back(std::move(r));
  }
  if (rest != nullptr) *rest = std::string(bytes);
  return out;
}

/// Connects, sends `request` as it is, and reads until the server closes the connection.
inline weave::Coro<std::string> exchange_until_close(std::uint16_t port, std::string request) {
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port);
  writer.write(request);
  co_await writer.drain();
  std::string all;
  while (true) {
    std::string piece = co_await reader.read(65536);
    if (piece.empty()) break;
    all += piece;
  }
  writer.close();
  co_await writer.wait_closed();
  co_return all;
}

/// Reads from `reader` until `count` complete responses have arrived.
inline weave::Coro<std::vector<RawResponse>> read_responses(weave::StreamReader& reader,
                                                            std::size_t count,
                                                            std::vector<bool> head_only = {}) {
  std::string buffer;
  std::vector<RawResponse> got;
  while (true) {
    std::string rest;
    got = parse_responses(buffer, &rest, head_only);
    if (got.size() >= count) break;
    std::string piece = co_await reader.read(65536);
    if (piece.empty()) throw std::runtime_error("connection closed after " + buffer);
    buffer += piece;
  }
  co_return got;
}

inline std::string get(std::string_view target, std::string_view extra = {}) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra) +
         "\r\n";
}

}  // namespace weave_test
