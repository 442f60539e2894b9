#pragma once
// The connecting half of create_connection: the resolved addresses tried one after the other, or
// raced as RFC 8305's Happy Eyeballs (asyncio's staggered_race over _connect_sock), and the errors
// of every attempt reported as asyncio reports them.

#include <cstddef>
#include <optional>
#include <vector>

#include "weave/clock.hpp"
#include "weave/coro.hpp"
#include "weave/sockets.hpp"

namespace weave {
class EventLoop;
}

namespace weave::detail {

/// asyncio's _interleave_addrinfos: the addresses grouped by family in the order the families
/// first appear, then taken one of each family in turn, after the first
/// `first_family_count - 1` of the first family.
std::vector<SocketAddress> interleave_addresses(const std::vector<SocketAddress>& addresses,
                                                int first_family_count);

struct ConnectPlan {
  std::optional<SocketAddress> local_addr;
  /// Happy Eyeballs when set: the next attempt starts after this delay, or at once when the
  /// attempt before fails; the first connected wins and the others are cancelled.
  std::optional<Clock::duration> delay;
  /// Every attempt's error as an ExceptionGroup, instead of one std::system_error.
  bool all_errors = false;
};

/// A stream socket connected to one of `addresses`. Errors: when every attempt fails, the only
/// error, or the first when all read the same, else a std::system_error (the first's code)
/// naming them all; an ExceptionGroup "create_connection failed" of them all with
/// plan.all_errors; std::system_error(EHOSTUNREACH) when `addresses` is empty. Cancellation:
/// every attempt is cancelled and its socket closed.
Coro<Socket> connect_any(EventLoop& loop, std::vector<SocketAddress> addresses, ConnectPlan plan);

}  // namespace weave::detail
