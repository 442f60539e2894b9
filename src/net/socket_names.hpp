#pragma once
// get_extra_info's "peername" and "sockname" for the transports over a Socket. Each address is
// read on first request and kept, so that it still answers after the close (asyncio reads both
// when the transport is made; that would cost two syscalls per connection).

#include <optional>
#include <system_error>

#include "weave/sockets.hpp"
#include "weave/transports.hpp"

namespace weave::detail {

class SocketNames {
 public:
  ExtraInfo peername(const Socket& sock) const { return kept(peer_, sock, &Socket::getpeername); }
  ExtraInfo sockname(const Socket& sock) const { return kept(local_, sock, &Socket::getsockname); }

 private:
  static ExtraInfo kept(std::optional<SocketAddress>& slot, const Socket& sock,
                        SocketAddress (Socket::*read)() const) {
    if (!slot && sock.fd() >= 0) {
      try {
        slot = (sock.*read)();
      } catch (const std::system_error&) {
        return {};  // not connected any more
      }
    }
    return slot ? ExtraInfo(*slot) : ExtraInfo{};
  }

  mutable std::optional<SocketAddress> peer_;
  mutable std::optional<SocketAddress> local_;
};

}  // namespace weave::detail
