#pragma once
/// \file tls.hpp
/// TLS, as Python's ssl module offers it to asyncio: an `SSLContext` holds the settings
/// (certificates, verification, ALPN) and is given to create_connection / create_server /
/// open_connection / start_server (`opts.ssl`) or to start_tls. The TLS layer itself is a
/// protocol stacked between the socket transport and yours (asyncio's sslproto), so it runs the
/// same on every backend. OpenSSL does the cryptography; its headers stay out of this one.
///
///   auto ctx = weave::SSLContext::client();          // verify the peer and its host name
///   weave::StreamOptions opts;
///   opts.ssl = ctx;
///   auto [reader, writer] = co_await weave::open_connection("example.org", 443, opts);
///
/// Errors: SSLError (a std::system_error, as Python's is an OSError) for TLS failures;
/// SSLCertVerificationError, derived from it, when the peer's certificate or host name does not
/// verify.

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace weave {

/// The error category of OpenSSL's packed error codes (messages from ERR_error_string_n).
const std::error_category& ssl_category() noexcept;

/// ssl.SSLError: the TLS layer failed (a bad record, a failed handshake, a bad key file).
class SSLError : public std::system_error {
 public:
  /// `code` is OpenSSL's packed error code (ERR_get_error), `reason` its reason string.
  SSLError(int code, const std::string& what, std::string reason = {})
      : std::system_error(code, ssl_category(), what), reason_(std::move(reason)) {}
  /// OpenSSL's reason, e.g. "certificate verify failed"; empty when there was none.
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

/// ssl.SSLCertVerificationError: the peer's certificate did not verify (untrusted, expired,
/// or issued for another host name).
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(int code, const std::string& what, long x509_code,
                           std::string x509_message)
      : SSLError(code, what, "certificate verify failed"),
        verify_code(x509_code),
        verify_message(std::move(x509_message)) {}
  long verify_code;            ///< OpenSSL's X509_V_ERR_* value
  std::string verify_message;  ///< e.g. "self-signed certificate", "hostname mismatch"
};

/// The peer's certificate, as get_extra_info("peercert") and SSLObject::getpeercert() give it.
struct PeerCertificate {
  std::string subject;                         ///< RFC 2253, e.g. "CN=localhost,O=weave"
  std::string issuer;                          ///< RFC 2253
  std::vector<std::string> subject_alt_names;  ///< "DNS:localhost", "IP Address:127.0.0.1"
  std::string serial_number;                   ///< hexadecimal
  std::string not_before;                      ///< e.g. "Jan  1 00:00:00 2026 GMT"
  std::string not_after;
  std::string der;  ///< the certificate itself (Python's getpeercert(binary_form=True))
};

/// get_extra_info("cipher"): Python's SSLObject.cipher() triple.
struct CipherInfo {
  std::string name;     ///< e.g. "TLS_AES_256_GCM_SHA384"
  std::string version;  ///< e.g. "TLSv1.3"
  int secret_bits = 0;
};

namespace detail {
struct SSLHandle;
}

/// ssl.SSLObject: the TLS state of one connection, as get_extra_info("ssl_object") gives it.
/// A handle; it stays valid (and answers from the finished session) after the connection ends.
class SSLObject {
 public:
  explicit SSLObject(std::shared_ptr<detail::SSLHandle> handle) noexcept
      : handle_(std::move(handle)) {}
  bool server_side() const noexcept;
  /// The name sent in SNI and checked against the certificate; empty on the server side.
  const std::string& server_hostname() const noexcept;
  /// "TLSv1.2", "TLSv1.3"; empty before the handshake.
  std::string version() const;
  std::optional<CipherInfo> cipher() const;
  /// The protocol both ends chose by ALPN, if any.
  std::optional<std::string> selected_alpn_protocol() const;
  /// The peer's certificate, if it sent one (with verification off too).
  std::optional<PeerCertificate> getpeercert() const;
  /// OpenSSL's SSL, for what this class does not offer. Owned by the connection.
  ssl_st* native_handle() const noexcept;

 private:
  std::shared_ptr<detail::SSLHandle> handle_;
};

/// ssl.SSLContext: the settings shared by many connections. A cheap handle: copies share one
/// OpenSSL context, as Python's references to one SSLContext do. Change it before use; changing
/// it while connections use it affects the connections made afterwards only.
class SSLContext {
 public:
  /// ssl.create_default_context(): TLS 1.2 or later, the peer's certificate verified against
  /// the system's CA store, the host name checked. Errors: SSLError.
  static SSLContext client();
  /// ssl.create_default_context(Purpose.CLIENT_AUTH) with load_cert_chain(cert_file, key_file):
  /// TLS 1.2 or later, client certificates not asked for. Errors: std::system_error (ENOENT,
  /// EACCES) when a file cannot be read; SSLError when it holds no usable certificate or key,
  /// or the key does not match the certificate.
  static SSLContext server(const std::string& cert_file, const std::string& key_file);

  /// Trust the CA certificates in `cafile` (PEM) and/or the hashed directory `capath`.
  /// Errors: as server().
  void load_verify_locations(const std::string& cafile, const std::string& capath = {});
  /// Trust the system's CA store (client() does this already).
  void load_default_certs();
  /// The certificate chain (PEM, leaf first) and its private key (PEM; in `certfile` when
  /// `keyfile` is empty). Errors: as server().
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = {});

  /// Python's verify_mode, as a switch: on, a client requires a valid server certificate and a
  /// server requires a valid client certificate; off, neither is asked for or checked. Turning
  /// it off turns check_hostname off too (Python insists on this order).
  void set_verify(bool on);
  bool verify() const noexcept;
  /// Python's check_hostname: the server's certificate must name the host connected to (or
  /// `server_hostname`). Turning it on turns verification on.
  void set_check_hostname(bool on);
  bool check_hostname() const noexcept;
  /// ALPN protocols in order of preference, e.g. {"h2", "http/1.1"}. Errors: ValueError for
  /// an empty name or one longer than 255 bytes.
  void set_alpn_protocols(const std::vector<std::string>& protocols);
  /// OpenSSL's cipher list for TLS 1.2 (TLS 1.3 suites are not affected). Errors: SSLError when
  /// no cipher is left.
  void set_ciphers(const std::string& ciphers);
  bool is_server() const noexcept;

  ssl_ctx_st* native_handle() const noexcept;

  /// The OpenSSL context and weave's settings beside it; defined inside the library.
  struct State;
  explicit SSLContext(std::shared_ptr<State> state) noexcept : state_(std::move(state)) {}
  const std::shared_ptr<State>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace weave
