#pragma once
/// \file http.hpp
/// weave::http, HTTP/1.1 in aiohttp's roles: a server (Application, Router, Request, Response,
/// StreamResponse) and a pooled client (ClientSession, ClientResponse). Link weave::http.
///
///   weave::http::Application app;
///   app.router().add_get("/", [](weave::http::Request&) -> weave::Coro<weave::http::Response> {
///     co_return weave::http::Response(200, "hello");
///   });
///   weave::http::Server server = co_await weave::http::start_server(app, "127.0.0.1", 8080);
///   co_await server.serve_forever();
///
/// Requests are parsed by llhttp (Node.js's parser) in strict mode, with the checks RFC 9112 asks
/// of a server that llhttp leaves out: bad input is answered with a 4xx and the connection closes.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/tls.hpp"

namespace weave::http {

// ---- shared by server and client ---------------------------------------------------------------

/// One header field as it was received or will be sent.
struct HeaderField {
  std::string name;
  std::string value;
};

/// aiohttp's CIMultiDict: header fields in order, looked up without regard to case.
class Headers {
 public:
  Headers() = default;
  Headers(std::initializer_list<HeaderField> fields) : fields_(fields) {}

  /// The first value of `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  std::vector<std::string_view> get_all(std::string_view name) const;
  bool contains(std::string_view name) const noexcept { return get(name).has_value(); }
  /// Appends a field (a name may repeat).
  void add(std::string name, std::string value);
  /// Replaces every field called `name` with one.
  void set(std::string name, std::string value);
  /// Removes every field called `name`; returns how many.
  std::size_t remove(std::string_view name);
  void clear() noexcept { fields_.clear(); }

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  auto begin() const noexcept { return fields_.begin(); }
  auto end() const noexcept { return fields_.end(); }

 private:
  std::vector<HeaderField> fields_;
};

/// ASCII case-insensitive equality, as header names compare.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// The reason phrase of a status code ("Not Found"); "Unknown" for codes it does not know.
std::string_view reason_phrase(int status) noexcept;

/// aiohttp's web.HTTPException: raised by a handler (or by the server for bad input), it is
/// answered with its status, reason and body, and headers such as `Allow`.
class HttpError : public std::runtime_error {
 public:
  explicit HttpError(int status, std::string reason = {}, std::string body = {});
  int status() const noexcept { return status_; }
  const std::string& reason() const noexcept { return reason_; }
  const std::string& body() const noexcept { return body_; }
  Headers& headers() noexcept { return headers_; }
  const Headers& headers() const noexcept { return headers_; }

 private:
  int status_;
  std::string reason_;
  std::string body_;
  Headers headers_;
};

// ---- server
// -------------------------------------------------------------------------------------- (declared
// in the server section below)

// ---- client
// -------------------------------------------------------------------------------------- (declared
// in the client section below)

}  // namespace weave::http
