// ClientResponse and its ClientContent: the body, decoded, read whole or in pieces.
#include "client_response.hpp"

#include <algorithm>
#include <utility>

namespace weave::http {

namespace detail {

ClientResponseState::ClientResponseState(std::shared_ptr<ClientSessionState> s,
                                         std::shared_ptr<ClientConnection> c, URL u, std::string m,
                                         ReadLimits l, bool decode)
    : head(std::move(c->head())),
      url(std::move(u)),
      method(std::move(m)),
      session(std::move(s)),
      conn(std::move(c)),
      limits(l) {
  if (decode) {
    if (auto enc = head.headers.get("Content-Encoding")) decoder = BodyDecoder::make(*enc);
  }
}

Coro<bool> ClientResponseState::fill() {
  while (!eof) {
    if (!conn) {
      eof = true;
      break;
    }
    if (decoder && decoder->has_input()) {
      pending += decoder->pull(session->opts.read_bufsize);
      if (!pending.empty()) co_return true;
      continue;
    }
    if (conn->body_buffered()) {
      std::string raw = conn->take_body();
      if (decoder) {
        decoder->push(std::move(raw));
        continue;
      }
      if (pending.empty()) {
        pending = std::move(raw);
      } else {
        pending += raw;
      }
      if (!pending.empty()) co_return true;
      continue;
    }
    if (conn->message_complete()) {
      if (decoder) decoder->finish();
      eof = true;
      release();
      break;
    }
    if (std::exception_ptr e = conn->error()) std::rethrow_exception(e);
    co_await conn->wait_body(limits);
  }
  co_return !pending.empty();
}

void ClientResponseState::release() noexcept {
  if (!conn) return;
  std::shared_ptr<ClientConnection> c = std::move(conn);
  conn.reset();
  const bool reusable = c->message_complete() && !c->body_buffered() && c->reusable();
  session->release(c, reusable);
}

std::string ClientResponseState::take(std::size_t n) {
  if (n >= pending.size()) return std::exchange(pending, std::string());
  std::string out = pending.substr(0, n);
  pending.erase(0, n);
  return out;
}

}  // namespace detail

// ---- ClientContent ------------------------------------------------------------------------------

Coro<std::string> ClientContent::read(std::ptrdiff_t n) {
  if (n == 0) co_return std::string();
  if (n < 0) {
    std::string out;
    while (!state_->pending.empty() || co_await state_->fill()) {
      out += state_->take(state_->pending.size());
    }
    co_return out;
  }
  if (state_->pending.empty()) co_await state_->fill();
  co_return state_->take(static_cast<std::size_t>(n));
}

Coro<std::string> ClientContent::readany() {
  if (state_->pending.empty()) co_await state_->fill();
  co_return state_->take(state_->pending.size());
}

Coro<std::string> ClientContent::readexactly(std::size_t n) {
  std::string out;
  while (out.size() < n) {
    if (state_->pending.empty() && !co_await state_->fill()) {
      throw IncompleteReadError(std::move(out), n);
    }
    out += state_->take(n - out.size());
  }
  co_return out;
}

bool ClientContent::at_eof() const noexcept {
  return state_->eof && state_->pending.empty();
}

// ---- ClientResponse -----------------------------------------------------------------------------

namespace {
const std::string kEmpty;
const Headers kNoHeaders;
const URL kNoURL;
const std::vector<std::pair<int, std::string>> kNoHistory;
}  // namespace

ClientResponse::ClientResponse() noexcept = default;
ClientResponse::ClientResponse(std::unique_ptr<detail::ClientResponseState> state) noexcept
    : state_(std::move(state)) {}
ClientResponse::ClientResponse(ClientResponse&&) noexcept = default;
ClientResponse& ClientResponse::operator=(ClientResponse&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
  }
  return *this;
}
ClientResponse::~ClientResponse() {
  release();
}

int ClientResponse::status() const noexcept {
  return state_ ? state_->head.status : 0;
}
const std::string& ClientResponse::reason() const noexcept {
  return state_ ? state_->head.reason : kEmpty;
}
std::pair<int, int> ClientResponse::version() const noexcept {
  return state_ ? std::pair{state_->head.major, state_->head.minor} : std::pair{1, 1};
}
std::optional<std::string_view> ClientResponse::header(std::string_view name) const noexcept {
  return state_ ? state_->head.headers.get(name) : std::nullopt;
}
const Headers& ClientResponse::headers() const noexcept {
  return state_ ? state_->head.headers : kNoHeaders;
}
const URL& ClientResponse::url() const noexcept {
  return state_ ? state_->url : kNoURL;
}
const std::string& ClientResponse::method() const noexcept {
  return state_ ? state_->method : kEmpty;
}
const std::vector<std::pair<int, std::string>>& ClientResponse::history() const noexcept {
  return state_ ? state_->history : kNoHistory;
}

void ClientResponse::raise_for_status() const {
  if (status() >= 400) throw ClientResponseError(status(), reason(), url().str());
}

Coro<std::string> ClientResponse::read() {
  if (!state_) throw RuntimeError("ClientResponse: no response");
  if (!state_->body) state_->body = co_await state_->content.read();
  co_return *state_->body;
}

Coro<std::string> ClientResponse::text() {
  co_return co_await read();
}

ClientContent& ClientResponse::content() noexcept {
  return state_->content;
}

void ClientResponse::release() noexcept {
  if (state_) {
    state_->release();
    state_->eof = true;
  }
}

}  // namespace weave::http
