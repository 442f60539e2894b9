// TLS on both backends: echo over streams and over protocols, start_tls on a live stream, the
// errors of a failed verification (untrusted CA, wrong host name), resets and silence during the
// handshake, the close_notify exchange and its timeout, flow control and several MiB each way,
// mutual TLS, ALPN, and interop with the openssl command line (s_server and s_client run as
// separate processes). Certificates are made at run time (support/tls_certs.hpp); the fd count
// is unchanged by each test.

#include <dirent.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/net.hpp"
#include "support/openssl_process.hpp"
#include "support/reports.hpp"
#include "support/steps.hpp"
#include "support/tls_certs.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using weave_test::echo_lines;
using weave_test::have_openssl_binary;
using weave_test::OpensslProcess;
using weave_test::port_of;
using weave_test::Recorder;
using weave_test::Reports;
using weave_test::run_bounded;
using weave_test::until;

namespace {

std::unique_ptr<weave_test::TestCertificates> test_certs;  // made once for the suite

const weave_test::TestCertificates& certs() {
  return *test_certs;
}

class TLS : public weave_test::FdLeakCheck {
 protected:
  static void SetUpTestSuite() { test_certs = std::make_unique<weave_test::TestCertificates>(); }
  static void TearDownTestSuite() { test_certs.reset(); }
};

weave::SSLContext server_context() {
  return weave::SSLContext::server(certs().cert_file(), certs().key_file());
}

/// A client that trusts the test CA (and checks host names, as client() does).
weave::SSLContext client_context() {
  weave::SSLContext ctx = weave::SSLContext::client();
  ctx.load_verify_locations(certs().ca_file());
  return ctx;
}

weave::StreamOptions server_options() {
  weave::StreamOptions o;
  o.ssl = server_context();
  return o;
}

weave::StreamOptions client_options() {
  weave::StreamOptions o;
  o.ssl = client_context();
  return o;
}

// ---- echo ---------------------------------------------------------------------------------------

weave::Coro<void> echo_over_tls_streams() {
  Reports reports;
  reports.install();
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, server_options());
  auto [reader, writer] =
      co_await weave::open_connection("127.0.0.1", port_of(server), client_options());
  // The handshake is over when open_connection returns.
  auto cipher = std::any_cast<weave::CipherInfo>(writer.get_extra_info("cipher"));
  EXPECT_FALSE(cipher.name.empty());
  EXPECT_EQ(cipher.version, "TLSv1.3");
  auto cert = std::any_cast<weave::PeerCertificate>(writer.get_extra_info("peercert"));
  EXPECT_NE(cert.subject.find("CN=localhost"), std::string::npos) << cert.subject;
  EXPECT_NE(cert.issuer.find("CN=weave test CA"), std::string::npos) << cert.issuer;
  EXPECT_EQ(cert.subject_alt_names,
            (std::vector<std::string>{"DNS:localhost", "IP Address:127.0.0.1"}));
  auto ssl = std::any_cast<weave::SSLObject>(writer.get_extra_info("ssl_object"));
  EXPECT_EQ(ssl.version(), "TLSv1.3");
  EXPECT_FALSE(ssl.server_side());
  EXPECT_EQ(ssl.server_hostname(), "127.0.0.1");
  EXPECT_EQ(writer.get_extra_info("peername").port(), port_of(server));
  EXPECT_FALSE(writer.can_write_eof());
  EXPECT_THROW(writer.write_eof(), weave::RuntimeError);  // no half-close over TLS

  for (int i = 0; i < 100; ++i) {
    writer.write("line " + std::to_string(i) + "\n");
    co_await writer.drain();
    EXPECT_EQ(co_await reader.readline(), "line " + std::to_string(i) + "\n");
  }
  writer.writelines({"a\n", "b\n"});
  EXPECT_EQ(co_await reader.readexactly(4), "a\nb\n");
  writer.close();  // close_notify: the server reads EOF, closes, and answers with its own
  co_await writer.wait_closed();
  EXPECT_EQ(co_await reader.read(), "");
  server.close();
  co_await server.wait_closed();
  EXPECT_TRUE(reports.messages.empty());
}

TEST_F(TLS, EchoOverStreams) {
  run_bounded(echo_over_tls_streams());
}

weave::Coro<void> echo_with_server_hostname() {
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, server_options());
  weave::StreamOptions opts = client_options();
  opts.server_hostname = "localhost";
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  EXPECT_EQ(std::any_cast<weave::SSLObject>(writer.get_extra_info("ssl_object")).server_hostname(),
            "localhost");
  writer.write("by name\n");
  EXPECT_EQ(co_await reader.readline(), "by name\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, ServerHostnameNamesThePeer) {
  run_bounded(echo_with_server_hostname());
}

weave::Coro<void> echo_over_unix_tls() {
  const std::string path = "/tmp/weave-tls-" + std::to_string(getpid()) + ".sock";
  weave::Server server = co_await weave::start_unix_server(echo_lines, path, server_options());
  weave::StreamOptions opts = client_options();
  opts.server_hostname = "localhost";
  auto [reader, writer] = co_await weave::open_unix_connection(path, opts);
  writer.write("unix\n");
  EXPECT_EQ(co_await reader.readline(), "unix\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "close() removes the socket file";
}

TEST_F(TLS, EchoOverUnixSockets) {
  run_bounded(echo_over_unix_tls());
}

weave::Coro<void> echo_over_tls_protocols() {
  auto& loop = weave::get_running_loop();
  std::shared_ptr<Recorder> server_side;
  weave::ServerOptions sopts;
  sopts.ssl = server_context();
  weave::Server server = co_await loop.create_server(
      [&] { return server_side = std::make_shared<Recorder>(true); }, "127.0.0.1", 0, sopts);
  auto client = std::make_shared<Recorder>();
  weave::ConnectionOptions copts;
  copts.ssl = client_context();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server), copts);
  EXPECT_EQ(client->events, std::vector<std::string>{"made after handshake"});
  EXPECT_EQ(c.protocol.get(), client.get());
  EXPECT_EQ(&c.transport->get_protocol(), client.get());
  c.transport->write("hello ");
  c.transport->write("tls");
  co_await until([&] { return client->received.size() == 9; });
  EXPECT_EQ(client->received, "hello tls");
  EXPECT_TRUE(server_side);
  if (!server_side) co_return;
  EXPECT_EQ(server_side->events, std::vector<std::string>{"made after handshake"});
  c.transport->close();
  EXPECT_TRUE(c.transport->is_closing());
  c.transport->write("dropped");  // ignored once closing, as asyncio does
  co_await client->wait_lost();
  co_await server_side->wait_lost();
  EXPECT_EQ(client->events, (std::vector<std::string>{"made after handshake", "eof", "lost"}));
  EXPECT_EQ(server_side->events, (std::vector<std::string>{"made after handshake", "eof", "lost"}));
  EXPECT_EQ(server_side->received, "hello tls");
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, EchoOverProtocols) {
  run_bounded(echo_over_tls_protocols());
}

// ---- verification -------------------------------------------------------------------------------

weave::Coro<void> default_context_rejects_the_test_ca() {
  Reports reports;
  reports.install();
  int made = 0;
  weave::ServerOptions sopts;
  sopts.ssl = server_context();
  auto& loop = weave::get_running_loop();
  std::vector<std::shared_ptr<Recorder>> server_sides;
  weave::Server server = co_await loop.create_server(
      [&] {
        ++made;
        server_sides.push_back(std::make_shared<Recorder>());
        return server_sides.back();
      },
      "127.0.0.1", 0, sopts);
  weave::StreamOptions opts;
  opts.ssl = weave::SSLContext::client();  // the system's CAs only
  bool caught = false;
  try {
    co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  } catch (const weave::SSLCertVerificationError& e) {
    caught = true;
    EXPECT_EQ(e.verify_code, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY) << e.what();
    EXPECT_EQ(e.reason(), "certificate verify failed");
    EXPECT_EQ(e.code().category(), weave::ssl_category());
    const std::system_error& as_os_error = e;  // Python's SSLError is an OSError
    EXPECT_NE(std::string(as_os_error.what()).find("certificate verify failed"), std::string::npos);
  }
  EXPECT_TRUE(caught) << "no SSLCertVerificationError";
  // The server side never saw connection_made, and said nothing (asyncio logs it in debug only).
  co_await weave::sleep(20ms);
  EXPECT_EQ(made, 1);
  for (auto& p : server_sides) EXPECT_TRUE(p->events.empty());
  server.close();
  co_await server.wait_closed();
  EXPECT_TRUE(reports.messages.empty());
}

TEST_F(TLS, DefaultClientContextRejectsAnUnknownCA) {
  run_bounded(default_context_rejects_the_test_ca());
}

weave::Coro<void> host_name_mismatch() {
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, server_options());
  weave::StreamOptions opts = client_options();
  opts.server_hostname = "wrong.example";
  long code = 0;
  try {
    co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  } catch (const weave::SSLCertVerificationError& e) {
    code = e.verify_code;
    EXPECT_EQ(e.verify_message, "hostname mismatch") << e.what();
  }
  EXPECT_EQ(code, X509_V_ERR_HOSTNAME_MISMATCH);

  // check_hostname off: the same name passes (the chain is still verified).
  weave::SSLContext lax = client_context();
  lax.set_check_hostname(false);
  EXPECT_TRUE(lax.verify());
  opts.ssl = lax;
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  writer.write("ok\n");
  EXPECT_EQ(co_await reader.readline(), "ok\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, HostNameMismatchFailsVerification) {
  run_bounded(host_name_mismatch());
}

weave::Coro<void> verification_off() {
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, server_options());
  weave::StreamOptions opts;
  opts.ssl = weave::SSLContext::client();
  opts.ssl->set_verify(false);
  EXPECT_FALSE(opts.ssl->check_hostname());
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  writer.write("unverified\n");
  EXPECT_EQ(co_await reader.readline(), "unverified\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, VerificationCanBeTurnedOff) {
  run_bounded(verification_off());
}

weave::Coro<void> bad_arguments() {
  auto& loop = weave::get_running_loop();
  auto factory = [] { return std::make_shared<weave::Protocol>(); };
  weave::ConnectionOptions no_ssl;
  no_ssl.server_hostname = "localhost";
  EXPECT_THROW(co_await loop.create_connection(factory, "127.0.0.1", 1, no_ssl), weave::ValueError);
  weave::ConnectionOptions timeout_only;
  timeout_only.ssl_handshake_timeout = 1s;
  EXPECT_THROW(co_await loop.create_connection(factory, "127.0.0.1", 1, timeout_only),
               weave::ValueError);
  weave::ServerOptions client_ctx;
  client_ctx.ssl = client_context();
  EXPECT_THROW(co_await loop.create_server(factory, "127.0.0.1", 0, client_ctx), weave::ValueError);
  weave::ServerOptions zero;
  zero.ssl = server_context();
  zero.ssl_shutdown_timeout = 0s;
  EXPECT_THROW(co_await loop.create_server(factory, "127.0.0.1", 0, zero), weave::ValueError);
}

TEST_F(TLS, BadArgumentsRaiseValueError) {
  run_bounded(bad_arguments());
}

TEST_F(TLS, ContextFileErrors) {
  try {
    weave::SSLContext::server("/nonexistent/cert.pem", "/nonexistent/key.pem");
    ADD_FAILURE() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
  // A key that is not the certificate's.
  EXPECT_THROW(weave::SSLContext::server(certs().cert_file(), certs().client_key_file()),
               weave::SSLError);
  // A certificate file given as the CA store holds a certificate, but no key as a cert.
  EXPECT_THROW(weave::SSLContext::server(certs().key_file(), certs().key_file()), weave::SSLError);
  weave::SSLContext ctx = weave::SSLContext::client();
  EXPECT_TRUE(ctx.verify());
  EXPECT_TRUE(ctx.check_hostname());
  EXPECT_FALSE(ctx.is_server());
  EXPECT_THROW(ctx.set_alpn_protocols({""}), weave::ValueError);
}

// ---- start_tls ----------------------------------------------------------------------------------

weave::Coro<void> starttls_server(weave::StreamReader reader, weave::StreamWriter writer) {
  std::string command = co_await reader.readline();
  if (command != "STARTTLS\n") co_return;
  writer.write("GO AHEAD\n");
  co_await writer.drain();
  co_await writer.start_tls(server_context());
  co_await echo_lines(std::move(reader), std::move(writer));
}

weave::Coro<void> upgrade_a_stream() {
  weave::Server server = co_await weave::start_server(starttls_server, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  writer.write("STARTTLS\n");
  EXPECT_EQ(co_await reader.readline(), "GO AHEAD\n");
  EXPECT_FALSE(writer.get_extra_info("cipher").has_value());
  co_await writer.start_tls(client_context(), "localhost");
  EXPECT_TRUE(writer.get_extra_info("cipher").has_value());
  EXPECT_EQ(std::any_cast<weave::SSLObject>(writer.get_extra_info("ssl_object")).version(),
            "TLSv1.3");
  for (int i = 0; i < 10; ++i) {
    writer.write("secret " + std::to_string(i) + "\n");
    EXPECT_EQ(co_await reader.readline(), "secret " + std::to_string(i) + "\n");
  }
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, StartTlsUpgradesAStream) {
  run_bounded(upgrade_a_stream());
}

weave::Coro<void> upgrade_a_protocol_connection() {
  auto& loop = weave::get_running_loop();
  weave::Server server = co_await weave::start_server(starttls_server, "127.0.0.1", 0);
  auto client = std::make_shared<Recorder>();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server));
  c.transport->write("STARTTLS\n");
  co_await until([&] { return client->received == "GO AHEAD\n"; });
  std::shared_ptr<weave::Transport> tls =
      co_await loop.start_tls(c.transport, client, client_context(), false, "localhost");
  EXPECT_NE(tls.get(), c.transport.get());
  EXPECT_EQ(&tls->get_protocol(), client.get());
  EXPECT_TRUE(tls->get_extra_info("peercert").has_value());
  client->received.clear();
  tls->write("over tls\n");
  co_await until([&] { return client->received == "over tls\n"; });
  EXPECT_EQ(client->received, "over tls\n");
  tls->close();
  co_await client->wait_lost();
  // connection_made was not called again for the upgrade.
  EXPECT_EQ(client->events, (std::vector<std::string>{"made", "eof", "lost"}));
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, LoopStartTlsMovesTheProtocolOnTopOfTls) {
  run_bounded(upgrade_a_protocol_connection());
}

weave::Coro<void> start_tls_needs_a_host_name() {
  weave::Server server = co_await weave::start_server(starttls_server, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server));
  EXPECT_THROW(co_await writer.start_tls(client_context()), weave::ValueError);
  writer.close();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, StartTlsWithoutServerHostnameRaisesValueError) {
  run_bounded(start_tls_needs_a_host_name());
}

// ---- failures during the handshake --------------------------------------------------------------

/// A plain TCP peer that hangs up when the ClientHello comes: with a reset or a plain EOF.
class HangUp : public weave::Protocol {
 public:
  explicit HangUp(bool reset) : reset_(reset) {}
  void connection_made(weave::Transport& t) override { transport_ = &t; }
  void data_received(std::string_view) override {
    if (reset_) {
      linger l{1, 0};
      ::setsockopt(std::any_cast<int>(transport_->get_extra_info("socket")), SOL_SOCKET, SO_LINGER,
                   &l, sizeof l);
      transport_->abort();
    } else {
      transport_->close();
    }
  }

 private:
  bool reset_;
  weave::Transport* transport_ = nullptr;
};

weave::Coro<int> handshake_errno(bool reset) {
  auto& loop = weave::get_running_loop();
  weave::Server server = co_await loop.create_server(
      [reset] { return std::make_shared<HangUp>(reset); }, "127.0.0.1", 0);
  int err = 0;
  try {
    co_await weave::open_connection("127.0.0.1", port_of(server), client_options());
    ADD_FAILURE() << "the handshake succeeded";
  } catch (const std::system_error& e) {
    err = e.code().value();
  }
  server.close();
  co_await server.wait_closed();
  co_return err;
}

TEST_F(TLS, PeerResetMidHandshake) {
  EXPECT_EQ(run_bounded(handshake_errno(true)), ECONNRESET);
}

TEST_F(TLS, PeerEofMidHandshakeIsAReset) {
  EXPECT_EQ(run_bounded(handshake_errno(false)), ECONNRESET);  // asyncio's ConnectionResetError
}

weave::Coro<void> silent_server_times_out() {
  auto& loop = weave::get_running_loop();
  weave::Server server = co_await loop.create_server(
      [] { return std::make_shared<weave::Protocol>(); }, "127.0.0.1", 0);
  weave::StreamOptions opts = client_options();
  opts.ssl_handshake_timeout = 100ms;
  int err = 0;
  try {
    co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  } catch (const std::system_error& e) {
    err = e.code().value();
    EXPECT_NE(std::string(e.what()).find("SSL handshake is taking longer than 0.1 seconds"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(err, ECONNABORTED);
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, HandshakeTimeoutAborts) {
  run_bounded(silent_server_times_out());
}

/// A raw TCP client that sends `bytes` and then either resets or waits for the server to close.
weave::Coro<void> raw_client(std::uint16_t port, std::string bytes, bool reset) {
  auto& loop = weave::get_running_loop();
  weave::Socket sock(AF_INET, SOCK_STREAM);
  co_await loop.sock_connect(sock.fd(), weave::SocketAddress::ip("127.0.0.1", port));
  if (!bytes.empty()) co_await loop.sock_sendall(sock.fd(), bytes);
  if (reset) {
    linger l{1, 0};
    ::setsockopt(sock.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    co_return;  // the socket closes with a reset
  }
  for (;;) {  // the server answers with an alert, then closes
    std::string got = co_await loop.sock_recv(sock.fd(), 4096);
    if (got.empty()) break;
  }
}

weave::Coro<void> server_survives_bad_clients() {
  Reports reports;
  reports.install();
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, server_options());
  co_await raw_client(port_of(server), "", true);  // reset before any byte
  co_await raw_client(port_of(server), std::string("\x16\x03\x01\x00\x10", 5), true);  // mid-hello
  co_await raw_client(port_of(server), "GET / HTTP/1.0\r\n\r\n", false);  // not TLS at all
  auto [reader, writer] =
      co_await weave::open_connection("127.0.0.1", port_of(server), client_options());
  writer.write("still serving\n");
  EXPECT_EQ(co_await reader.readline(), "still serving\n");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();  // every bad connection is gone too
  EXPECT_TRUE(reports.messages.empty()) << reports.messages.front();
}

TEST_F(TLS, ServerDropsClientsThatFailTheHandshake) {
  run_bounded(server_survives_bad_clients());
}

weave::Coro<void> debug_mode_reports_failed_handshakes() {
  Reports reports;
  reports.install();
  weave::get_running_loop().set_debug(true);
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, server_options());
  co_await raw_client(port_of(server), "GET / HTTP/1.0\r\n\r\n", false);
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(reports.messages,
            std::vector<std::string>{"Error on transport creation for incoming connection"});
}

TEST_F(TLS, DebugModeReportsFailedHandshakesOfAServer) {
  run_bounded(debug_mode_reports_failed_handshakes());
}

// ---- closing ------------------------------------------------------------------------------------

/// Answers the first data and closes at once, from inside data_received.
class AnswerAndClose : public weave::Protocol {
 public:
  void connection_made(weave::Transport& t) override { transport_ = &t; }
  void data_received(std::string_view data) override {
    transport_->write("you said: " + std::string(data));
    transport_->close();
  }

 private:
  weave::Transport* transport_ = nullptr;
};

weave::Coro<void> close_inside_data_received() {
  auto& loop = weave::get_running_loop();
  weave::ServerOptions sopts;
  sopts.ssl = server_context();
  weave::Server server = co_await loop.create_server(
      [] { return std::make_shared<AnswerAndClose>(); }, "127.0.0.1", 0, sopts);
  auto client = std::make_shared<Recorder>();
  weave::ConnectionOptions copts;
  copts.ssl = client_context();
  weave::Connection c =
      co_await loop.create_connection([&] { return client; }, "127.0.0.1", port_of(server), copts);
  c.transport->write("hi");
  co_await client->wait_lost();
  EXPECT_EQ(client->received, "you said: hi");
  EXPECT_EQ(client->events, (std::vector<std::string>{"made after handshake", "eof", "lost"}));
  EXPECT_FALSE(client->error);
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, CloseInsideDataReceivedFlushesTheAnswerFirst) {
  run_bounded(close_inside_data_received());
}

/// A server protocol that never reads: it holds the peer's close_notify unanswered.
class NeverReads : public weave::Protocol {
 public:
  void connection_made(weave::Transport& t) override { t.pause_reading(); }
};

weave::Coro<void> shutdown_timeout() {
  auto& loop = weave::get_running_loop();
  weave::ServerOptions sopts;
  sopts.ssl = server_context();
  weave::Server server = co_await loop.create_server([] { return std::make_shared<NeverReads>(); },
                                                     "127.0.0.1", 0, sopts);
  weave::StreamOptions opts = client_options();
  opts.ssl_shutdown_timeout = 100ms;
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server), opts);
  writer.close();
  EXPECT_THROW(co_await writer.wait_closed(), weave::TimeoutError);
  server.close();
  server.abort_clients();
  co_await server.wait_closed();
}

TEST_F(TLS, ShutdownTimeoutAbortsWithTimeoutError) {
  run_bounded(shutdown_timeout());
}

// ---- flow control and volume --------------------------------------------------------------------

std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  unsigned x = seed;
  for (char& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

constexpr std::size_t kLarge = 8 * 1024 * 1024;

weave::Coro<void> echo_exactly(weave::StreamReader reader, weave::StreamWriter writer,
                               std::string* received) {
  while (received->size() < kLarge) {
    std::string block = co_await reader.read(64 * 1024);
    if (block.empty()) break;
    received->append(block);
    writer.write(block);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

weave::Coro<void> send_all(weave::StreamWriter writer, const std::string* data,
                           std::size_t* max_buffered) {
  for (std::size_t off = 0; off < data->size(); off += 64 * 1024) {
    writer.write(std::string_view(*data).substr(off, 64 * 1024));
    *max_buffered = std::max(*max_buffered, writer.transport().get_write_buffer_size());
    co_await writer.drain();
  }
}

weave::Coro<void> large_transfer() {
  std::string at_server;
  weave::Server server = co_await weave::start_server(
      [&at_server](weave::StreamReader r, weave::StreamWriter w) {
        return echo_exactly(std::move(r), std::move(w), &at_server);
      },
      "127.0.0.1", 0, server_options());
  auto [reader, writer] =
      co_await weave::open_connection("127.0.0.1", port_of(server), client_options());
  const std::string data = pattern(kLarge, 7);
  std::size_t max_buffered = 0;
  auto sending = weave::create_task(send_all(writer, &data, &max_buffered));
  std::string back = co_await reader.readexactly(kLarge);  // while the sender still sends
  co_await sending;
  EXPECT_TRUE(back == data) << "the echo differs";
  EXPECT_TRUE(at_server == data) << "the server received other bytes";
  // The writer never holds more than the high-water mark plus one write (and its records'
  // headers and tags).
  EXPECT_LE(max_buffered, 512u * 1024 + 64 * 1024 + 1024);
  EXPECT_EQ(co_await reader.read(), "");  // the server closed
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, SeveralMegabytesBothWaysIntact) {
  run_bounded(large_transfer(), 60s);
}

struct Gate {
  weave::Event open;
  std::size_t received = 0;
};

weave::Coro<void> slow_reader(weave::StreamReader reader, weave::StreamWriter writer, Gate* gate) {
  co_await gate->open.wait();
  for (;;) {
    std::string block = co_await reader.read(1 << 16);
    gate->received += block.size();
    if (block == "" || gate->received >= 64u * 1024 * 1024) break;
    if (block.back() == '!') break;  // the end marker
  }
  writer.write("done\n");
  co_await writer.drain();
  writer.close();
}

weave::Coro<void> drain_blocks_against_a_server_that_never_reads() {
  Gate gate;
  weave::Server server = co_await weave::start_server(
      [&gate](weave::StreamReader r, weave::StreamWriter w) {
        return slow_reader(std::move(r), std::move(w), &gate);
      },
      "127.0.0.1", 0, server_options());
  auto [reader, writer] =
      co_await weave::open_connection("127.0.0.1", port_of(server), client_options());
  const std::string chunk(64 * 1024, 'd');
  std::size_t sent = 0;
  std::size_t max_buffered = 0;
  bool blocked = false;
  while (sent < 64u * 1024 * 1024) {  // the kernel's buffers take a few MiB first
    writer.write(chunk);
    sent += chunk.size();
    max_buffered = std::max(max_buffered, writer.transport().get_write_buffer_size());
    auto draining = weave::create_task(writer.drain());
    co_await weave::sleep(1ms);
    if (!draining.done()) {
      blocked = true;
      gate.open.set();  // now the server reads: drain must finish
      co_await draining;
      break;
    }
    co_await draining;
  }
  EXPECT_TRUE(blocked) << "drain never blocked";
  EXPECT_LE(max_buffered, 512u * 1024 + chunk.size() + 1024)
      << "the buffer grew past the high mark";
  writer.write("!");
  sent += 1;
  EXPECT_EQ(co_await reader.readline(), "done\n");
  EXPECT_EQ(gate.received, sent);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, DrainBlocksAgainstAServerThatNeverReads) {
  run_bounded(drain_blocks_against_a_server_that_never_reads(), 60s);
}

// ---- mutual TLS and ALPN ------------------------------------------------------------------------

weave::Coro<void> report_client_cert(weave::StreamReader reader, weave::StreamWriter writer) {
  auto cert = writer.get_extra_info("peercert");
  std::string subject =
      cert.has_value() ? std::any_cast<weave::PeerCertificate>(cert).subject : "none";
  co_await reader.readline();
  writer.write(subject + "\n");
  co_await writer.drain();
  writer.close();
}

weave::Coro<void> mutual_tls() {
  weave::StreamOptions sopts = server_options();
  sopts.ssl->load_verify_locations(certs().ca_file());
  sopts.ssl->set_verify(true);  // require a client certificate
  weave::Server server = co_await weave::start_server(report_client_cert, "127.0.0.1", 0, sopts);
  {
    weave::StreamOptions copts = client_options();
    copts.ssl->load_cert_chain(certs().client_cert_file(), certs().client_key_file());
    auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server), copts);
    writer.write("who am I?\n");
    std::string subject = co_await reader.readline();
    EXPECT_NE(subject.find("CN=weave client"), std::string::npos) << subject;
    writer.close();
    co_await writer.wait_closed();
  }
  {
    // Without a certificate: TLS 1.3 finishes the client's handshake first; the server's alert
    // then fails the first read.
    auto [reader, writer] =
        co_await weave::open_connection("127.0.0.1", port_of(server), client_options());
    writer.write("who am I?\n");
    EXPECT_THROW(co_await reader.readline(), weave::SSLError);
    writer.close();
  }
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, MutualTlsRequiresAClientCertificate) {
  run_bounded(mutual_tls());
}

weave::Coro<void> alpn() {
  weave::StreamOptions sopts = server_options();
  sopts.ssl->set_alpn_protocols({"h2", "http/1.1"});
  weave::Server server = co_await weave::start_server(echo_lines, "127.0.0.1", 0, sopts);
  weave::StreamOptions copts = client_options();
  copts.ssl->set_alpn_protocols({"http/1.1", "spdy/1"});
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port_of(server), copts);
  auto ssl = std::any_cast<weave::SSLObject>(writer.get_extra_info("ssl_object"));
  EXPECT_EQ(ssl.selected_alpn_protocol(), std::optional<std::string>("http/1.1"));
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, AlpnPicksTheServersPreferenceAmongTheClients) {
  run_bounded(alpn());
}

// ---- interop with the openssl command line ------------------------------------------------------

weave::Coro<void> weave_client_against_s_server() {
  OpensslProcess s_server({"s_server", "-accept", "127.0.0.1:0", "-cert", certs().cert_file(),
                           "-key", certs().key_file(), "-naccept", "1", "-rev"});
  const std::string line = co_await s_server.read_line("ACCEPT");  // "ACCEPT 127.0.0.1:<port>"
  if (line.empty()) {
    ADD_FAILURE() << "s_server did not start";
    co_return;
  }
  const auto port = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  weave::StreamOptions opts = client_options();
  opts.server_hostname = "localhost";
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port, opts);
  writer.write("hello from weave\n");
  EXPECT_EQ(co_await reader.readline(), "evaew morf olleh\n");  // -rev reverses each line
  writer.close();
  co_await writer.wait_closed();
  const int status = co_await s_server.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "s_server status " << status;
}

TEST_F(TLS, InteropWeaveClientWithOpensslSServer) {
  if (!have_openssl_binary()) GTEST_SKIP() << "the openssl command line is not installed";
  run_bounded(weave_client_against_s_server(), 20s);
}

weave::Coro<void> answer_once(weave::StreamReader reader, weave::StreamWriter writer) {
  std::string line = co_await reader.readline();
  writer.write("echo: " + line);
  co_await writer.drain();
  writer.close();  // close_notify ends s_client
  co_await writer.wait_closed();
}

weave::Coro<void> s_client_against_weave_server() {
  weave::Server server =
      co_await weave::start_server(answer_once, "127.0.0.1", 0, server_options());
  OpensslProcess s_client({"s_client", "-connect", "127.0.0.1:" + std::to_string(port_of(server)),
                           "-CAfile", certs().ca_file(), "-servername", "localhost",
                           "-verify_return_error", "-verify_hostname", "localhost", "-quiet"});
  s_client.write_stdin("ping over openssl\n");
  std::string out = co_await s_client.read_until("\n");
  EXPECT_EQ(out, "echo: ping over openssl\n");
  const int status = co_await s_client.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "s_client status " << status;
  server.close();
  co_await server.wait_closed();
}

TEST_F(TLS, InteropOpensslSClientWithWeaveServer) {
  if (!have_openssl_binary()) GTEST_SKIP() << "the openssl command line is not installed";
  run_bounded(s_client_against_weave_server(), 20s);
}

}  // namespace
