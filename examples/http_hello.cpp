// An HTTP server in aiohttp's shape: hello, an echo of the request body, and a path parameter.
//   http_hello [--port N] [--host H]      (port 0, the default, picks a free one)
//   curl http://127.0.0.1:N/  ;  curl -d hi http://127.0.0.1:N/echo  ;  curl .../users/42
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "weave/http.hpp"
#include "weave/weave.hpp"

namespace http = weave::http;

namespace {
weave::Coro<http::Response> hello(http::Request&) {
  co_return http::Response(200, "hello");
}

weave::Coro<http::Response> echo(http::Request& request) {
  std::string body = co_await request.read();
  co_return http::Response(200, std::move(body), "application/octet-stream");
}

weave::Coro<http::Response> user(http::Request& request) {
  co_return http::Response(200, "user " + std::string(request.match_info("id")) + "\n");
}

weave::Coro<void> serve(std::string host, std::uint16_t port) {
  http::Application app;
  app.router().add_get("/", hello);
  app.router().add_post("/echo", echo);
  app.router().add_get("/users/{id}", user);
  http::Server server = co_await http::start_server(app, host, port);
  std::printf("serving on http://%s:%u/\n", host.c_str(), server.port());
  std::fflush(stdout);
  co_await server.serve_forever();
}
}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned long port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    if (flag == "--port") port = std::strtoul(argv[i + 1], nullptr, 10);
    if (flag == "--host") host = argv[i + 1];
  }
  try {
    weave::run(serve(host, static_cast<std::uint16_t>(port)));
  } catch (const weave::KeyboardInterrupt&) {
  }
  return 0;
}
