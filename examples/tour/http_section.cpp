// The tour's HTTP section: the web-server claim, measured. A handler that awaits a 50 ms call
// (a database, another service) serves 100 requests one after another in about 5 s, and the
// same 100 made at once in about 50 ms: while one request waits, the loop answers the others.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "sections.hpp"
#include "weave/http.hpp"

namespace tour {
namespace {
namespace http = weave::http;
using namespace std::chrono_literals;

weave::Coro<http::Response> slow_call(http::Request& request) {
  co_await weave::sleep(50ms);  // the 50 ms call the handler waits on
  co_return http::Response(200, "answer " + std::string(request.match_info("id")));
}

weave::Coro<bool> fetch(http::ClientSession& session, std::string url) {
  http::ClientResponse response = co_await session.get(std::move(url));
  std::string text = co_await response.text();
  co_return response.status() == 200 && text.starts_with("answer ");
}
}  // namespace

weave::Coro<void> http_section() {
  std::puts("\n== an HTTP server whose handler awaits a 50 ms call, 100 requests");
  http::Application app;
  app.router().add_get("/items/{id}", slow_call);
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port()) + "/items/";
  http::ClientSession session;
  constexpr int kRequests = 100;

  auto t0 = weave::Clock::now();
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) ok += co_await fetch(session, base + std::to_string(i));
  std::printf("one after another: %4d ok in %7.1f ms\n", ok, since(t0));

  t0 = weave::Clock::now();
  std::vector<weave::Coro<bool>> all;
  all.reserve(kRequests);
  for (int i = 0; i < kRequests; ++i) all.push_back(fetch(session, base + std::to_string(i)));
  std::vector<bool> answers = co_await weave::gather(std::move(all));
  ok = 0;
  for (bool a : answers) ok += a;
  std::printf("all at once:       %4d ok in %7.1f ms\n", ok, since(t0));

  co_await session.close();
  server.close();
  co_await server.wait_closed();
}
}  // namespace tour
