#pragma once
// Test certificates made with the OpenSSL API at run time: a CA, a server certificate it signed
// (CN=localhost, SAN DNS:localhost and IP:127.0.0.1) and, for mutual TLS, a client certificate;
// all EC P-256 (fast to make, under ASan too). The PEM files go into a fresh temporary directory
// that the destructor removes.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace weave_test {

class TestCertificates {
 public:
  TestCertificates() {
    char templ[] = "/tmp/weave-tls-XXXXXX";
    if (::mkdtemp(templ) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = templ;
    EVP_PKEY* ca_key = EVP_EC_gen("P-256");
    X509* ca = make_cert(ca_key, ca_key, nullptr, "weave test CA", 1,
                         {{NID_basic_constraints, "critical,CA:TRUE"},
                          {NID_key_usage, "critical,keyCertSign,cRLSign"},
                          {NID_subject_key_identifier, "hash"}});
    EVP_PKEY* server_key = EVP_EC_gen("P-256");
    X509* server = make_cert(server_key, ca_key, ca, "localhost", 2,
                             {{NID_basic_constraints, "CA:FALSE"},
                              {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                              {NID_ext_key_usage, "serverAuth"}});
    EVP_PKEY* client_key = EVP_EC_gen("P-256");
    X509* client =
        make_cert(client_key, ca_key, ca, "weave client", 3,
                  {{NID_basic_constraints, "CA:FALSE"}, {NID_ext_key_usage, "clientAuth"}});
    write_cert(ca_file(), ca);
    write_cert(cert_file(), server);
    write_key(key_file(), server_key);
    write_cert(client_cert_file(), client);
    write_key(client_key_file(), client_key);
    for (X509* x : {ca, server, client}) X509_free(x);
    for (EVP_PKEY* k : {ca_key, server_key, client_key}) EVP_PKEY_free(k);
  }
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;
  ~TestCertificates() {
    for (const std::string& f :
         {ca_file(), cert_file(), key_file(), client_cert_file(), client_key_file()}) {
      ::unlink(f.c_str());
    }
    ::rmdir(dir_.c_str());
  }

  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string cert_file() const { return dir_ + "/server.pem"; }
  std::string key_file() const { return dir_ + "/server.key"; }
  std::string client_cert_file() const { return dir_ + "/client.pem"; }
  std::string client_key_file() const { return dir_ + "/client.key"; }

 private:
  struct Ext {
    int nid;
    const char* value;
  };

  static X509* make_cert(EVP_PKEY* key, EVP_PKEY* signer, X509* issuer, const char* cn, long serial,
                         const std::vector<Ext>& exts) {
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7L * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("weave"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
    for (const Ext& e : exts) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, e.nid, e.value);
      if (ext == nullptr) throw std::runtime_error(std::string("bad extension ") + e.value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    if (X509_sign(x, signer, EVP_sha256()) == 0) throw std::runtime_error("X509_sign failed");
    return x;
  }

  static void write_cert(const std::string& path, X509* x) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + path);
    PEM_write_X509(f, x);
    std::fclose(f);
  }

  static void write_key(const std::string& path, EVP_PKEY* k) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw std::runtime_error("cannot write " + path);
    PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }

  std::string dir_;
};

}  // namespace weave_test
