#pragma once
// What the TLS pieces share inside src/net: the state behind an SSLContext handle, the owner of
// one connection's SSL object, and the conversion of OpenSSL's error queue into an SSLError.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "weave/tls.hpp"

namespace weave {

struct SSLContext::State {
  explicit State(SSL_CTX* c, bool server_side) noexcept : ctx(c), server(server_side) {}
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() { SSL_CTX_free(ctx); }

  SSL_CTX* ctx;
  bool server;                      ///< made by SSLContext::server()
  bool check_hostname;              ///< set by the factories
  std::vector<unsigned char> alpn;  ///< the server's preference, in ALPN wire format
};

namespace detail {

/// Owns one connection's SSL (and through it the two memory BIOs); shared by the transport and
/// the SSLObject handles get_extra_info gives out.
struct SSLHandle {
  SSLHandle(SSL* s, bool server, std::string hostname) noexcept
      : ssl(s), server_side(server), server_hostname(std::move(hostname)) {}
  SSLHandle(const SSLHandle&) = delete;
  SSLHandle& operator=(const SSLHandle&) = delete;
  ~SSLHandle() { SSL_free(ssl); }

  SSL* ssl;
  bool server_side;
  std::string server_hostname;
};

/// An SSLError (or SSLCertVerificationError) from OpenSSL's error queue, which it empties.
/// `ssl` may be null; `ssl_error` is SSL_get_error's answer (0 when there was no SSL call).
std::exception_ptr ssl_error(SSL* ssl, int ssl_error, const char* what);
/// Throws ssl_error(nullptr, 0, what).
[[noreturn]] void throw_ssl_error(const char* what);

}  // namespace detail
}  // namespace weave
