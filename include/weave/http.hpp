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

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/errors.hpp"
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

// ---- server ------------------------------------------------------------------------------------

/// aiohttp's HttpVersion.
struct HttpVersion {
  int major = 1;
  int minor = 1;
  friend bool operator==(HttpVersion, HttpVersion) = default;
};

class Application;
class Server;
class Request;

namespace detail {
class ServerConnection;
struct ServerCore;
struct AppState;

/// What the parser makes of a request's head.
struct RequestHead {
  std::string method;
  std::string target;
  HttpVersion version;
  Headers headers;
  bool keep_alive = true;
  bool chunked = false;
  bool expect_continue = false;
  std::optional<std::uint64_t> content_length;
  void clear() noexcept;
};
}  // namespace detail

/// Decoded query parameters in order (aiohttp's request.query, a MultiDict).
class QueryParams {
 public:
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  std::vector<std::string_view> get_all(std::string_view name) const;
  void add(std::string name, std::string value);
  std::size_t size() const noexcept { return params_.size(); }
  bool empty() const noexcept { return params_.empty(); }
  void clear() noexcept { params_.clear(); }
  auto begin() const noexcept { return params_.begin(); }
  auto end() const noexcept { return params_.end(); }

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

/// A request's body as it arrives (aiohttp's request.content, a StreamReader). Reading it is what
/// lets more of it in: while nobody reads, the connection stops reading from the socket.
class BodyReader {
 public:
  /// Up to `n` bytes (n < 0: the whole rest); empty at the end of the body. Errors: HttpError
  /// 408 when no data came within body_timeout; std::system_error (ECONNRESET) when the client
  /// went away.
  Coro<std::string> read(std::ptrdiff_t n = -1);
  /// What has arrived, at least one byte, waiting if nothing has (aiohttp's readany()); empty at
  /// the end of the body.
  Coro<std::string> readany();
  /// True once the whole body was read.
  bool at_eof() const noexcept;

 private:
  friend class Request;
  explicit BodyReader(detail::ServerConnection* connection) noexcept : connection_(connection) {}
  detail::ServerConnection* connection_;
};

/// One HTTP request, as a handler sees it (aiohttp's web.Request). Valid while the handler runs.
class Request {
 public:
  std::string_view method() const noexcept { return head_.method; }
  /// The request-target as sent ("/a%20b?x=1").
  std::string_view target() const noexcept { return head_.target; }
  /// The target's path, percent-decoded ("/a b").
  std::string_view path() const noexcept { return path_; }
  /// The target's query string, raw ("x=1").
  std::string_view query_string() const noexcept { return query_string_; }
  /// The decoded query parameters ('+' is a space, as in a form).
  const QueryParams& query() const noexcept { return query_; }
  HttpVersion version() const noexcept { return head_.version; }
  /// The first value of a header, looked up without regard to case.
  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return head_.headers.get(name);
  }
  const Headers& headers() const noexcept { return head_.headers; }
  /// Whether the connection stays open after this request's response.
  bool keep_alive() const noexcept { return head_.keep_alive; }
  /// The declared Content-Length; nullopt for a chunked body (or none).
  std::optional<std::uint64_t> content_length() const noexcept { return head_.content_length; }
  /// Whether the request has a body at all (a Content-Length above 0, or chunked).
  bool can_read_body() const noexcept {
    return head_.chunked || head_.content_length.value_or(0) > 0;
  }
  /// A path parameter of the matched route ("/users/{id}" -> match_info("id")). Errors:
  /// std::out_of_range when the route has no such parameter.
  std::string_view match_info(std::string_view name) const;
  /// The client's address ("127.0.0.1"), empty for a Unix socket.
  std::string remote() const;

  /// The whole body. Errors: HttpError 413 when it is larger than client_max_size, and as
  /// BodyReader::read.
  Coro<std::string> read();
  /// The same, as text (aiohttp's text(); weave does not transcode).
  Coro<std::string> text() { return read(); }
  /// The body as a stream, for large uploads.
  BodyReader& content() noexcept { return content_; }

  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request() = default;

 private:
  friend class detail::ServerConnection;
  friend class StreamResponse;
  explicit Request(detail::ServerConnection* connection) noexcept
      : connection_(connection), content_(connection) {}

  detail::ServerConnection* connection_;
  BodyReader content_;
  detail::RequestHead head_;
  std::string path_;
  std::string_view query_string_;
  QueryParams query_;
  std::vector<std::pair<std::string, std::string>> match_info_;
};

/// aiohttp's web.StreamResponse: the head goes out with prepare(), the body piece by piece with
/// write(). Without a Content-Length the body is sent chunked (HTTP/1.1) or until the close
/// (HTTP/1.0). A handler returns it (it converts to a Response) once it is done.
class StreamResponse {
 public:
  explicit StreamResponse(int status = 200, std::string reason = {});
  StreamResponse(StreamResponse&&) noexcept = default;
  StreamResponse& operator=(StreamResponse&&) noexcept = default;
  virtual ~StreamResponse() = default;

  int status() const noexcept { return status_; }
  /// The reason phrase; the status's standard one unless set.
  std::string_view reason() const noexcept;
  /// Errors: ValueError for a status outside 100..999, for CR or LF in the reason, or once
  /// prepared.
  void set_status(int status, std::string reason = {});
  const Headers& headers() const noexcept { return headers_; }
  /// Replaces the header. Errors: ValueError for CR, LF or NUL in the name or value (header
  /// injection), for a name that is not a token, or once prepared.
  void set_header(std::string name, std::string value);
  /// Adds a header (a name may repeat, as Set-Cookie does). Errors: as set_header.
  void add_header(std::string name, std::string value);
  void set_content_type(std::string content_type) {
    set_header("Content-Type", std::move(content_type));
  }
  /// A sized body: exactly `length` bytes must be written.
  void set_content_length(std::uint64_t length);
  void enable_chunked_encoding() noexcept { chunked_ = true; }
  bool prepared() const noexcept { return connection_ != nullptr; }

  /// Sends the status line and the headers. Errors: RuntimeError when the request already has a
  /// response.
  Coro<void> prepare(Request& request);
  /// Sends a piece of the body (a chunk when chunked) and waits while the client is slow to read
  /// (drain). Errors: RuntimeError before prepare() or after write_eof(); ValueError past a
  /// declared Content-Length; std::system_error (ECONNRESET) when the client went away.
  Coro<void> write(std::string data);
  /// Waits until the connection's write buffer is below its low-water mark.
  Coro<void> drain();
  /// Ends the body (the last chunk when chunked). Errors: ValueError when a declared
  /// Content-Length was not reached.
  Coro<void> write_eof(std::string data = {});

 protected:
  friend class detail::ServerConnection;
  void check_not_prepared() const;

  int status_;
  std::string reason_;
  Headers headers_;
  std::optional<std::uint64_t> content_length_;
  std::uint64_t body_written_ = 0;
  bool chunked_ = false;
  bool eof_written_ = false;
  bool head_only_ = false;  ///< a HEAD request or a status without body: no body bytes go out
  detail::ServerConnection* connection_ = nullptr;
};

/// aiohttp's web.Response: status, headers and a whole body, sent with Content-Length.
class Response : public StreamResponse {
 public:
  /// A text body (aiohttp's default Content-Type, text/plain; charset=utf-8).
  explicit Response(int status = 200, std::string body = {});
  Response(int status, std::string body, std::string content_type);
  /// What a handler that streamed returns: the response it already sent.
  Response(StreamResponse&& streamed) noexcept;  // NOLINT(google-explicit-constructor)

  const std::string& body() const noexcept { return body_; }
  void set_body(std::string body) { body_ = std::move(body); }
  /// The Content-Type sent: the one given, else text/plain; charset=utf-8.
  std::string_view content_type() const noexcept;

 private:
  friend class detail::ServerConnection;
  std::string body_;
  std::string content_type_;
};

/// A request handler: aiohttp's `async def handler(request) -> web.Response`.
using Handler = std::function<Coro<Response>(Request&)>;

/// aiohttp's UrlDispatcher: routes by method and path. A path is literal segments and `{name}`
/// parameters, each matching one segment ("/users/{id}"); a last `{name:.*}` matches the rest.
class Router {
 public:
  /// `method` "*" matches every method. Errors: ValueError for a path that does not start with
  /// '/' or has a malformed parameter, or for an empty handler.
  void add_route(std::string method, std::string path, Handler handler);
  /// GET, and HEAD answered by the same handler without the body (aiohttp's allow_head).
  void add_get(std::string path, Handler handler);
  void add_post(std::string path, Handler handler);
  void add_put(std::string path, Handler handler);
  void add_patch(std::string path, Handler handler);
  void add_delete(std::string path, Handler handler);

  /// The handler for `method` and (decoded) `path`, with the parameters it matched; or the
  /// status to answer instead: 404, or 405 with the methods that would match in `allow`.
  struct Resolution {
    const Handler* handler = nullptr;
    std::vector<std::pair<std::string, std::string>> match_info;
    int status = 200;
    std::string allow;
  };
  Resolution resolve(std::string_view method, std::string_view path) const;

 private:
  struct Segment {
    std::string text;  ///< the literal, or the parameter's name
    enum Kind { kLiteral, kParameter, kTail } kind = kLiteral;
  };
  struct Route {
    std::string method;
    std::vector<Segment> segments;
    Handler handler;
  };
  static bool match(const Route& route, std::string_view path,
                    std::vector<std::pair<std::string, std::string>>* params);
  std::vector<Route> routes_;
};

/// Limits and timeouts of a server, with aiohttp's defaults where it has them (nginx's for the
/// header and body timeouts, which aiohttp lacks).
struct ServerOptions {
  std::size_t max_line_size = 8190;   ///< the request line; 414 beyond
  std::size_t max_field_size = 8190;  ///< one header field, name or value; 431 beyond
  std::size_t max_headers = 128;      ///< header fields per request; 431 beyond
  std::size_t client_max_size = std::size_t{1} << 20;            ///< Request::read(); 413 beyond
  Clock::duration keepalive_timeout = std::chrono::seconds(75);  ///< idle between requests
  Clock::duration header_timeout = std::chrono::seconds(60);     ///< first byte to end of head
  Clock::duration body_timeout = std::chrono::seconds(60);       ///< a body read that gets nothing
  Clock::duration shutdown_timeout = std::chrono::seconds(60);   ///< in-flight requests at close
  int backlog = 128;
  bool reuse_port = false;
  std::optional<SSLContext> ssl{};      ///< https with this server context
  std::string server_header = "weave";  ///< the Server header; empty leaves it out
};

/// aiohttp's web.Application: the router and the options its server takes. Cheap to copy: the
/// copies share one router and one set of options.
class Application {
 public:
  Application();
  explicit Application(ServerOptions options);
  Router& router() noexcept;
  ServerOptions& options() noexcept;

 private:
  friend Coro<Server> start_server(Application app, std::string host, std::uint16_t port);
  friend Coro<Server> start_unix_server(Application app, std::string path);
  std::shared_ptr<detail::AppState> state_;
};

/// A running HTTP server (aiohttp's AppRunner and site in one handle). Cheap to copy.
class Server {
 public:
  Server() noexcept = default;
  explicit Server(std::shared_ptr<detail::ServerCore> core) noexcept : core_(std::move(core)) {}

  /// The port it listens on (0 for a Unix socket).
  std::uint16_t port() const;
  /// Stops accepting at once and closes idle connections; requests in flight finish (their
  /// responses say Connection: close) until shutdown_timeout, when the rest are aborted.
  void close();
  /// Returns once close() has run its course and every connection has ended.
  Coro<void> wait_closed();
  /// Serves until cancelled; cancellation closes the server and waits for it.
  Coro<void> serve_forever();
  /// Connections open now.
  std::size_t connection_count() const;

 private:
  std::shared_ptr<detail::ServerCore> core_;
};

/// Serves `app` on host:port (port 0 picks a free one; see Server::port()).
Coro<Server> start_server(Application app, std::string host, std::uint16_t port);
/// Serves `app` on a Unix socket at `path`.
Coro<Server> start_unix_server(Application app, std::string path);

// ---- client -------------------------------------------------------------------------------------

/// aiohttp.ClientError: the base of the client's errors.
class ClientError : public Error {
 public:
  using Error::Error;
};

/// aiohttp.ClientConnectionError: the connection failed or broke.
class ClientConnectionError : public ClientError {
 public:
  using ClientError::ClientError;
};

/// aiohttp.ServerDisconnectedError: the server closed the connection before the response ended.
class ServerDisconnectedError : public ClientConnectionError {
 public:
  ServerDisconnectedError() : ClientConnectionError("Server disconnected") {}
  using ClientConnectionError::ClientConnectionError;
};

/// aiohttp.ClientPayloadError / ClientResponseError for a response llhttp could not parse.
class ClientPayloadError : public ClientError {
 public:
  using ClientError::ClientError;
};

/// aiohttp.ClientResponseError: raise_for_status found a status >= 400.
class ClientResponseError : public ClientError {
 public:
  ClientResponseError(int status, std::string message, std::string url)
      : ClientError(std::to_string(status) + ", message='" + message + "', url='" + url + "'"),
        status_(status),
        message_(std::move(message)),
        url_(std::move(url)) {}
  int status() const noexcept { return status_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& url() const noexcept { return url_; }

 private:
  int status_;
  std::string message_;
  std::string url_;
};

/// aiohttp.TooManyRedirects: more redirects than `max_redirects` (10 by default).
class TooManyRedirects : public ClientResponseError {
 public:
  using ClientResponseError::ClientResponseError;
};

/// aiohttp.ConnectionTimeoutError: `ClientTimeout::connect` passed while getting a connection.
class ConnectionTimeoutError : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

/// aiohttp.SocketTimeoutError: `ClientTimeout::sock_read` passed without a byte from the server.
class SocketTimeoutError : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

/// aiohttp.InvalidURL: the URL cannot be requested (unknown scheme, no host, a bad port, a
/// control character). A ValueError, as aiohttp's is.
class InvalidURL : public ValueError {
 public:
  using ValueError::ValueError;
};

/// A URL as the client requests it: scheme ("http" or "https"), host (an IPv6 literal without its
/// brackets), port (the scheme's default when absent) and target (path and query, as given:
/// percent-escapes are kept; spaces and bytes above 0x7f are escaped; the fragment is dropped).
struct URL {
  std::string scheme;
  std::string host;
  std::uint16_t port = 0;
  std::string target = "/";

  /// Errors: InvalidURL.
  static URL parse(std::string_view text);
  /// `location` (absolute, scheme-relative, absolute-path or relative) resolved against this URL,
  /// as a redirect's Location is. Errors: InvalidURL.
  URL join(std::string_view location) const;
  /// "host" or "host:port" (brackets around an IPv6 literal), the value of the Host header.
  std::string host_header() const;
  /// scheme://host[:port]: two URLs of the same origin share credentials and cookies.
  std::string origin() const;
  std::string str() const { return origin() + target; }
  bool is_https() const noexcept { return scheme == "https"; }
};

/// aiohttp.ClientTimeout. Unset fields do not limit. `total` bounds the whole request, from
/// getting a connection to the body's last byte; `connect` getting a connection (waiting for a
/// free one in the pool included); `sock_read` each wait for bytes from the server.
struct ClientTimeout {
  std::optional<Clock::duration> total = std::chrono::minutes(5);  ///< aiohttp's default
  std::optional<Clock::duration> connect{};
  std::optional<Clock::duration> sock_read{};
};

/// aiohttp.TCPConnector's pool settings.
struct TCPConnector {
  /// Connections open at once, over all hosts (idle ones included); 0: no limit.
  std::size_t limit = 100;
  /// Connections open at once to one (scheme, host, port); 0: no limit.
  std::size_t limit_per_host = 0;
  /// How long an idle connection stays in the pool.
  Clock::duration keepalive_timeout = std::chrono::seconds(15);
  /// Reuse connections at all (aiohttp's force_close = !keep-alive).
  bool force_close = false;
  /// The context for https; by default SSLContext::client() (certificates and host names
  /// verified against the system's CA store).
  std::optional<SSLContext> ssl{};
};

/// What ClientSession is made with (aiohttp.ClientSession's keyword arguments).
struct ClientSessionOptions {
  TCPConnector connector{};
  ClientTimeout timeout{};
  /// Sent with every request (a request's own headers of the same name replace them).
  Headers headers{};
  /// Raise ClientResponseError for a status >= 400 instead of returning the response.
  bool raise_for_status = false;
  /// Decode `Content-Encoding: gzip` / `deflate` bodies (and send Accept-Encoding for them).
  bool auto_decompress = true;
  /// How many body bytes a response buffers before reading from the server pauses.
  std::size_t read_bufsize = std::size_t{64} * 1024;
};

/// Gives a request body piece by piece, sent with `Transfer-Encoding: chunked`; std::nullopt
/// ends it. Such a body is sent once: it is neither retried nor resent by a 307/308 redirect.
using BodyProducer = std::function<Coro<std::optional<std::string>>()>;

/// The keyword arguments of ClientSession::request (aiohttp's names).
struct RequestOptions {
  Headers headers{};
  /// A body sent whole with Content-Length (or chunked when `chunked` is set).
  std::optional<std::string> data{};
  /// A body sent as it is produced, chunked.
  BodyProducer body{};
  bool chunked = false;
  bool allow_redirects = true;
  int max_redirects = 10;
  /// Replaces the session's timeout for this request.
  std::optional<ClientTimeout> timeout{};
  std::optional<bool> raise_for_status{};
};

namespace detail {
struct ClientSessionState;
struct ClientResponseState;
}  // namespace detail

/// aiohttp's StreamReader of a response body: reads the (decoded) body in pieces, so that a
/// large body never has to be in memory whole. Reading from the server pauses while
/// `read_bufsize` bytes wait here.
class ClientContent {
 public:
  /// Up to `n` bytes (n < 0: the rest of the body); empty at the end. Errors: TimeoutError
  /// (sock_read, total), ClientPayloadError, ServerDisconnectedError.
  Coro<std::string> read(std::ptrdiff_t n = -1);
  /// Whatever is buffered, waiting for some when nothing is; empty at the end.
  Coro<std::string> readany();
  /// Exactly `n` bytes. Errors: IncompleteReadError at the end of the body first.
  Coro<std::string> readexactly(std::size_t n);
  /// True once the whole body has been read.
  bool at_eof() const noexcept;

  explicit ClientContent(detail::ClientResponseState* state) noexcept : state_(state) {}

 private:
  detail::ClientResponseState* state_;
};

/// aiohttp.ClientResponse. Its connection goes back to the pool once the body has been read to
/// the end; release() (or the destructor) before that closes the connection instead. Move-only.
class ClientResponse {
 public:
  ClientResponse() noexcept;
  explicit ClientResponse(std::unique_ptr<detail::ClientResponseState> state) noexcept;
  ClientResponse(ClientResponse&&) noexcept;
  ClientResponse& operator=(ClientResponse&&) noexcept;
  ~ClientResponse();

  int status() const noexcept;
  const std::string& reason() const noexcept;
  /// (1, 1) or (1, 0).
  std::pair<int, int> version() const noexcept;
  /// The first value of the header `name` (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  const Headers& headers() const noexcept;
  /// The URL of this response (after redirects).
  const URL& url() const noexcept;
  const std::string& method() const noexcept;
  /// The redirect responses' statuses and URLs that led here, oldest first (aiohttp's history).
  const std::vector<std::pair<int, std::string>>& history() const noexcept;
  /// Whether status() < 400.
  bool ok() const noexcept { return status() < 400; }
  /// Errors: ClientResponseError when status() >= 400.
  void raise_for_status() const;

  /// The whole (decoded) body, or what is left of it after content() reads; kept, so a second
  /// call returns it again. Errors: as ClientContent::read.
  Coro<std::string> read();
  /// read(): bodies are bytes here, as text() returns them undecoded.
  Coro<std::string> text();
  /// The body in pieces.
  ClientContent& content() noexcept;
  /// Gives the connection back: to the pool when the body was read to the end, else closed.
  /// Idempotent; the body cannot be read afterwards.
  void release() noexcept;

 private:
  std::unique_ptr<detail::ClientResponseState> state_;
};

/// aiohttp.ClientSession: requests over a pool of keep-alive connections. Make one per
/// application (it may be made outside a running loop) and close() it once done; responses
/// keep what they need of it, but a closed session makes no new requests.
///
///   weave::http::ClientSession session;
///   weave::http::ClientResponse r = co_await session.get("http://127.0.0.1:8080/");
///   std::string body = co_await r.text();
///   co_await session.close();
///
/// A request whose headers or URL hold CR, LF or NUL is refused with ValueError (InvalidURL for
/// the URL) before anything is sent. An idempotent request (GET, HEAD, OPTIONS, TRACE, PUT,
/// DELETE; not one with a BodyProducer) that finds its pooled connection closed by the server
/// before any byte of the response is sent again once, on a new connection. Redirects (301, 302,
/// 303, 307, 308) are followed up to `max_redirects`; 303 (and 301/302 after a POST) turns into a
/// GET without body, 307/308 keep method and body, and Authorization, Proxy-Authorization,
/// Cookie and Host are not sent to another origin.
class ClientSession {
 public:
  explicit ClientSession(ClientSessionOptions opts = {});
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;
  /// Aborts the pooled connections if close() was not awaited.
  ~ClientSession();

  /// Errors: InvalidURL, ValueError (a bad header), ClientConnectionError and std::system_error
  /// (ECONNREFUSED, DNS failures), SSLCertVerificationError, ConnectionTimeoutError,
  /// SocketTimeoutError, TimeoutError (total), ServerDisconnectedError, ClientPayloadError,
  /// TooManyRedirects, ClientResponseError (raise_for_status), RuntimeError once closed.
  Coro<ClientResponse> request(std::string method, std::string url, RequestOptions opts = {});
  Coro<ClientResponse> get(std::string url, RequestOptions opts = {});
  Coro<ClientResponse> head(std::string url, RequestOptions opts = {});
  Coro<ClientResponse> post(std::string url, std::string body, RequestOptions opts = {});
  Coro<ClientResponse> put(std::string url, std::string body, RequestOptions opts = {});
  Coro<ClientResponse> patch(std::string url, std::string body, RequestOptions opts = {});
  // `delete` is a keyword. NOLINTNEXTLINE(readability-identifier-naming)
  Coro<ClientResponse> delete_(std::string url, RequestOptions opts = {});
  Coro<ClientResponse> options(std::string url, RequestOptions opts = {});

  /// Closes the pooled connections and waits until they are closed; connections still held by
  /// responses close when those are released. Idempotent.
  Coro<void> close();
  bool closed() const noexcept;

  /// Connections open now (in use, idle or being made), and those of them idle in the pool.
  std::size_t open_connections() const noexcept;
  std::size_t idle_connections() const noexcept;

 private:
  std::shared_ptr<detail::ClientSessionState> state_;
};

}  // namespace weave::http
