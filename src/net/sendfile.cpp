// loop.sendfile, as asyncio's: a plain socket transport sends the file with sendfile(2) through
// SocketTransport::sendfile (asyncio's _sendfile_native); any other transport (TLS), or a file
// sendfile(2) refuses, goes through the read/write fallback (asyncio's _sendfile_fallback): the
// file read in blocks by the default executor and written to the transport, paced by its
// pause_writing / resume_writing, with a stand-in protocol while it runs.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

#include "net/socket_transport.hpp"
#include "net/ssl_transport.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"

namespace weave {

namespace {

constexpr std::size_t kFallbackBlock = std::size_t{256} * 1024;  // asyncio's read buffer size

/// What loop.sendfile knows of a transport (asyncio's _sendfile_compatible): whether its
/// protocol is paused for writing (asyncio's _protocol_paused), and the shared_ptr that owns
/// that protocol; null for a transport of another kind, which sendfile does not support.
struct Known {
  bool paused = false;
  std::shared_ptr<Protocol> protocol;
};
Known known(Transport& t) {
  if (auto* s = dynamic_cast<detail::SocketTransport*>(&t)) {
    return {s->protocol_paused(), s->protocol_ptr()};
  }
  if (auto* s = dynamic_cast<detail::SSLTransport*>(&t))
    return {s->protocol_paused(), s->protocol_ptr()};
  return {};
}

/// asyncio's _SendfileFallbackProtocol: stands in for the transport's protocol while the
/// fallback writes, so that the pacing and the end of the connection reach sendfile. The
/// original gets back, on restore(), a pause or resume it missed meanwhile.
class FallbackProtocol final : public Protocol {
 public:
  FallbackProtocol(EventLoop& loop, Transport& transport)
      : loop_(loop),
        transport_(transport),
        original_(known(transport).protocol),
        resume_reading_(transport.is_reading()),
        was_paused_(known(transport).paused),
        paused_(was_paused_) {
    if (paused_) ready_ = loop_.create_future<void>();
  }

  /// Swaps this protocol in; reading pauses meanwhile.
  void install(const std::shared_ptr<FallbackProtocol>& self) {
    transport_.pause_reading();
    transport_.set_protocol(self);
  }

  /// Returns once the transport takes more. Errors: std::system_error(EPIPE) when closed.
  Coro<void> drain() {
    if (transport_.is_closing() || lost_) {
      throw os_error(EPIPE, "sendfile: the connection is closed");
    }
    if (!ready_) co_return;
    Future<void> ready = *ready_;
    co_await ready;
  }

  void restore() {
    transport_.set_protocol(original_);
    if (resume_reading_ && !transport_.is_closing()) transport_.resume_reading();
    if (ready_ && !ready_->done()) ready_->cancel();
    ready_.reset();
    if (lost_ || paused_ == was_paused_) return;
    if (paused_) {
      original_->pause_writing();
    } else {
      original_->resume_writing();
    }
  }

  void connection_made(Transport&) override {
    throw RuntimeError("Invalid state: connection should have been established already.");
  }
  void data_received(std::string_view) override {
    throw RuntimeError("Invalid state: reading should be paused");
  }
  bool eof_received() override { throw RuntimeError("Invalid state: reading should be paused"); }
  void connection_lost(std::exception_ptr exc) override {
    lost_ = true;
    if (ready_ && !ready_->done()) {
      ready_->set_exception(exc ? exc
                                : std::make_exception_ptr(os_error(
                                      EPIPE, "sendfile: the connection is closed by peer")));
    }
    ready_.reset();
    original_->connection_lost(std::move(exc));
  }
  void pause_writing() override {
    paused_ = true;
    if (!ready_) ready_ = loop_.create_future<void>();
  }
  void resume_writing() override {
    paused_ = false;
    if (ready_ && !ready_->done()) ready_->set_result();
    ready_.reset();
  }

 private:
  EventLoop& loop_;
  Transport& transport_;
  std::shared_ptr<Protocol> original_;
  bool resume_reading_;
  bool was_paused_;
  bool paused_;
  bool lost_ = false;
  std::optional<Future<void>> ready_;
};

/// asyncio's _sendfile_fallback.
Coro<std::size_t> fallback(EventLoop& loop, Transport& transport, int file, std::uint64_t offset,
                           std::optional<std::size_t> count) {
  if (offset != 0 && ::lseek(file, static_cast<off_t>(offset), SEEK_SET) < 0) {
    throw os_error(errno, "lseek");
  }
  const std::size_t block = count ? std::min(*count, kFallbackBlock) : kFallbackBlock;
  // Shared with the executor's thread: a read still running when we are cancelled finishes
  // into a live buffer.
  auto buffer = std::make_shared<std::vector<char>>(std::max<std::size_t>(block, 1));
  auto protocol = std::make_shared<FallbackProtocol>(loop, transport);
  protocol->install(protocol);
  std::size_t total = 0;
  std::exception_ptr failure;
  try {
    for (;;) {
      const std::size_t want = count ? std::min(*count - total, block) : block;
      if (want == 0) break;
      // Named first: g++ 12 destroys a capturing closure inside a co_await twice.
      auto read_block = [buffer, file, want]() -> ssize_t {
        ssize_t r;
        do {
          r = ::read(file, buffer->data(), want);
        } while (r < 0 && errno == EINTR);
        if (r < 0) throw os_error(errno, "read");
        return r;
      };
      auto reading = loop.run_in_executor(nullptr, std::move(read_block));
      const ssize_t n = co_await reading;
      if (n == 0) break;
      co_await protocol->drain();
      transport.write(std::string_view(buffer->data(), static_cast<std::size_t>(n)));
      total += static_cast<std::size_t>(n);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (total > 0) (void)::lseek(file, static_cast<off_t>(offset + total), SEEK_SET);
  protocol->restore();
  if (failure) std::rethrow_exception(failure);
  co_return total;
}

}  // namespace

Coro<std::size_t> EventLoop::sendfile(Transport& transport, int file, std::uint64_t offset,
                                      std::optional<std::size_t> count, bool fallback_allowed) {
  if (transport.is_closing()) throw RuntimeError("Transport is closing");
  if (!known(transport).protocol)
    throw RuntimeError("sendfile is not supported for this transport");
  std::shared_ptr<Transport> keep = transport.shared_from_this();
  auto* plain = dynamic_cast<detail::SocketTransport*>(&transport);
  if (plain != nullptr && plain->is_socket()) {
    try {
      co_return co_await plain->sendfile(file, offset, count);
    } catch (const SendfileNotAvailableError&) {
      if (!fallback_allowed) throw;
      // nothing was sent: the fallback starts from `offset`
    }
  } else if (!fallback_allowed) {
    throw SendfileNotAvailableError(
        "fallback is disabled and native sendfile is not supported for this transport");
  }
  co_return co_await fallback(*this, transport, file, offset, count);
}

}  // namespace weave
