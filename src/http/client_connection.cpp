// The client's side of one connection: llhttp in response mode over a Protocol.
#include "client_connection.hpp"

#include <algorithm>
#include <utility>

namespace weave::http::detail {

namespace {

ClientConnection& self(llhttp_t* p) {
  return *static_cast<ClientConnection*>(p->data);
}

/// Cancels a timer when the wait it bounds ends, by any path.
struct TimerGuard {
  std::optional<TimerHandle> timer;
  ~TimerGuard() {
    if (timer) timer->cancel();
  }
};

}  // namespace

ClientConnection::ClientConnection(std::string key, std::size_t read_bufsize)
    : key_(std::move(key)), read_bufsize_(std::max<std::size_t>(read_bufsize, 1)) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
}

const llhttp_settings_t& ClientConnection::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_message_begin = on_message_begin;
    t.on_status = on_status;
    t.on_header_field = on_header_field;
    t.on_header_value = on_header_value;
    t.on_header_value_complete = on_header_value_complete;
    t.on_headers_complete = on_headers_complete;
    t.on_body = on_body;
    t.on_message_complete = on_message_complete;
    return t;
  }();
  return s;
}

// ---- llhttp's callbacks -------------------------------------------------------------------------

int ClientConnection::on_message_begin(llhttp_t* p) {
  ClientConnection& c = self(p);
  c.head_ = ResponseHead{};
  c.field_.clear();
  c.value_.clear();
  return 0;
}

int ClientConnection::on_status(llhttp_t* p, const char* at, std::size_t n) {
  self(p).head_.reason.append(at, n);
  return 0;
}

int ClientConnection::on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  self(p).field_.append(at, n);
  return 0;
}

int ClientConnection::on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  self(p).value_.append(at, n);
  return 0;
}

int ClientConnection::on_header_value_complete(llhttp_t* p) {
  ClientConnection& c = self(p);
  c.head_.headers.add(std::move(c.field_), std::move(c.value_));
  c.field_.clear();
  c.value_.clear();
  return 0;
}

int ClientConnection::on_headers_complete(llhttp_t* p) {
  ClientConnection& c = self(p);
  c.head_.status = llhttp_get_status_code(p);
  c.head_.major = llhttp_get_http_major(p);
  c.head_.minor = llhttp_get_http_minor(p);
  // 1xx responses (100 Continue, 103 Early Hints) come before the final one: skipped.
  c.informational_ = c.head_.status >= 100 && c.head_.status < 200 && c.head_.status != 101;
  if (c.informational_) return 0;
  c.head_done_ = true;
  // A response to HEAD has no body whatever its Content-Length says; only we know the method.
  return c.head_request_ ? 1 : 0;
}

int ClientConnection::on_body(llhttp_t* p, const char* at, std::size_t n) {
  self(p).body_.append(at, n);
  return 0;
}

int ClientConnection::on_message_complete(llhttp_t* p) {
  ClientConnection& c = self(p);
  if (c.informational_) {
    c.informational_ = false;
    return 0;
  }
  c.complete_ = true;
  c.keep_alive_ = llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;  // whatever follows is not ours: see data_received
}

// ---- Protocol -----------------------------------------------------------------------------------

void ClientConnection::connection_made(Transport& transport) {
  transport_ = transport.shared_from_this();
}

void ClientConnection::data_received(std::string_view data) {
  if (phase_ != Phase::waiting) {
    // Bytes while no request is in flight (or after the response) make the connection unusable.
    trailing_data_ = true;
    if (phase_ == Phase::idle) abort();
    return;
  }
  response_started_ = true;
  const llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_PAUSED) {
    phase_ = Phase::done;
    if (llhttp_get_error_pos(&parser_) != data.data() + data.size()) trailing_data_ = true;
  } else if (err != HPE_OK) {
    fail(std::make_exception_ptr(ClientPayloadError(std::string("invalid HTTP response: ") +
                                                    llhttp_errno_name(err) + ": " +
                                                    llhttp_get_error_reason(&parser_))));
    abort();
    return;
  }
  flow_control();
  wake_.set();
}

bool ClientConnection::eof_received() {
  lost_or_eof_ = true;
  if (phase_ == Phase::waiting) {
    // A body delimited by the close ends here; any other unfinished response is an error.
    const llhttp_errno_t err = response_started_ ? llhttp_finish(&parser_) : HPE_OK;
    if (!complete_) {
      if (!head_done_) {
        fail(std::make_exception_ptr(ServerDisconnectedError()));
      } else {
        (void)err;
        fail(std::make_exception_ptr(
            ClientPayloadError("Response payload is not completed: the server closed the "
                               "connection")));
      }
    } else {
      phase_ = Phase::done;
    }
    keep_alive_ = false;
    wake_.set();
  }
  return false;
}

void ClientConnection::connection_lost(std::exception_ptr exc) {
  lost_ = true;
  lost_or_eof_ = true;
  if (phase_ == Phase::waiting && !complete_) {
    fail(exc ? exc : std::make_exception_ptr(ServerDisconnectedError()));
  }
  keep_alive_ = false;
  write_paused_ = false;
  // The transport holds this protocol: dropping our reference to it breaks the cycle, but not
  // while the transport is still calling us.
  if (transport_) {
    get_running_loop().call_soon([t = std::move(transport_)]() mutable { t.reset(); });
  }
  wake_.set();
  closed_.set();
}

void ClientConnection::resume_writing() {
  write_paused_ = false;
  wake_.set();
}

void ClientConnection::fail(std::exception_ptr error) {
  if (!error_) error_ = std::move(error);
  phase_ = Phase::done;
  keep_alive_ = false;
}

void ClientConnection::flow_control() {
  if (!transport_ || lost_) return;
  if (body_.size() >= read_bufsize_ && !reading_paused_) {
    reading_paused_ = true;
    transport_->pause_reading();
  } else if (body_.size() < read_bufsize_ && reading_paused_) {
    reading_paused_ = false;
    transport_->resume_reading();
  }
}

// ---- the exchange -------------------------------------------------------------------------------

void ClientConnection::begin(bool head_request) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
  head_ = ResponseHead{};
  body_.clear();
  error_ = nullptr;
  phase_ = Phase::waiting;
  head_request_ = head_request;
  informational_ = false;
  head_done_ = false;
  complete_ = false;
  keep_alive_ = false;
  trailing_data_ = false;
  response_started_ = false;
  if (lost_or_eof_) fail(std::make_exception_ptr(ServerDisconnectedError()));
}

void ClientConnection::write(std::string_view data) {
  if (transport_ && !lost_) transport_->write(data);
}

Coro<void> ClientConnection::wait(const ReadLimits& limits) {
  wake_.clear();
  TimerGuard guard;
  bool by_sock_read = false;
  if (limits.total || limits.sock_read) {
    Clock::time_point when = Clock::time_point::max();
    if (limits.sock_read) {
      when = Clock::now() + *limits.sock_read;
      by_sock_read = true;
    }
    if (limits.total && *limits.total < when) {
      when = *limits.total;
      by_sock_read = false;
    }
    timed_out_ = false;
    guard.timer = get_running_loop().call_at(when, [this] {
      timed_out_ = true;
      wake_.set();
    });
  }
  co_await wake_.wait();
  if (timed_out_) {
    timed_out_ = false;
    if (by_sock_read) throw SocketTimeoutError("Timeout on reading data from socket");
    throw TimeoutError("total timeout of the request");
  }
}

Coro<void> ClientConnection::drain(const ReadLimits& limits) {
  while (write_paused_ && !lost_) co_await wait(limits);
  if (lost_ && error_) std::rethrow_exception(error_);
}

Coro<void> ClientConnection::wait_head(const ReadLimits& limits) {
  while (!head_done_ && !error_) co_await wait(limits);
  // An error after the head (a body cut short) is the body's: read() reports it.
  if (!head_done_) std::rethrow_exception(error_);
}

std::string ClientConnection::take_body() {
  std::string out = std::move(body_);
  body_.clear();
  flow_control();
  return out;
}

Coro<void> ClientConnection::wait_body(const ReadLimits& limits) {
  while (body_.empty() && !complete_ && !error_) co_await wait(limits);
}

bool ClientConnection::reusable() const noexcept {
  return complete_ && keep_alive_ && !error_ && !trailing_data_ && !lost_or_eof_ && transport_ &&
         !transport_->is_closing();
}

bool ClientConnection::alive() const noexcept {
  return phase_ != Phase::waiting && !lost_or_eof_ && !trailing_data_ && transport_ &&
         !transport_->is_closing();
}

void ClientConnection::close() {
  phase_ = Phase::idle;
  if (transport_ && !lost_) transport_->close();
}

void ClientConnection::abort() {
  if (transport_ && !lost_) transport_->abort();
}

Coro<void> ClientConnection::wait_closed(Clock::duration limit) {
  if (lost_ || !transport_) co_return;
  auto waiting = [this]() -> Coro<void> { co_await closed_.wait(); };
  try {
    auto bounded = weave::timeout(limit, waiting());
    co_await std::move(bounded);
  } catch (const TimeoutError&) {
    abort();
  }
}

}  // namespace weave::http::detail
