#include "net/resolve.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <utility>

#include "weave/errors.hpp"
#include "weave/loop.hpp"

namespace weave::detail {

namespace {
std::optional<SocketAddress> numeric(const std::string& host, std::uint16_t port) {
  try {
    return SocketAddress::ip(host, port);
  } catch (const ValueError&) {
    return std::nullopt;
  }
}
}  // namespace

Coro<std::vector<AddrInfo>> resolve(EventLoop& loop, std::string host, std::uint16_t port,
                                    ResolveHints hints) {
  if (std::optional<SocketAddress> address = numeric(host, port);
      address && (hints.family == 0 || hints.family == address->family())) {
    // The protocol getaddrinfo would report, so that both paths group alike by protocol.
    int protocol = hints.protocol;
    if (protocol == 0 && hints.type == SOCK_STREAM) protocol = IPPROTO_TCP;
    if (protocol == 0 && hints.type == SOCK_DGRAM) protocol = IPPROTO_UDP;
    co_return std::vector<AddrInfo>{
        AddrInfo{address->family(), hints.type, protocol, {}, *address}};
  }
  co_return co_await loop.getaddrinfo(std::move(host), port, hints.family, hints.type,
                                      hints.protocol, hints.flags);
}

}  // namespace weave::detail
