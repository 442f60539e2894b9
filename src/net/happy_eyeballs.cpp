// Happy Eyeballs (RFC 8305) as asyncio's staggered_race runs it: attempt i + 1 starts when
// attempt i fails or after the delay, whichever comes first; the first attempt that connects
// cancels the others. A TaskGroup holds the attempts, so that leaving for any reason (a winner,
// every attempt failed, the caller cancelled) waits until each has ended and closed its socket.

#include "net/happy_eyeballs.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "weave/errors.hpp"
#include "weave/locks.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/taskgroup.hpp"
#include "weave/timeouts.hpp"

namespace weave::detail {

std::vector<SocketAddress> interleave_addresses(const std::vector<SocketAddress>& addresses,
                                                int first_family_count) {
  std::vector<int> families;  // in order of first appearance
  std::map<int, std::vector<SocketAddress>> by_family;
  for (const SocketAddress& a : addresses) {
    auto [it, inserted] = by_family.try_emplace(a.family());
    if (inserted) families.push_back(a.family());
    it->second.push_back(a);
  }
  std::vector<SocketAddress> out;
  out.reserve(addresses.size());
  std::vector<std::size_t> next(families.size(), 0);
  if (!families.empty() && first_family_count > 1) {
    const std::vector<SocketAddress>& first = by_family[families[0]];
    const std::size_t lead =
        std::min(first.size(), static_cast<std::size_t>(first_family_count - 1));
    out.insert(out.end(), first.begin(), first.begin() + static_cast<std::ptrdiff_t>(lead));
    next[0] = lead;
  }
  while (out.size() < addresses.size()) {
    for (std::size_t f = 0; f < families.size(); ++f) {
      const std::vector<SocketAddress>& list = by_family[families[f]];
      if (next[f] < list.size()) out.push_back(list[next[f]++]);
    }
  }
  return out;
}

namespace {

/// asyncio's _connect_sock: a socket of the address's family, bound to `local` if given, then
/// connected. The socket is closed on any failure, cancellation included.
Coro<Socket> connect_one(EventLoop& loop, SocketAddress address,
                         std::optional<SocketAddress> local) {
  Socket sock(address.family(), SOCK_STREAM);
  if (local) {
    try {
      sock.bind(*local);
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(),
                              "error while attempting to bind on address " + local->to_string());
    }
  }
  co_await loop.sock_connect(sock.fd(), address);
  co_return sock;
}

Coro<void> wait_event(Event& event) {
  co_await event.wait(CallSite::none());  // create_connection takes no caller line to pass on
}

/// The attempts of one race; lives in connect_any's frame, which outlives every attempt.
struct Race {
  Race(EventLoop& l, std::vector<SocketAddress> a, const ConnectPlan& p)
      : loop(l), addresses(std::move(a)), plan(p), errors(addresses.size()) {
    for (std::size_t i = 0; i < addresses.size(); ++i) {
      ended.push_back(std::make_unique<Event>());
    }
    tasks.resize(addresses.size());
  }

  Coro<void> attempt(std::size_t i) {
    try {
      Socket sock = co_await connect_one(loop, addresses[i], plan.local_addr);
      if (!winner) {
        winner = std::move(sock);
        for (std::size_t j = 0; j < tasks.size(); ++j) {
          if (j != i && tasks[j] && !tasks[j]->done()) tasks[j]->cancel();
          ended[j]->set();  // the starter need not wait any longer
        }
      }
      // Else another attempt won in the same iteration: `sock` closes here.
    } catch (const std::system_error&) {
      errors[i] = std::current_exception();
    }
    ended[i]->set();  // failed: the next attempt starts at once
  }

  /// staggered_race's chain of run_one_coro, run by the group's body.
  Coro<void> start_attempts(TaskGroup& group) {
    for (std::size_t i = 0; i < addresses.size() && !winner; ++i) {
      tasks[i] = group.create_task(attempt(i));
      if (i + 1 == addresses.size()) break;
      try {
        co_await timeout(*plan.delay, wait_event(*ended[i]));
      } catch (const TimeoutError&) {
        // the delay passed: start the next attempt while this one goes on
      }
    }
  }

  EventLoop& loop;
  std::vector<SocketAddress> addresses;
  ConnectPlan plan;
  std::vector<std::exception_ptr> errors;  ///< one slot per address, null unless it failed
  std::vector<std::unique_ptr<Event>> ended;
  std::vector<std::optional<Task<void>>> tasks;
  std::optional<Socket> winner;
};

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

/// asyncio's report when no attempt connected.
[[noreturn]] void raise_failure(std::vector<std::exception_ptr> errors, bool all_errors) {
  if (errors.empty()) throw os_error(EHOSTUNREACH, "create_connection: no address to connect to");
  if (all_errors) throw ExceptionGroup("create_connection failed", std::move(errors));
  if (errors.size() == 1) std::rethrow_exception(errors.front());
  const std::string model = message_of(errors.front());
  std::string all;
  bool same = true;
  for (const std::exception_ptr& e : errors) {
    const std::string m = message_of(e);
    same = same && m == model;
    all += (all.empty() ? "" : ", ") + m;
  }
  if (same) std::rethrow_exception(errors.front());
  std::error_code code;
  try {
    std::rethrow_exception(errors.front());
  } catch (const std::system_error& e) {
    code = e.code();
  }
  throw std::system_error(code, "Multiple exceptions: " + all);
}

}  // namespace

Coro<Socket> connect_any(EventLoop& loop, std::vector<SocketAddress> addresses, ConnectPlan plan) {
  std::vector<std::exception_ptr> errors;
  if (!plan.delay || addresses.size() < 2) {
    for (const SocketAddress& address : addresses) {
      try {
        co_return co_await connect_one(loop, address, plan.local_addr);
      } catch (const std::system_error&) {
        errors.push_back(std::current_exception());  // try the next address, as asyncio does
      }
    }
    raise_failure(std::move(errors), plan.all_errors);
  }
  Race race(loop, std::move(addresses), plan);
  auto body = [&race](TaskGroup& group) { return race.start_attempts(group); };
  co_await task_group(body);
  if (race.winner) co_return std::move(*race.winner);
  for (std::exception_ptr& e : race.errors) {
    if (e) errors.push_back(std::move(e));
  }
  raise_failure(std::move(errors), plan.all_errors);
}

}  // namespace weave::detail
