#pragma once
// What the HTTP client's suites share: the fixture, the peers' counters, and the bytes the
// allocator holds (to check that bodies stream in bounded memory).

#include <cstddef>
#include <map>
#include <sstream>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
// ASan's allocator statistics (its sanitizer/allocator_interface.h is not installed with g++).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

#include "support/fds.hpp"
#include "support/http_peers.hpp"
#include "weave/http.hpp"
#include "weave/weave.hpp"

namespace weave_test {

class HttpClient : public FdLeakCheck {};

/// "key=value" pairs of the Python peer's /stats (or anything in that shape).
inline std::map<std::string, long> parse_stats(const std::string& text) {
  std::map<std::string, long> out;
  std::istringstream in(text);
  std::string item;
  while (in >> item) {
    const std::size_t eq = item.find('=');
    if (eq != std::string::npos) out[item.substr(0, eq)] = std::stol(item.substr(eq + 1));
  }
  return out;
}

/// The Python peer's counters, fetched on a session of their own.
inline weave::Coro<std::map<std::string, long>> peer_stats(const PythonPeer& peer) {
  weave::http::ClientSession s;
  weave::http::ClientResponse r = co_await s.get(peer.url("/stats"));
  std::string text = co_await r.text();
  co_await s.close();
  co_return parse_stats(text);
}

/// nginx's stub_status "accepts" (connections accepted so far).
inline weave::Coro<long> nginx_accepts(const NginxPeer& nginx) {
  weave::http::ClientSession s;
  weave::http::ClientResponse r = co_await s.get(nginx.url("/status"));
  std::string text = co_await r.text();
  co_await s.close();
  // "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \n..."
  std::istringstream in(text.substr(text.find("requests") + 8));
  long accepts = 0;
  in >> accepts;
  co_return accepts;
}

inline std::size_t allocated_bytes() {
#if defined(__SANITIZE_ADDRESS__)
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#endif
}

}  // namespace weave_test
