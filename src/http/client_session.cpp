// ClientSession: a request is checked, sent over a pooled connection (once more on a fresh one
// when an idempotent request finds its pooled connection stale), and its redirects followed.
#include <algorithm>
#include <utility>

#include "client_pool.hpp"
#include "client_request.hpp"
#include "client_response.hpp"

namespace weave::http {

namespace {

using detail::BodyFraming;
using detail::ClientConnection;
using detail::ReadLimits;

/// A request as it is sent, possibly again (stale connection, redirect).
struct Outgoing {
  std::string method;
  URL url;
  Headers headers;
  std::optional<std::string> data;
  BodyProducer producer;
  bool chunked = false;
};

std::optional<Clock::time_point> earliest(std::optional<Clock::time_point> a,
                                          std::optional<Clock::time_point> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

Coro<void> write_chunked(ClientConnection& conn, std::string_view data, const ReadLimits& limits) {
  static constexpr char kHex[] = "0123456789abcdef";
  if (data.empty()) co_return;
  std::string size;
  for (std::size_t n = data.size(); n != 0; n >>= 4) size.insert(size.begin(), kHex[n & 0xf]);
  size += "\r\n";
  if (data.size() <= 65536) {
    // One write (one send) per chunk rather than three.
    size += data;
    size += "\r\n";
    conn.write(size);
  } else {
    conn.write(size);
    conn.write(data);
    conn.write("\r\n");
  }
  co_await conn.drain(limits);
}

/// Writes the request on `conn`.
Coro<void> send_request(ClientConnection& conn, Outgoing& req, const ClientSessionOptions& opts,
                        const ReadLimits& limits) {
  const bool chunked = req.producer || (req.chunked && req.data);
  const BodyFraming framing = chunked    ? BodyFraming::chunked
                              : req.data ? BodyFraming::sized
                                         : BodyFraming::none;
  std::string head = detail::request_head(req.method, req.url, req.headers, framing,
                                          req.data ? req.data->size() : 0, opts.auto_decompress,
                                          opts.connector.force_close);
  if (framing == BodyFraming::sized) {
    if (req.data->size() <= 16384) {
      head += *req.data;
      conn.write(head);
    } else {
      conn.write(head);
      conn.write(*req.data);
    }
    co_await conn.drain(limits);
  } else if (framing == BodyFraming::chunked) {
    conn.write(head);
    if (req.producer) {
      for (;;) {
        std::optional<std::string> piece = co_await req.producer();
        if (!piece) break;
        co_await write_chunked(conn, *piece, limits);
      }
    } else {
      // A whole body asked to go chunked: in pieces of 64 KiB.
      const std::string_view all = *req.data;
      for (std::size_t at = 0; at < all.size(); at += 65536) {
        co_await write_chunked(conn, all.substr(at, 65536), limits);
      }
    }
    conn.write("0\r\n\r\n");
    co_await conn.drain(limits);
  } else {
    conn.write(head);
  }
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

namespace detail {

/// One exchange: a connection, the request written, the final head read.
Coro<std::unique_ptr<ClientResponseState>> exchange(std::shared_ptr<ClientSessionState> session,
                                                    Outgoing& req, const ClientTimeout& timeout,
                                                    std::optional<Clock::time_point> total) {
  const bool may_retry = is_idempotent(req.method) && !req.producer;
  const ReadLimits limits{total, timeout.sock_read};
  for (int attempt = 0;; ++attempt) {
    std::optional<Clock::time_point> connect_deadline = total;
    if (timeout.connect) connect_deadline = earliest(total, Clock::now() + *timeout.connect);
    Lease lease = co_await session->acquire(req.url, connect_deadline);
    std::shared_ptr<ClientConnection> conn = std::move(lease.connection);
    conn->begin(req.method == "HEAD");
    std::exception_ptr error;
    try {
      co_await send_request(*conn, req, session->opts, limits);
      co_await conn->wait_head(limits);
    } catch (const CancelledError&) {
      session->release(conn, false);
      throw;
    } catch (...) {
      error = std::current_exception();
    }
    if (!error) {
      co_return std::make_unique<ClientResponseState>(session, std::move(conn), req.url, req.method,
                                                      limits, session->opts.auto_decompress);
    }
    const bool stale = lease.reused && conn->closed_before_response();
    session->release(conn, false);
    if (!(stale && may_retry && attempt == 0)) std::rethrow_exception(error);
  }
}

}  // namespace detail

ClientSession::ClientSession(ClientSessionOptions opts)
    : state_(std::make_shared<detail::ClientSessionState>(std::move(opts))) {
  for (const HeaderField& f : state_->opts.headers) detail::check_header(f.name, f.value);
}

ClientSession::~ClientSession() {
  if (!state_->closed) state_->abort_idle();
}

Coro<ClientResponse> ClientSession::request(std::string method, std::string url,
                                            RequestOptions opts) {
  std::shared_ptr<detail::ClientSessionState> session = state_;
  // Everything is checked before a byte is sent.
  detail::check_method(method);
  for (const HeaderField& f : opts.headers) detail::check_header(f.name, f.value);
  if (session->closed) throw RuntimeError("Session is closed");
  Outgoing req{std::move(method),    URL::parse(url),      session->opts.headers,
               std::move(opts.data), std::move(opts.body), opts.chunked};
  for (const HeaderField& f : opts.headers) req.headers.remove(f.name);
  for (const HeaderField& f : opts.headers) req.headers.add(f.name, f.value);
  const ClientTimeout timeout = opts.timeout.value_or(session->opts.timeout);
  std::optional<Clock::time_point> total;
  if (timeout.total) total = Clock::now() + *timeout.total;
  std::vector<std::pair<int, std::string>> history;

  for (int redirects = 0;; ++redirects) {
    std::unique_ptr<detail::ClientResponseState> state =
        co_await detail::exchange(session, req, timeout, total);
    const int status = state->head.status;
    std::optional<std::string_view> location = state->head.headers.get("Location");
    if (opts.allow_redirects && is_redirect(status) && location &&
        !(req.producer && (status == 307 || status == 308))) {
      if (redirects >= opts.max_redirects) {
        ClientResponseError e(status, "Too many redirects", state->url.str());
        state->release();
        throw TooManyRedirects(e.status(), e.message(), e.url());
      }
      URL next = req.url.join(*location);
      history.emplace_back(status, req.url.str());
      // The redirect's body is dropped; its connection is kept when the body is all there.
      if (state->conn && state->conn->message_complete()) (void)state->conn->take_body();
      state->release();
      if ((status == 303 && req.method != "HEAD") ||
          ((status == 301 || status == 302) && req.method == "POST")) {
        req.method = "GET";
        req.data.reset();
        req.producer = nullptr;
        req.headers.remove("Content-Type");
      }
      if (next.origin() != req.url.origin()) {
        req.headers.remove("Authorization");
        req.headers.remove("Proxy-Authorization");
        req.headers.remove("Cookie");
        req.headers.remove("Host");  // a Host given for the first origin is not the next one's
      }
      req.url = std::move(next);
      continue;
    }
    state->history = std::move(history);
    ClientResponse response(std::move(state));
    if (opts.raise_for_status.value_or(session->opts.raise_for_status)) {
      response.raise_for_status();
    }
    co_return response;
  }
}

Coro<ClientResponse> ClientSession::get(std::string url, RequestOptions opts) {
  return request("GET", std::move(url), std::move(opts));
}
Coro<ClientResponse> ClientSession::head(std::string url, RequestOptions opts) {
  return request("HEAD", std::move(url), std::move(opts));
}
Coro<ClientResponse> ClientSession::post(std::string url, std::string body, RequestOptions opts) {
  opts.data = std::move(body);
  return request("POST", std::move(url), std::move(opts));
}
Coro<ClientResponse> ClientSession::put(std::string url, std::string body, RequestOptions opts) {
  opts.data = std::move(body);
  return request("PUT", std::move(url), std::move(opts));
}
Coro<ClientResponse> ClientSession::patch(std::string url, std::string body, RequestOptions opts) {
  opts.data = std::move(body);
  return request("PATCH", std::move(url), std::move(opts));
}
Coro<ClientResponse> ClientSession::delete_(std::string url, RequestOptions opts) {
  return request("DELETE", std::move(url), std::move(opts));
}
Coro<ClientResponse> ClientSession::options(std::string url, RequestOptions opts) {
  return request("OPTIONS", std::move(url), std::move(opts));
}

Coro<void> ClientSession::close() {
  std::shared_ptr<detail::ClientSessionState> session = state_;
  co_await session->close();
}

bool ClientSession::closed() const noexcept {
  return state_->closed;
}
std::size_t ClientSession::open_connections() const noexcept {
  return state_->open_total;
}
std::size_t ClientSession::idle_connections() const noexcept {
  return state_->idle_count();
}

}  // namespace weave::http
