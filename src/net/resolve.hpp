#pragma once
// Name resolution shared by the endpoints that take a host (create_connection, create_server,
// create_datagram_endpoint): numeric hosts parse at once, as asyncio's _ipaddr_info does, so that
// only real names cost a trip through the loop's getaddrinfo.

#include <cstdint>
#include <string>
#include <vector>

#include "weave/coro.hpp"
#include "weave/sockets.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

/// What the socket will be; `family` 0 takes any.
struct ResolveHints {
  int family = 0;
  int type = 0;
  int protocol = 0;
  int flags = 0;
};

/// The addresses of `host`:`port`. A numeric host of the wrong family goes to getaddrinfo, which
/// then reports the mismatch. Errors: std::system_error in gai_category() (a DNS failure).
Coro<std::vector<AddrInfo>> resolve(EventLoop& loop, std::string host, std::uint16_t port,
                                    ResolveHints hints);

}  // namespace weave::detail
