#pragma once
// TLS as a protocol layered over a transport, as asyncio's sslproto (3.11+) does it: the socket
// transport below sees an ordinary Protocol (lower_), the user's protocol above sees an ordinary
// Transport (this object), and OpenSSL in between reads and writes two memory BIOs, never a
// socket. So TLS works unchanged on every backend and over any Transport (start_tls).
//
// States (asyncio's SSLProtocolState):
//   Unwrapped   --connection_made-->  DoHandshake  --handshake done-->  Wrapped
//   Wrapped     --close() / close_notify / EOF-->  Flushing  --data delivered-->  Shutdown
//   Shutdown    --close_notify exchanged (or EOF)-->  the lower transport is closed
// Any error, the handshake timeout and the shutdown timeout close the lower transport at once.
// The app protocol's states (asyncio's AppProtocolState) make sure it sees connection_made
// once (after the handshake), eof_received at most once and connection_lost exactly once.
//
// Flow control, both ways, as asyncio's: encrypted output goes to the lower transport until it
// pauses us, then waits in the outgoing BIO; the app is paused while the BIO plus the plaintext
// backlog is over the high-water mark. Incoming records wait in the incoming BIO while the app
// has paused reading; the lower transport is paused once that BIO is over its own mark.
//
// Lifetime: the lower transport holds this object (through lower_, an aliasing shared_ptr) until
// its connection_lost; this object holds the lower transport only weakly, so no cycle outlives
// a loop that closes with the connection open.

#include <memory>
#include <optional>
#include <string>

#include "net/tls_detail.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/transports.hpp"

namespace weave::detail {

class SSLTransport final : public Transport {
 public:
  enum class State {
    Unwrapped,    ///< before connection_made, and after the end
    DoHandshake,  ///< the handshake runs; app writes wait in the backlog
    Wrapped,      ///< application data flows
    Flushing,     ///< closing: what is already received is still delivered
    Shutdown,     ///< close_notify sent; waiting for the peer's (or EOF)
  };
  enum class AppState {
    Init,     ///< connection_made not called yet
    ConMade,  ///< connection_made called (or start_tls: the app already had it)
    Eof,      ///< eof_received called
    ConLost,  ///< connection_lost scheduled
  };

  struct Options {
    bool server_side = false;
    std::string server_hostname;
    Clock::duration handshake_timeout = std::chrono::seconds(60);
    Clock::duration shutdown_timeout = std::chrono::seconds(30);
    /// False for start_tls: the app protocol has had its connection_made already.
    bool call_connection_made = true;
  };

  /// Errors: ValueError when the context checks host names and no server_hostname is given;
  /// SSLError when OpenSSL cannot make the connection's SSL object.
  SSLTransport(EventLoop& loop, const SSLContext& context, std::shared_ptr<Protocol> app,
               Options opts, std::optional<Future<void>> waiter);
  ~SSLTransport() override;

  /// The Protocol to give to the lower transport. Valid once this is owned by a shared_ptr.
  std::shared_ptr<Protocol> lower_protocol() {
    return std::shared_ptr<Protocol>(shared_from_this(), &lower_);
  }

  void write(std::string_view data) override;
  /// TLS has no half-close in asyncio. Errors: RuntimeError (Python's NotImplementedError).
  void write_eof() override;
  bool can_write_eof() const noexcept override { return false; }
  /// Sends close_notify once the buffered data is out; connection_lost follows when the peer
  /// answers, hangs up, or the shutdown timeout expires (then with TimeoutError).
  void close() override;
  void abort() override;
  bool is_closing() const noexcept override { return closed_; }
  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override { return !closed_ && !app_reading_paused_; }
  std::size_t get_write_buffer_size() const noexcept override;
  void set_write_buffer_limits(std::optional<std::size_t> high,
                               std::optional<std::size_t> low) override;
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override {
    return {low_, high_};
  }
  /// "peercert" (PeerCertificate), "cipher" (CipherInfo), "ssl_object" (SSLObject),
  /// "sslcontext" (SSLContext), "compression" (always empty); other names go to the
  /// transport below ("peername", "sockname", "socket").
  ExtraInfo get_extra_info(std::string_view name) const override;
  Protocol& get_protocol() const noexcept override { return *app_; }
  void set_protocol(std::shared_ptr<Protocol> protocol) override;
  /// The application's protocol was told pause_writing() and not yet resume_writing().
  bool protocol_paused() const noexcept { return app_writing_paused_; }
  const std::shared_ptr<Protocol>& protocol_ptr() const noexcept { return app_; }

 private:
  /// The face shown to the lower transport.
  struct Lower final : Protocol {
    SSLTransport* t = nullptr;
    void connection_made(Transport& transport) override { t->on_connection_made(transport); }
    void data_received(std::string_view data) override { t->on_data(data); }
    bool eof_received() override { return t->on_eof(); }
    void connection_lost(std::exception_ptr exc) override { t->on_connection_lost(exc); }
    void pause_writing() override { t->ssl_writing_paused_ = true; }
    void resume_writing() override { t->on_resume_writing(); }
  };

  void on_connection_made(Transport& transport);
  void on_data(std::string_view data);
  bool on_eof();
  void on_connection_lost(std::exception_ptr exc);
  void on_resume_writing();

  void start_handshake();
  void do_handshake();
  void on_handshake_complete(std::exception_ptr exc);
  void do_read();
  void do_write();
  void process_outgoing();
  void control_app_writing();
  void control_ssl_reading();
  /// `defer`: flush on the next iteration (close() may come from inside an app callback).
  void start_shutdown(bool defer);
  void do_flush();
  void do_shutdown();
  void on_shutdown_complete(std::exception_ptr exc);
  void call_eof_received();
  /// A TLS error or a failing app callback: close the lower transport at once; the app's
  /// connection_lost gets `exc`. Reported to the exception handler unless it is an OS or SSL
  /// error (a peer's doing), as asyncio does.
  void fatal_error(std::exception_ptr exc, const char* message);
  void abort_lower();
  void wakeup_waiter(std::exception_ptr exc);
  std::shared_ptr<Transport> lower() const { return lower_transport_.lock(); }
  std::shared_ptr<SSLTransport> shared() {
    return std::static_pointer_cast<SSLTransport>(shared_from_this());
  }
  std::weak_ptr<SSLTransport> weak() { return shared(); }

  EventLoop& loop_;
  SSLContext context_;
  std::shared_ptr<SSLHandle> handle_;
  SSL* ssl_;       ///< handle_->ssl
  BIO* incoming_;  ///< records from the peer, owned by ssl_
  BIO* outgoing_;  ///< records for the peer, owned by ssl_
  std::shared_ptr<Protocol> app_;
  Options opts_;
  std::optional<Future<void>> waiter_;  ///< create_connection / start_tls wait on it
  Lower lower_;
  std::weak_ptr<Transport> lower_transport_;
  State state_ = State::Unwrapped;
  AppState app_state_;
  std::string backlog_;       ///< plaintext SSL_write has not taken yet
  std::exception_ptr error_;  ///< why we closed the lower transport, for connection_lost
  std::optional<TimerHandle> handshake_timer_;
  std::optional<TimerHandle> shutdown_timer_;
  std::size_t high_ = 512 * 1024;  ///< asyncio's FLOW_CONTROL_HIGH_WATER_SSL_WRITE
  std::size_t low_ = 128 * 1024;
  std::size_t incoming_high_ = 256 * 1024;  ///< FLOW_CONTROL_HIGH_WATER_SSL_READ
  std::size_t incoming_low_ = 64 * 1024;
  bool closed_ = false;              ///< close() or abort() called, or the connection is over
  bool eof_received_ = false;        ///< the lower transport saw EOF
  bool app_reading_paused_ = false;  ///< pause_reading() by the app
  bool app_writing_paused_ = false;  ///< we called the app's pause_writing()
  bool ssl_reading_paused_ = false;  ///< we paused the lower transport's reading
  bool ssl_writing_paused_ = false;  ///< the lower transport paused us
};

}  // namespace weave::detail
