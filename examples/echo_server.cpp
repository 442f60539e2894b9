// An echo server on the streams API, asyncio's "TCP echo server using streams" example:
//   echo_server [--port N] [--backend epoll|uring] [--protocol]
// With --protocol it serves through the Protocol API instead (no task per connection, no
// stream buffer), the fastest path weave offers. It runs until SIGTERM or SIGINT.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "weave/weave.hpp"

namespace {

weave::Coro<void> handle_echo(weave::StreamReader reader, weave::StreamWriter writer) {
  char buffer[64 * 1024];
  try {
    for (;;) {
      const std::size_t n = co_await reader.read_into(std::span<char>(buffer, sizeof buffer));
      if (n == 0) break;
      writer.write(std::string_view(buffer, n));
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // A client that resets its connection (load generators do) is not the server's error.
  }
  writer.close();
}

class EchoProtocol final : public weave::Protocol {
 public:
  void connection_made(weave::Transport& transport) override { transport_ = &transport; }
  void data_received(std::string_view data) override { transport_->write(data); }

 private:
  weave::Transport* transport_ = nullptr;
};

weave::Coro<void> serve(std::uint16_t port, bool protocol) {
  weave::Server server;
  if (protocol) {
    server = co_await weave::get_running_loop().create_server(
        [] { return std::make_shared<EchoProtocol>(); }, "127.0.0.1", port);
  } else {
    server = co_await weave::start_server(handle_echo, "127.0.0.1", port);
  }
  std::printf("serving on %s (%s, %s API)\n",
              server.sockets().at(0).getsockname().to_string().c_str(),
              weave::get_running_loop().backend_name(), protocol ? "protocol" : "streams");
  std::fflush(stdout);
  co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 8888;
  bool protocol = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      setenv("WEAVE_BACKEND", argv[++i], 1);
    } else if (std::strcmp(argv[i], "--protocol") == 0) {
      protocol = true;
    } else {
      std::fprintf(stderr, "usage: %s [--port N] [--backend epoll|uring] [--protocol]\n", argv[0]);
      return 2;
    }
  }
  try {
    weave::run(serve(port, protocol));
  } catch (const weave::CancelledError&) {
  }
  return 0;
}
