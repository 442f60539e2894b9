// The TLS layer between a transport and the app protocol; see ssl_transport.hpp for the states,
// the flow control and the lifetimes. The functions follow asyncio's sslproto.py (3.11) name
// for name (_do_handshake -> do_handshake, _do_read -> do_read, ...), so that the two can be
// read side by side; the differences are noted where they are.

#include "net/ssl_transport.hpp"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <system_error>

#include "weave/errors.hpp"

namespace weave::detail {

namespace {

constexpr std::size_t kChunk = 256 * 1024;  // asyncio's max_size for one data_received

/// Decrypted data for the app (valid during data_received only) and encrypted data for the
/// lower transport: two buffers per thread, so that idle connections hold none.
char* plaintext_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kChunk]);
  return buffer.get();
}
char* record_buffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kChunk]);
  return buffer.get();
}

bool want_io(int ssl_err) noexcept {
  return ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE;
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// OS and SSL errors are the peer's doing: asyncio does not report them (outside debug mode).
bool is_os_error(std::exception_ptr exc) {
  try {
    std::rethrow_exception(exc);
  } catch (const std::system_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace

SSLTransport::SSLTransport(EventLoop& loop, const SSLContext& context,
                           std::shared_ptr<Protocol> app, Options opts,
                           std::optional<Future<void>> waiter)
    : loop_(loop),
      context_(context),
      app_(std::move(app)),
      opts_(std::move(opts)),
      waiter_(std::move(waiter)),
      app_state_(opts_.call_connection_made ? AppState::Init : AppState::ConMade) {
  lower_.t = this;
  if (!app_) throw ValueError("SSL: null app protocol");
  if (opts_.server_side && !context.is_server()) {
    throw ValueError("Cannot create a server-side TLS connection with a client SSLContext");
  }
  if (!opts_.server_side && context.is_server()) {
    throw ValueError("Cannot create a client-side TLS connection with a server SSLContext");
  }
  if (opts_.server_side) opts_.server_hostname.clear();
  if (!opts_.server_side && context.check_hostname() && opts_.server_hostname.empty()) {
    throw ValueError("check_hostname requires server_hostname");
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(context.native_handle());
  if (ssl == nullptr) throw_ssl_error("SSL_new");
  handle_ = std::make_shared<SSLHandle>(ssl, opts_.server_side, opts_.server_hostname);
  ssl_ = ssl;
  incoming_ = BIO_new(BIO_s_mem());
  outgoing_ = BIO_new(BIO_s_mem());
  if (incoming_ == nullptr || outgoing_ == nullptr) {
    BIO_free(incoming_);
    BIO_free(outgoing_);
    throw_ssl_error("BIO_new");
  }
  SSL_set_bio(ssl_, incoming_, outgoing_);  // ssl_ owns both now
  if (opts_.server_side) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  const std::string& host = opts_.server_hostname;
  if (host.empty()) return;
  const bool ip = is_ip_address(host);
  if (!ip) SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI carries names, not addresses
  if (context.check_hostname()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (ok != 1) throw_ssl_error("server_hostname");
  }
}

// Timers are not cancelled here: the loop may be gone, and their callbacks hold weak pointers.
SSLTransport::~SSLTransport() = default;

// ---- the lower transport's events ---------------------------------------------------------------

void SSLTransport::on_connection_made(Transport& transport) {
  lower_transport_ = transport.shared_from_this();
  start_handshake();
}

void SSLTransport::on_data(std::string_view data) {
  if (state_ == State::Unwrapped) return;  // after a fatal error: the lower transport is going
  BIO_write(incoming_, data.data(), static_cast<int>(data.size()));
  switch (state_) {
    case State::DoHandshake:
      do_handshake();
      break;
    case State::Wrapped:
      do_read();
      break;
    case State::Flushing:
      do_flush();
      break;
    case State::Shutdown:
      do_shutdown();
      break;
    case State::Unwrapped:
      break;
  }
}

bool SSLTransport::on_eof() {
  eof_received_ = true;
  switch (state_) {
    case State::DoHandshake:
      on_handshake_complete(std::make_exception_ptr(
          os_error(ECONNRESET, "the peer closed the connection during the SSL handshake")));
      break;
    case State::Wrapped:
      // An EOF without close_notify (a "ragged EOF") ends the session as close_notify would.
      state_ = State::Flushing;
      if (app_reading_paused_) return true;  // resume_reading() delivers, then shuts down
      do_flush();
      break;
    case State::Flushing:
      do_write();
      state_ = State::Shutdown;
      do_shutdown();
      break;
    case State::Shutdown:
      do_shutdown();
      break;
    case State::Unwrapped:
      break;
  }
  return false;
}

void SSLTransport::on_connection_lost(std::exception_ptr exc) {
  if (!exc) exc = error_;  // we closed the lower transport because of it
  backlog_.clear();
  closed_ = true;
  // asyncio skips the app when the connection dies during the handshake; an app that already
  // had connection_made (start_tls) is told here too, or a stream upgrading would wait forever.
  if (app_state_ == AppState::ConMade || app_state_ == AppState::Eof) {
    app_state_ = AppState::ConLost;
    loop_.call_soon([self = shared(), exc] {
      try {
        self->app_->connection_lost(exc);
      } catch (...) {
        self->loop_.call_exception_handler(
            {"protocol.connection_lost() failed", std::current_exception(), std::nullopt});
      }
    });
  }
  state_ = State::Unwrapped;
  lower_transport_.reset();
  if (handshake_timer_) handshake_timer_->cancel();
  if (shutdown_timer_) shutdown_timer_->cancel();
  handshake_timer_.reset();
  shutdown_timer_.reset();
  wakeup_waiter(exc ? exc
                    : std::make_exception_ptr(os_error(
                          ECONNRESET, "the connection was lost during the SSL handshake")));
}

void SSLTransport::on_resume_writing() {
  ssl_writing_paused_ = false;
  process_outgoing();
}

// ---- handshake ----------------------------------------------------------------------------------

void SSLTransport::start_handshake() {
  state_ = State::DoHandshake;
  handshake_timer_ = loop_.call_later(opts_.handshake_timeout, [w = weak()] {
    auto self = w.lock();
    if (!self || self->state_ != State::DoHandshake) return;
    self->handshake_timer_.reset();
    self->fatal_error(
        std::make_exception_ptr(os_error(ECONNABORTED, ("SSL handshake is taking longer than " +
                                                        seconds(self->opts_.handshake_timeout) +
                                                        " seconds: aborting the connection")
                                                           .c_str())),
        "SSL handshake timed out");
    self->wakeup_waiter(self->error_);
  });
  do_handshake();
}

void SSLTransport::do_handshake() {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    process_outgoing();  // our last flight (the client's Finished, the server's tickets)
    on_handshake_complete(nullptr);
    return;
  }
  const int err = SSL_get_error(ssl_, r);
  if (want_io(err)) {
    process_outgoing();
    return;
  }
  std::exception_ptr exc = ssl_error(ssl_, err, "SSL handshake failed");
  process_outgoing();  // the alert tells the peer why (asyncio drops it)
  on_handshake_complete(exc);
}

void SSLTransport::on_handshake_complete(std::exception_ptr exc) {
  if (handshake_timer_) handshake_timer_->cancel();
  handshake_timer_.reset();
  if (exc) {
    // Nobody awaits a server's handshake: asyncio tells the exception handler in debug mode.
    if (opts_.server_side && loop_.get_debug() && is_os_error(exc)) {
      loop_.call_exception_handler(
          {"Error on transport creation for incoming connection", exc, std::nullopt});
    }
    fatal_error(exc, "SSL handshake failed");
    wakeup_waiter(exc);
    return;
  }
  state_ = State::Wrapped;
  if (app_state_ == AppState::Init) {
    app_state_ = AppState::ConMade;
    try {
      app_->connection_made(*this);
    } catch (...) {
      fatal_error(std::current_exception(), "protocol.connection_made() failed");
      wakeup_waiter(error_);
      return;
    }
  }
  wakeup_waiter(nullptr);
  if (!backlog_.empty()) do_write();  // written before the handshake was over
  do_read();                          // records that came with the handshake's last flight
}

// ---- reading ------------------------------------------------------------------------------------

void SSLTransport::do_read() {
  if (state_ != State::Wrapped && state_ != State::Flushing) return;
  if (!app_reading_paused_) {
    char* buffer = plaintext_buffer();
    for (;;) {
      // Gather what is there, up to kChunk, into one data_received (asyncio joins it all).
      std::size_t filled = 0;
      bool close_notify = false;
      std::exception_ptr failure;
      while (filled < kChunk) {
        ERR_clear_error();
        const int n = SSL_read(ssl_, buffer + filled, static_cast<int>(kChunk - filled));
        if (n > 0) {
          filled += static_cast<std::size_t>(n);
          continue;
        }
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) {
          close_notify = true;
        } else if (!want_io(err)) {
          failure = ssl_error(ssl_, err, "SSL read failed");
        }
        break;
      }
      if (filled > 0) {
        try {
          app_->data_received(std::string_view(buffer, filled));
        } catch (...) {
          fatal_error(std::current_exception(), "protocol.data_received() call failed.");
          return;
        }
      }
      if (failure) {
        fatal_error(failure, "Fatal error on SSL protocol");
        return;
      }
      if (close_notify) {
        call_eof_received();
        start_shutdown(false);  // TLS has no half-close: answer with our close_notify
        return;
      }
      if (filled < kChunk || app_reading_paused_) break;
      if (state_ != State::Wrapped && state_ != State::Flushing) return;
    }
    if (!backlog_.empty()) {
      do_write();
    } else {
      process_outgoing();  // TLS 1.3 post-handshake messages may want an answer
    }
  }
  control_ssl_reading();
}

void SSLTransport::call_eof_received() {
  if (app_state_ != AppState::ConMade) return;
  app_state_ = AppState::Eof;
  try {
    (void)app_->eof_received();  // keeping the connection open has no effect over TLS
  } catch (...) {
    fatal_error(std::current_exception(), "Error calling eof_received()");
  }
}

void SSLTransport::control_ssl_reading() {
  auto lower = this->lower();
  if (!lower) return;
  const std::size_t size = BIO_ctrl_pending(incoming_);
  if (size > incoming_high_ && !ssl_reading_paused_) {
    ssl_reading_paused_ = true;
    lower->pause_reading();
  } else if (size <= incoming_low_ && ssl_reading_paused_) {
    ssl_reading_paused_ = false;
    lower->resume_reading();
  }
}

void SSLTransport::pause_reading() {
  app_reading_paused_ = true;
}

void SSLTransport::resume_reading() {
  if (!app_reading_paused_) return;
  app_reading_paused_ = false;
  loop_.call_soon([w = weak()] {
    auto self = w.lock();
    if (!self) return;
    switch (self->state_) {
      case State::Wrapped:
        self->do_read();
        break;
      case State::Flushing:
        self->do_flush();
        break;
      case State::Shutdown:
        self->do_shutdown();
        break;
      default:
        break;
    }
  });
}

// ---- writing ------------------------------------------------------------------------------------

void SSLTransport::write(std::string_view data) {
  // asyncio drops writes once closing has begun.
  if (data.empty() || closed_ || state_ == State::Flushing || state_ == State::Shutdown ||
      state_ == State::Unwrapped) {
    return;
  }
  if (state_ == State::Wrapped && backlog_.empty()) {
    // The common case: encrypt straight from the caller's buffer, no copy.
    ERR_clear_error();
    const int n =
        SSL_write(ssl_, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), INT_MAX)));
    if (n > 0) data.remove_prefix(static_cast<std::size_t>(n));
    if (n <= 0) {
      const int err = SSL_get_error(ssl_, n);
      if (!want_io(err)) {
        fatal_error(ssl_error(ssl_, err, "SSL write failed"), "Fatal error on SSL protocol");
        return;
      }
    }
    if (data.empty()) {
      process_outgoing();
      return;
    }
  }
  backlog_.append(data);  // before the handshake, or while a renegotiation wants a read
  if (state_ == State::Wrapped) {
    do_write();
  } else {
    control_app_writing();
  }
}

void SSLTransport::do_write() {
  while (!backlog_.empty()) {
    ERR_clear_error();
    const int n = SSL_write(ssl_, backlog_.data(),
                            static_cast<int>(std::min<std::size_t>(backlog_.size(), INT_MAX)));
    if (n > 0) {
      backlog_.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    const int err = SSL_get_error(ssl_, n);
    if (want_io(err)) break;  // retried with the same bytes once the peer's records come
    fatal_error(ssl_error(ssl_, err, "SSL write failed"), "Fatal error on SSL protocol");
    return;
  }
  process_outgoing();
}

void SSLTransport::process_outgoing() {
  if (!ssl_writing_paused_) {
    if (auto lower = this->lower()) {
      char* buffer = record_buffer();
      // The lower transport may pause us from inside write(): stop there, the rest waits.
      while (!ssl_writing_paused_) {
        const int n = BIO_read(outgoing_, buffer, static_cast<int>(kChunk));
        if (n <= 0) break;
        lower->write(std::string_view(buffer, static_cast<std::size_t>(n)));
      }
    }
  }
  control_app_writing();
}

std::size_t SSLTransport::get_write_buffer_size() const noexcept {
  return BIO_ctrl_pending(outgoing_) + backlog_.size();
}

void SSLTransport::control_app_writing() {
  const std::size_t size = get_write_buffer_size();
  if (size > high_ && !app_writing_paused_) {
    app_writing_paused_ = true;
    try {
      app_->pause_writing();
    } catch (...) {
      loop_.call_exception_handler(
          {"protocol.pause_writing() failed", std::current_exception(), std::nullopt});
    }
  } else if (size <= low_ && app_writing_paused_) {
    app_writing_paused_ = false;
    try {
      app_->resume_writing();
    } catch (...) {
      loop_.call_exception_handler(
          {"protocol.resume_writing() failed", std::current_exception(), std::nullopt});
    }
  }
}

void SSLTransport::set_write_buffer_limits(std::optional<std::size_t> high,
                                           std::optional<std::size_t> low) {
  const std::size_t h = high ? *high : low ? 4 * *low : 512 * 1024;
  const std::size_t l = low ? *low : h / 4;
  if (l > h) throw ValueError("high must be >= low must be >= 0");
  high_ = h;
  low_ = l;
  control_app_writing();
}

void SSLTransport::write_eof() {
  throw RuntimeError("SSL doesn't support half-closes");
}

// ---- closing ------------------------------------------------------------------------------------

void SSLTransport::close() {
  if (closed_) return;
  closed_ = true;
  if (!lower()) return;  // the connection is over, or the loop closed under it
  // Called from an app callback perhaps (data_received): flush on the next iteration, so that
  // no data_received nests inside that one.
  start_shutdown(true);
}

void SSLTransport::abort() {
  closed_ = true;
  abort_lower();
}

void SSLTransport::start_shutdown(bool defer) {
  if (state_ == State::Flushing || state_ == State::Shutdown || state_ == State::Unwrapped) return;
  if (state_ == State::DoHandshake) {
    abort_lower();
    return;
  }
  state_ = State::Flushing;
  shutdown_timer_ = loop_.call_later(opts_.shutdown_timeout, [w = weak()] {
    auto self = w.lock();
    if (!self) return;
    self->shutdown_timer_.reset();
    if (self->state_ != State::Flushing && self->state_ != State::Shutdown) return;
    if (!self->error_)
      self->error_ = std::make_exception_ptr(TimeoutError("SSL shutdown timed out"));
    self->abort_lower();
  });
  if (!defer) {
    do_flush();
    return;
  }
  loop_.call_soon([w = weak()] {
    auto self = w.lock();
    if (self && self->state_ == State::Flushing) self->do_flush();
  });
}

void SSLTransport::do_flush() {
  do_read();  // deliver what came before the end
  if (state_ != State::Flushing) return;
  if (!backlog_.empty()) do_write();
  if (state_ != State::Flushing) return;
  state_ = State::Shutdown;
  do_shutdown();
}

void SSLTransport::do_shutdown() {
  if (state_ != State::Shutdown) return;
  auto done = [this](std::exception_ptr exc) {
    process_outgoing();
    if (!exc) call_eof_received();
    on_shutdown_complete(exc);
  };
  if (eof_received_) {
    done(nullptr);  // the peer hung up: there is nobody to exchange close_notify with
    return;
  }
  ERR_clear_error();
  int r = SSL_shutdown(ssl_);  // sends our close_notify the first time
  if (r == 0) {
    // Wait for the peer's close_notify; what it still sends before it goes nowhere.
    char* buffer = plaintext_buffer();
    for (;;) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, buffer, static_cast<int>(kChunk));
      if (n > 0) continue;
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_ZERO_RETURN) {
        r = 1;
        break;
      }
      if (want_io(err)) {
        process_outgoing();
        control_ssl_reading();  // the lower transport may be paused: the answer must come in
        return;
      }
      done(ssl_error(ssl_, err, "SSL shutdown failed"));
      return;
    }
  }
  if (r == 1) {
    done(nullptr);
    return;
  }
  const int err = SSL_get_error(ssl_, r);
  if (want_io(err)) {
    process_outgoing();
    return;
  }
  done(ssl_error(ssl_, err, "SSL shutdown failed"));
}

void SSLTransport::on_shutdown_complete(std::exception_ptr exc) {
  if (shutdown_timer_) shutdown_timer_->cancel();
  shutdown_timer_.reset();
  if (exc) {
    fatal_error(exc, "SSL shutdown failed");
    return;
  }
  state_ = State::Unwrapped;
  if (auto lower = this->lower()) lower->close();  // flushes our close_notify, then closes
}

void SSLTransport::fatal_error(std::exception_ptr exc, const char* message) {
  if (!error_) error_ = exc;
  if (!is_os_error(exc)) loop_.call_exception_handler({message, exc, std::nullopt});
  abort_lower();
}

void SSLTransport::abort_lower() {
  state_ = State::Unwrapped;
  if (auto lower = this->lower()) lower->abort();
}

void SSLTransport::wakeup_waiter(std::exception_ptr exc) {
  if (!waiter_) return;
  Future<void> waiter = std::move(*waiter_);
  waiter_.reset();
  if (waiter.done()) return;  // cancelled
  if (exc) {
    waiter.set_exception(exc);
  } else {
    waiter.set_result();
  }
}

// ---- the rest -----------------------------------------------------------------------------------

ExtraInfo SSLTransport::get_extra_info(std::string_view name) const {
  const bool established = SSL_is_init_finished(ssl_) != 0;
  if (name == "ssl_object") return ExtraInfo(SSLObject(handle_));
  if (name == "sslcontext") return ExtraInfo(context_);
  if (name == "compression") return {};
  if (name == "peercert") {
    if (!established) return {};
    std::optional<PeerCertificate> cert = SSLObject(handle_).getpeercert();
    return cert ? ExtraInfo(std::move(*cert)) : ExtraInfo();
  }
  if (name == "cipher") {
    if (!established) return {};
    std::optional<CipherInfo> cipher = SSLObject(handle_).cipher();
    return cipher ? ExtraInfo(std::move(*cipher)) : ExtraInfo();
  }
  if (auto lower = this->lower()) return lower->get_extra_info(name);
  return {};
}

void SSLTransport::set_protocol(std::shared_ptr<Protocol> protocol) {
  if (!protocol) throw ValueError("set_protocol: null protocol");
  app_ = std::move(protocol);
}

}  // namespace weave::detail
