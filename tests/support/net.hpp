#pragma once
// What the network suites (transports, streams, TLS) share: a protocol that records what it is
// told, a line echo handler for stream servers, and a server's port.

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weave/weave.hpp"

namespace weave_test {

/// Records every call, and echoes when asked to. connection_made records "made after
/// handshake" when the transport already has TLS details, "made" otherwise.
class Recorder : public weave::Protocol {
 public:
  explicit Recorder(bool echo = false, bool keep_open_on_eof = false)
      : echo_(echo), keep_open_(keep_open_on_eof) {}
  void connection_made(weave::Transport& t) override {
    transport = &t;
    events.push_back(t.get_extra_info("cipher").has_value() ? "made after handshake" : "made");
  }
  void data_received(std::string_view data) override {
    received.append(data);
    if (echo_) transport->write(data);
  }
  bool eof_received() override {
    events.push_back("eof");
    return keep_open_;
  }
  void connection_lost(std::exception_ptr exc) override {
    events.push_back(exc ? "lost with error" : "lost");
    error = exc;
    if (lost && !lost->done()) lost->set_result();
  }
  void pause_writing() override { events.push_back("pause"); }
  void resume_writing() override { events.push_back("resume"); }

  /// Waits until connection_lost ran.
  weave::Coro<void> wait_lost() {
    if (!events.empty() && events.back().rfind("lost", 0) == 0) co_return;
    lost = weave::get_running_loop().create_future<void>();
    co_await *lost;
  }

  weave::Transport* transport = nullptr;
  std::vector<std::string> events;
  std::string received;
  std::exception_ptr error;
  std::optional<weave::Future<void>> lost;

 private:
  bool echo_;
  bool keep_open_;
};

/// The port of a server's first listening socket.
inline std::uint16_t port_of(const weave::Server& server) {
  return server.sockets().at(0).getsockname().port();
}

/// A stream server's handler: echoes each line until EOF, then closes.
inline weave::Coro<void> echo_lines(weave::StreamReader reader, weave::StreamWriter writer) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

}  // namespace weave_test
