// asyncio's "TCP echo client using streams" example:
//   echo_client [--port N] [message]

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "weave/weave.hpp"

namespace {

weave::Coro<void> tcp_echo_client(std::string message, std::uint16_t port) {
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", port);
  std::printf("Send: %s\n", message.c_str());
  writer.write(message);
  co_await writer.drain();
  std::string data = co_await reader.read(100);
  std::printf("Received: %s\n", data.c_str());
  std::puts("Close the connection");
  writer.close();
  co_await writer.wait_closed();
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 8888;
  std::string message = "Hello World!";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else {
      message = argv[i];
    }
  }
  weave::run(tcp_echo_client(message, port));
  return 0;
}
