// Name resolution, as asyncio does it: the blocking ::getaddrinfo runs in the default executor.

#include <netdb.h>

#include <memory>

#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/weave.hpp"

namespace weave {

namespace {

class GaiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

struct Hints {
  std::string host;
  std::uint16_t port;
  int family, type, protocol, flags;
};

std::vector<AddrInfo> resolve_blocking(const Hints& h) {
  addrinfo hints{};
  hints.ai_family = h.family;
  hints.ai_socktype = h.type;
  hints.ai_protocol = h.protocol;
  hints.ai_flags = h.flags;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(h.port);
  const int rc =
      ::getaddrinfo(h.host.empty() ? nullptr : h.host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    if (rc == EAI_SYSTEM) throw os_error(errno, "getaddrinfo");
    throw std::system_error(rc, gai_category(), "getaddrinfo " + h.host);
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, ::freeaddrinfo);
  std::vector<AddrInfo> out;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    out.push_back(AddrInfo{ai->ai_family, ai->ai_socktype, ai->ai_protocol,
                           ai->ai_canonname != nullptr ? ai->ai_canonname : "",
                           SocketAddress(ai->ai_addr, ai->ai_addrlen)});
  }
  return out;
}

}  // namespace

const std::error_category& gai_category() noexcept {
  static const GaiCategory category;
  return category;
}

Coro<std::vector<AddrInfo>> EventLoop::getaddrinfo(std::string host, std::uint16_t port, int family,
                                                   int type, int protocol, int flags) {
  Hints hints{std::move(host), port, family, type, protocol, flags};
  co_return co_await to_thread(resolve_blocking, std::move(hints));
}

namespace {

struct NameQuery {
  SocketAddress address;
  int flags;
};

std::pair<std::string, std::string> name_blocking(const NameQuery& q) {
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  const int rc = ::getnameinfo(q.address.data(), q.address.size(), host, sizeof host, service,
                               sizeof service, q.flags);
  if (rc != 0) {
    if (rc == EAI_SYSTEM) throw os_error(errno, "getnameinfo");
    throw std::system_error(rc, gai_category(), "getnameinfo " + q.address.to_string());
  }
  return {host, service};
}

}  // namespace

Coro<std::pair<std::string, std::string>> EventLoop::getnameinfo(SocketAddress address, int flags) {
  NameQuery query{address, flags};
  co_return co_await to_thread(name_blocking, std::move(query));
}

}  // namespace weave
