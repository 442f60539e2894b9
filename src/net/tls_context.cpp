// SSLContext, SSLObject and the SSL errors: thin wrappers over OpenSSL's SSL_CTX and SSL with
// Python's ssl defaults (create_default_context): TLS 1.2 at least, no compression, and on the
// client side peer verification with host-name checking against the system's CA store.

#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/tls_detail.hpp"
#include "weave/errors.hpp"

namespace weave {

namespace {

class SSLCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ssl"; }
  std::string message(int code) const override {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(code), buf, sizeof buf);
    return buf;
  }
};

std::string x509_name(X509_NAME* name) {
  if (name == nullptr) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return out;
}

std::string asn1_time(const ASN1_TIME* t) {
  BIO* bio = BIO_new(BIO_s_mem());
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return out;
}

std::vector<std::string> alt_names(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    BIO* bio = BIO_new(BIO_s_mem());
    GENERAL_NAME_print(bio, name);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    out.emplace_back(data, static_cast<std::size_t>(len));
    BIO_free(bio);
  }
  GENERAL_NAMES_free(names);
  return out;
}

PeerCertificate describe(X509* cert) {
  PeerCertificate pc;
  pc.subject = x509_name(X509_get_subject_name(cert));
  pc.issuer = x509_name(X509_get_issuer_name(cert));
  pc.subject_alt_names = alt_names(cert);
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      pc.serial_number = hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  pc.not_before = asn1_time(X509_get0_notBefore(cert));
  pc.not_after = asn1_time(X509_get0_notAfter(cert));
  const int len = i2d_X509(cert, nullptr);
  if (len > 0) {
    pc.der.resize(static_cast<std::size_t>(len));
    auto* p = reinterpret_cast<unsigned char*>(pc.der.data());
    i2d_X509(cert, &p);
  }
  return pc;
}

/// Python raises FileNotFoundError before OpenSSL's less helpful message: so do we.
void check_readable(const std::string& path) {
  if (!path.empty() && ::access(path.c_str(), R_OK) != 0) throw os_error(errno, path.c_str());
}

SSL_CTX* new_ctx(const SSL_METHOD* method) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) detail::throw_ssl_error("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // A retried SSL_write may see its buffer moved (it is a std::string backlog). Writes are not
  // partial: a memory BIO takes a whole write at once.
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  auto* state = static_cast<SSLContext::State*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, state->alpn.data(),
                            static_cast<unsigned>(state->alpn.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: go on without ALPN
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

const std::error_category& ssl_category() noexcept {
  static const SSLCategory category;
  return category;
}

namespace detail {

std::exception_ptr ssl_error(SSL* ssl, int ssl_err, const char* what) {
  const unsigned long err = ERR_peek_last_error();
  ERR_clear_error();
  const int code = static_cast<int>(err & 0x7fffffffUL);
  const char* reason_c = ERR_reason_error_string(err);
  std::string reason = reason_c != nullptr ? reason_c : "";
  std::string message = std::string(what) + ": ";
  message += reason.empty() ? "unknown SSL error " + std::to_string(ssl_err) : reason;
  if (ssl != nullptr && ERR_GET_LIB(err) == ERR_LIB_SSL &&
      ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    const long verify = SSL_get_verify_result(ssl);
    std::string verify_message = X509_verify_cert_error_string(verify);
    message += ": " + verify_message;
    return std::make_exception_ptr(
        SSLCertVerificationError(code, message, verify, std::move(verify_message)));
  }
  return std::make_exception_ptr(SSLError(code, message, std::move(reason)));
}

void throw_ssl_error(const char* what) {
  std::rethrow_exception(ssl_error(nullptr, 0, what));
}

}  // namespace detail

// ---- SSLContext ---------------------------------------------------------------------------------

SSLContext SSLContext::client() {
  auto state = std::make_shared<State>(new_ctx(TLS_client_method()), false);
  SSL_CTX_set_verify(state->ctx, SSL_VERIFY_PEER, nullptr);
  state->check_hostname = true;
  SSLContext context(std::move(state));
  context.load_default_certs();
  return context;
}

SSLContext SSLContext::server(const std::string& cert_file, const std::string& key_file) {
  auto state = std::make_shared<State>(new_ctx(TLS_server_method()), true);
  SSL_CTX_set_verify(state->ctx, SSL_VERIFY_NONE, nullptr);
  state->check_hostname = false;
  SSLContext context(std::move(state));
  context.load_cert_chain(cert_file, key_file);
  return context;
}

void SSLContext::load_verify_locations(const std::string& cafile, const std::string& capath) {
  if (cafile.empty() && capath.empty()) throw ValueError("cafile and capath cannot be both empty");
  check_readable(cafile);
  check_readable(capath);
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(state_->ctx, cafile.empty() ? nullptr : cafile.c_str(),
                                    capath.empty() ? nullptr : capath.c_str()) != 1) {
    detail::throw_ssl_error("load_verify_locations");
  }
}

void SSLContext::load_default_certs() {
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(state_->ctx) != 1) {
    detail::throw_ssl_error("load_default_certs");
  }
}

void SSLContext::load_cert_chain(const std::string& certfile, const std::string& keyfile) {
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  check_readable(certfile);
  check_readable(key);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(state_->ctx, certfile.c_str()) != 1) {
    detail::throw_ssl_error("load_cert_chain: certificate");
  }
  if (SSL_CTX_use_PrivateKey_file(state_->ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    detail::throw_ssl_error("load_cert_chain: private key");
  }
  if (SSL_CTX_check_private_key(state_->ctx) != 1) {
    detail::throw_ssl_error("load_cert_chain: the key does not match the certificate");
  }
}

void SSLContext::set_verify(bool on) {
  int mode = SSL_VERIFY_NONE;
  if (on)
    mode = state_->server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER;
  SSL_CTX_set_verify(state_->ctx, mode, nullptr);
  if (!on) state_->check_hostname = false;
}

bool SSLContext::verify() const noexcept {
  return (SSL_CTX_get_verify_mode(state_->ctx) & SSL_VERIFY_PEER) != 0;
}

void SSLContext::set_check_hostname(bool on) {
  if (on && !verify()) set_verify(true);
  state_->check_hostname = on;
}

bool SSLContext::check_hostname() const noexcept {
  return state_->check_hostname;
}

void SSLContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::vector<unsigned char> wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) throw ValueError("ALPN protocols must be 1 to 255 bytes");
    wire.push_back(static_cast<unsigned char>(p.size()));
    wire.insert(wire.end(), p.begin(), p.end());
  }
  state_->alpn = wire;
  if (state_->server) {
    SSL_CTX_set_alpn_select_cb(state_->ctx, select_alpn, state_.get());
  } else if (SSL_CTX_set_alpn_protos(state_->ctx, wire.data(),
                                     static_cast<unsigned>(wire.size())) != 0) {
    detail::throw_ssl_error("set_alpn_protocols");
  }
}

void SSLContext::set_ciphers(const std::string& ciphers) {
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(state_->ctx, ciphers.c_str()) != 1) {
    detail::throw_ssl_error("set_ciphers");
  }
}

bool SSLContext::is_server() const noexcept {
  return state_->server;
}

ssl_ctx_st* SSLContext::native_handle() const noexcept {
  return state_->ctx;
}

// ---- SSLObject ----------------------------------------------------------------------------------

bool SSLObject::server_side() const noexcept {
  return handle_->server_side;
}

const std::string& SSLObject::server_hostname() const noexcept {
  return handle_->server_hostname;
}

std::string SSLObject::version() const {
  if (SSL_is_init_finished(handle_->ssl) == 0) return {};
  return SSL_get_version(handle_->ssl);
}

std::optional<CipherInfo> SSLObject::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(handle_->ssl);
  if (c == nullptr) return std::nullopt;
  return CipherInfo{SSL_CIPHER_get_name(c), SSL_CIPHER_get_version(c),
                    SSL_CIPHER_get_bits(c, nullptr)};
}

std::optional<std::string> SSLObject::selected_alpn_protocol() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(handle_->ssl, &data, &len);
  if (data == nullptr || len == 0) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::optional<PeerCertificate> SSLObject::getpeercert() const {
  X509* cert = SSL_get1_peer_certificate(handle_->ssl);
  if (cert == nullptr) return std::nullopt;
  PeerCertificate pc = describe(cert);
  X509_free(cert);
  return pc;
}

ssl_st* SSLObject::native_handle() const noexcept {
  return handle_->ssl;
}

}  // namespace weave
