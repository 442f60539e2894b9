// weave::http's server, as aiohttp's behaves: routing (404, 405 with Allow, path parameters),
// requests (path, query, headers, bodies whole and streamed, 100-continue, client_max_size),
// responses (Response, StreamResponse chunked and sized, HEAD), keep-alive and pipelining in
// order, HTTP/1.0, handler errors, the timeouts, and graceful shutdown. Requests are sent as raw
// bytes. Bad input has its own suite (test_http_server_input.cpp), real clients another
// (test_http_server_peers.cpp). The fd count is unchanged by each test.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/bounded.hpp"
#include "support/fds.hpp"
#include "support/http.hpp"
#include "weave/http.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
namespace http = weave::http;
using weave::Coro;
using weave_test::exchange_until_close;
using weave_test::get;
using weave_test::parse_responses;
using weave_test::read_responses;
using weave_test::run_bounded;

namespace {

class HttpServer : public weave_test::FdLeakCheck {};

Coro<http::Response> hello(http::Request&) {
  co_return http::Response(200, "hello");
}

Coro<http::Response> echo(http::Request& req) {
  std::string body = co_await req.read();
  co_return http::Response(200, std::move(body), "application/octet-stream");
}

// Named before a co_await: g++ 12 destroys a braced temporary in one twice (see the README).
http::Application hello_app(http::ServerOptions options) {
  http::Application app(std::move(options));
  app.router().add_get("/", hello);
  app.router().add_post("/echo", echo);
  return app;
}

// ---- routing -----------------------------------------------------------------------------------

Coro<void> routes_and_parameters() {
  http::Application app;
  app.router().add_get("/", hello);
  app.router().add_get("/users/{id}", [](http::Request& r) -> Coro<http::Response> {
    co_return http::Response(200, "user " + std::string(r.match_info("id")));
  });
  app.router().add_get("/files/{rest:.*}", [](http::Request& r) -> Coro<http::Response> {
    co_return http::Response(200, "file " + std::string(r.match_info("rest")));
  });
  app.router().add_delete(
      "/users/{id}", [](http::Request&) -> Coro<http::Response> { co_return http::Response(204); });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  std::string all = co_await exchange_until_close(
      server.port(), get("/users/42") + get("/files/a/b.txt") + get("/nowhere") +
                         "PUT /users/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
                         "DELETE /users/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::vector<weave_test::RawResponse> r = parse_responses(all);
  EXPECT_EQ(r.size(), 5u);
  if (r.size() == 5) {
    EXPECT_EQ(r[0].status, 200);
    EXPECT_EQ(r[0].body, "user 42");
    EXPECT_EQ(r[1].body, "file a/b.txt");
    EXPECT_EQ(r[2].status, 404);
    EXPECT_EQ(r[2].reason, "Not Found");
    EXPECT_EQ(r[3].status, 405);
    EXPECT_EQ(r[3].header("allow").value_or(""), "GET, HEAD, DELETE");
    EXPECT_EQ(r[4].status, 204);
    EXPECT_FALSE(r[4].header("content-length").has_value());
  }
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, RoutesMatchPathsAndAnswer404And405WithAllow) {
  run_bounded(routes_and_parameters());
}

TEST_F(HttpServer, RouterRejectsMalformedPaths) {
  http::Router router;
  EXPECT_THROW(router.add_get("users", hello), weave::ValueError);
  EXPECT_THROW(router.add_get("/users/{", hello), weave::ValueError);
  EXPECT_THROW(router.add_get("/users/x{id}", hello), weave::ValueError);
  EXPECT_THROW(router.add_get("/{rest:.*}/more", hello), weave::ValueError);
  EXPECT_THROW(router.add_get("/", http::Handler()), weave::ValueError);
  router.add_get("/a/{b}", hello);
  http::Router::Resolution r = router.resolve("GET", "/a/");
  EXPECT_EQ(r.status, 404);
  r = router.resolve("GET", "/a/x/y");
  EXPECT_EQ(r.status, 404);
  r = router.resolve("GET", "/a/x");
  ASSERT_NE(r.handler, nullptr);
  EXPECT_EQ(r.match_info.at(0).second, "x");
}

// ---- requests ----------------------------------------------------------------------------------

Coro<void> request_parts() {
  http::Application app;
  std::string seen;
  app.router().add_get("/{name}", [&](http::Request& r) -> Coro<http::Response> {
    seen = std::string(r.method()) + "|" + std::string(r.target()) + "|" + std::string(r.path()) +
           "|" + std::string(r.query_string()) + "|" + std::string(r.match_info("name")) + "|" +
           std::string(r.query().get("a").value_or("-")) + "|" +
           std::string(r.query().get("b").value_or("-")) + "|" +
           std::to_string(r.query().get_all("a").size()) + "|" +
           std::string(r.header("X-CASE").value_or("-")) + "|" + std::to_string(r.version().major) +
           "." + std::to_string(r.version().minor) + "|" + r.remote();
    co_return http::Response(200, "ok");
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  std::string all = co_await exchange_until_close(
      server.port(),
      get("/a%20b?a=1&b=x+y%2Fz&a=2", "x-case:  padded value \t\r\nConnection: close\r\n"));
  EXPECT_EQ(parse_responses(all).at(0).status, 200);
  EXPECT_EQ(seen,
            "GET|/a%20b?a=1&b=x+y%2Fz&a=2|/a b|a=1&b=x+y%2Fz&a=2|a b|1|x y/z|2|padded "
            "value|1.1|127.0.0.1");
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, RequestGivesDecodedPathQueryAndCaseInsensitiveHeaders) {
  run_bounded(request_parts());
}

Coro<void> bodies_sized_and_chunked() {
  http::Server server =
      co_await http::start_server(hello_app(http::ServerOptions()), "127.0.0.1", 0);
  std::string all = co_await exchange_until_close(
      server.port(),
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer-Field: dropped\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  std::vector<weave_test::RawResponse> r = parse_responses(all);
  EXPECT_EQ(r.size(), 3u);
  if (r.size() == 3) {
    EXPECT_EQ(r[0].body, "hello");
    EXPECT_EQ(r[1].body, "abcdefg");
    EXPECT_EQ(r[2].body, "");
    EXPECT_EQ(r[2].header("content-type").value_or(""), "application/octet-stream");
  }
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, ReadsSizedAndChunkedBodies) {
  run_bounded(bodies_sized_and_chunked());
}

Coro<void> client_max_size() {
  http::ServerOptions options;
  options.client_max_size = 1000;
  http::Server server = co_await http::start_server(hello_app(options), "127.0.0.1", 0);
  // Declared too large: 413 without reading it. Too large when chunked: 413 once it is.
  std::string declared = co_await exchange_until_close(
      server.port(),
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + std::string(1001, 'a'));
  std::vector<weave_test::RawResponse> r = parse_responses(declared);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 413);
  EXPECT_EQ(r[0].header("connection").value_or(""), "close");
  std::string chunk(600, 'b');
  std::string chunked = co_await exchange_until_close(
      server.port(), "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" +
                         chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n");
  r = parse_responses(chunked);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 413);
  // Exactly the limit is fine.
  std::string fits = co_await exchange_until_close(
      server.port(),
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n" +
          std::string(1000, 'c'));
  EXPECT_EQ(parse_responses(fits).at(0).body.size(), 1000u);
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, BodyBeyondClientMaxSizeIs413AndCloses) {
  run_bounded(client_max_size());
}

// A handler that does not read yet holds the upload back: the server stops reading, the
// client's data waits in its own buffer; once the handler reads, all of it arrives.
Coro<void> streaming_upload_back_pressure() {
  http::Application app;
  weave::Event go;
  std::size_t total = 0;
  std::size_t biggest_piece = 0;
  app.router().add_post("/upload", [&](http::Request& r) -> Coro<http::Response> {
    co_await go.wait();
    while (true) {
      std::string piece = co_await r.content().readany();
      if (piece.empty()) break;
      total += piece.size();
      biggest_piece = std::max(biggest_piece, piece.size());
    }
    EXPECT_TRUE(r.content().at_eof());
    co_return http::Response(200, std::to_string(total));
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::size_t size = std::size_t{64} << 20;
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(size) +
               "\r\n\r\n");
  std::string block(std::size_t{1} << 20, 'u');
  for (std::size_t i = 0; i < size / block.size(); ++i) writer.write(block);
  co_await weave::sleep(300ms);
  // Kernel buffers hold a few MiB at most: the rest must still be in the client's buffer.
  EXPECT_GT(writer.transport().get_write_buffer_size(), size / 2);
  go.set();
  co_await writer.drain();
  std::vector<weave_test::RawResponse> r = co_await read_responses(reader, 1);
  EXPECT_EQ(r.at(0).body, std::to_string(size));
  // What a read hands over is bounded by what the server buffers while nobody reads.
  EXPECT_LE(biggest_piece, std::size_t{4} << 20);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, StreamingUploadHasBackPressure) {
  run_bounded(streaming_upload_back_pressure(), 30s);
}

Coro<void> expect_continue() {
  http::ServerOptions options;
  options.client_max_size = 100;
  http::Server server = co_await http::start_server(hello_app(options), "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = co_await reader.readuntil("\r\n\r\n");
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  writer.write("body");
  EXPECT_EQ((co_await read_responses(reader, 1)).at(0).body, "body");
  // Too large for the limit: 413 at once, no 100 Continue, and the connection closes.
  writer.write(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\nExpect: 100-continue\r\n\r\n");
  std::string rest;
  while (true) {
    std::string piece = co_await reader.read(4096);
    if (piece.empty()) break;
    rest += piece;
  }
  std::vector<weave_test::RawResponse> r = parse_responses(rest);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 413);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, Expect100ContinueIsAnsweredWhenTheHandlerReads) {
  run_bounded(expect_continue());
}

// ---- responses ---------------------------------------------------------------------------------

Coro<void> response_heads() {
  http::Application app;
  app.router().add_get("/", [](http::Request&) -> Coro<http::Response> {
    http::Response r(201, "made");
    r.set_header("X-Thing", "1");
    r.add_header("Set-Cookie", "a=1");
    r.add_header("Set-Cookie", "b=2");
    r.set_content_type("text/html");
    co_return r;
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  std::string all = co_await exchange_until_close(
      server.port(), get("/") + "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::vector<weave_test::RawResponse> r = parse_responses(all, nullptr, {false, true});
  CO_ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 201);
  EXPECT_EQ(r[0].reason, "Created");
  EXPECT_EQ(r[0].body, "made");
  EXPECT_EQ(r[0].header("content-type").value_or(""), "text/html");
  EXPECT_EQ(r[0].header("x-thing").value_or(""), "1");
  EXPECT_EQ(r[0].header("server").value_or(""), "weave");
  int cookies = 0;
  for (const auto& [k, v] : r[0].headers) cookies += k == "Set-Cookie";
  EXPECT_EQ(cookies, 2);
  // IMF-fixdate: "Wed, 02 Dec 2026 06:22:05 GMT".
  std::string date = r[0].header("date").value_or("");
  EXPECT_EQ(date.size(), 29u);
  EXPECT_TRUE(date.ends_with(" GMT"));
  // HEAD: the same head, Content-Length included, and no body (parse_responses would have read
  // "made" as the start of nothing: the connection closed right after the head).
  EXPECT_EQ(r[1].status, 201);
  EXPECT_EQ(r[1].header("content-length").value_or(""), "4");
  EXPECT_TRUE(all.ends_with("\r\n\r\n"));
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, ResponsesCarryTheirHeadersAndHeadHasNoBody) {
  run_bounded(response_heads());
}

TEST_F(HttpServer, HeaderInjectionIsRefused) {
  http::Response r;
  EXPECT_THROW(r.set_header("X-A", "v\r\nSet-Cookie: evil=1"), weave::ValueError);
  EXPECT_THROW(r.set_header("X-A", std::string("v\0w", 3)), weave::ValueError);
  EXPECT_THROW(r.add_header("Bad Name", "v"), weave::ValueError);
  EXPECT_THROW(r.set_header("X-A:", "v"), weave::ValueError);
  EXPECT_THROW(r.set_status(200, "OK\r\nX: y"), weave::ValueError);
  EXPECT_THROW(r.set_status(99), weave::ValueError);
  EXPECT_THROW(http::Response(200, "", "text/plain\r\nX: y"), weave::ValueError);
}

Coro<void> stream_responses() {
  http::Application app;
  app.router().add_get("/chunked", [](http::Request& req) -> Coro<http::Response> {
    http::StreamResponse resp;
    resp.set_content_type("text/plain");
    co_await resp.prepare(req);
    co_await resp.write("one ");
    co_await resp.write("");
    co_await weave::sleep(5ms);
    co_await resp.write("two ");
    co_await resp.write_eof("three");
    co_return resp;
  });
  app.router().add_get("/sized", [](http::Request& req) -> Coro<http::Response> {
    http::StreamResponse resp(202);
    resp.set_content_length(6);
    co_await resp.prepare(req);
    co_await resp.write("abc");
    EXPECT_THROW(co_await resp.write("defg"), weave::ValueError);
    co_await resp.write("def");
    co_return resp;  // no write_eof: the server ends it
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  std::string all = co_await exchange_until_close(
      server.port(), get("/chunked") + get("/sized") + "GET /chunked HTTP/1.0\r\n\r\n");
  std::vector<weave_test::RawResponse> r = parse_responses(all);
  CO_ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].header("transfer-encoding").value_or(""), "chunked");
  EXPECT_EQ(r[0].body, "one two three");
  EXPECT_EQ(r[1].status, 202);
  EXPECT_EQ(r[1].header("content-length").value_or(""), "6");
  EXPECT_EQ(r[1].body, "abcdef");
  // HTTP/1.0 has no chunked coding: the body runs until the close.
  EXPECT_FALSE(r[2].header("transfer-encoding").has_value());
  EXPECT_EQ(r[2].header("connection").value_or(""), "close");
  EXPECT_EQ(r[2].body, "one two three");
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, StreamResponseWritesChunkedOrSizedBodies) {
  run_bounded(stream_responses());
}

// ---- keep-alive, pipelining, HTTP/1.0 ----------------------------------------------------------

Coro<void> pipelined_in_order() {
  http::Application app;
  app.router().add_get("/slow", [](http::Request&) -> Coro<http::Response> {
    co_await weave::sleep(20ms);
    co_return http::Response(200, "slow");
  });
  app.router().add_get("/fast", [](http::Request&) -> Coro<http::Response> {
    co_return http::Response(200, "fast");
  });
  app.router().add_post("/echo", echo);
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write(get("/fast") + get("/slow") +
               "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" + get("/fast"));
  std::vector<weave_test::RawResponse> r = co_await read_responses(reader, 4);
  CO_ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].body, "fast");
  EXPECT_EQ(r[1].body, "slow");
  EXPECT_EQ(r[2].body, "xyz");
  EXPECT_EQ(r[3].body, "fast");
  // The connection is still open for more.
  writer.write(get("/fast"));
  EXPECT_EQ((co_await read_responses(reader, 1)).at(0).body, "fast");
  EXPECT_EQ(server.connection_count(), 1u);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, PipelinedRequestsAreAnsweredInOrderOnOneConnection) {
  run_bounded(pipelined_in_order());
}

// The answers made before a handler that waits go out before it finishes.
Coro<void> answers_before_a_waiting_handler_are_not_held() {
  http::Application app;
  weave::Event release;
  app.router().add_get("/", hello);
  app.router().add_get("/wait", [&](http::Request&) -> Coro<http::Response> {
    co_await release.wait();
    co_return http::Response(200, "waited");
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write(get("/") + get("/wait"));
  EXPECT_EQ((co_await read_responses(reader, 1)).at(0).body, "hello");
  release.set();
  EXPECT_EQ((co_await read_responses(reader, 1)).at(0).body, "waited");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, AnswersBeforeAWaitingHandlerAreSentAtOnce) {
  run_bounded(answers_before_a_waiting_handler_are_not_held());
}

Coro<void> http10_keep_alive() {
  http::Server server =
      co_await http::start_server(hello_app(http::ServerOptions()), "127.0.0.1", 0);
  // Without keep-alive: one answer, then the close.
  std::string plain = co_await exchange_until_close(server.port(), "GET / HTTP/1.0\r\n\r\n");
  std::vector<weave_test::RawResponse> r = parse_responses(plain);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header("connection").value_or(""), "close");
  // With keep-alive: the connection stays open and says so.
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  r = co_await read_responses(reader, 1);
  EXPECT_EQ(r.at(0).header("connection").value_or(""), "keep-alive");
  writer.write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ((co_await read_responses(reader, 1)).at(0).body, "hello");
  // HTTP/1.1 with Connection: close closes after the answer.
  writer.write(get("/", "Connection: close\r\n"));
  std::string rest;
  while (true) {
    std::string piece = co_await reader.read(4096);
    if (piece.empty()) break;
    rest += piece;
  }
  r = parse_responses(rest);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].header("connection").value_or(""), "close");
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, Http10KeepAliveAndConnectionClose) {
  run_bounded(http10_keep_alive());
}

// ---- handler errors ----------------------------------------------------------------------------

Coro<void> handler_errors() {
  http::Application app;
  app.router().add_get("/boom", [](http::Request&) -> Coro<http::Response> {
    throw std::runtime_error("boom");
    co_return http::Response();
  });
  app.router().add_get("/teapot", [](http::Request&) -> Coro<http::Response> {
    http::HttpError e(418, "I'm a teapot", "short and stout");
    e.headers().add("X-Why", "tea");
    throw e;
    co_return http::Response();
  });
  app.router().add_get("/", hello);
  std::vector<std::string> reported;
  weave::get_running_loop().set_exception_handler(
      [&](weave::EventLoop&, const weave::ExceptionContext& ctx) {
        reported.push_back(ctx.message);
        try {
          std::rethrow_exception(ctx.exception);
        } catch (const std::runtime_error& e) {
          reported.push_back(e.what());
        }
      });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  std::string all = co_await exchange_until_close(
      server.port(), get("/boom") + get("/teapot") + get("/", "Connection: close\r\n"));
  std::vector<weave_test::RawResponse> r = parse_responses(all);
  CO_ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].status, 500);
  EXPECT_EQ(r[1].status, 418);
  EXPECT_EQ(r[1].reason, "I'm a teapot");
  EXPECT_EQ(r[1].body, "short and stout");
  EXPECT_EQ(r[1].header("x-why").value_or(""), "tea");
  EXPECT_EQ(r[2].body, "hello");  // the connection survived both
  EXPECT_EQ(reported, (std::vector<std::string>{"Error handling request", "boom"}));
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, HandlerExceptionIs500AndReportedHttpErrorSendsItsStatus) {
  run_bounded(handler_errors());
}

// ---- timeouts ----------------------------------------------------------------------------------

Coro<void> keepalive_timeout() {
  http::ServerOptions options;
  options.keepalive_timeout = 100ms;
  http::Server server = co_await http::start_server(hello_app(options), "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write(get("/"));
  (void)co_await read_responses(reader, 1);
  const auto t0 = weave::Clock::now();
  EXPECT_EQ(co_await reader.read(100), "");  // closed quietly, with no response
  const auto waited = weave::Clock::now() - t0;
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, weave_test::scaled(2000ms));
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, IdleKeepAliveConnectionClosesAfterKeepaliveTimeout) {
  run_bounded(keepalive_timeout());
}

Coro<void> slowloris() {
  http::ServerOptions options;
  options.header_timeout = 150ms;
  http::Server server = co_await http::start_server(hello_app(options), "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  const auto t0 = weave::Clock::now();
  // A byte at a time, never finishing the head: the timeout counts from the first byte, not
  // from the last.
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  auto trickle = [](weave::StreamWriter w, std::string head) -> Coro<void> {
    try {
      for (std::size_t i = 0; i < head.size() + 100; ++i) {
        w.write(i < head.size() ? head.substr(i, 1) : std::string("a"));
        co_await w.drain();
        co_await weave::sleep(10ms);
      }
    } catch (const std::system_error&) {  // the server hung up, as it should
    }
  };
  weave::Task<void> trickling = weave::create_task(trickle(writer, head));
  std::string answer;
  while (true) {
    std::string piece = co_await reader.read(4096);
    if (piece.empty()) break;
    answer += piece;
  }
  const auto took = weave::Clock::now() - t0;
  std::vector<weave_test::RawResponse> r = parse_responses(answer);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 408);
  EXPECT_LT(took, weave_test::scaled(1500ms));
  // A connection that sends nothing at all is closed quietly.
  auto [r2, w2] = co_await weave::open_connection("127.0.0.1", server.port());
  EXPECT_EQ(co_await r2.read(100), "");
  w2.close();
  co_await w2.wait_closed();
  trickling.cancel();
  try {
    co_await trickling;
  } catch (const weave::CancelledError&) {
  }
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const std::system_error&) {
  }
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, SlowlorisClientIsAnswered408AndClosed) {
  run_bounded(slowloris());
}

Coro<void> body_timeout() {
  http::ServerOptions options;
  options.body_timeout = 100ms;
  http::Server server = co_await http::start_server(hello_app(options), "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  std::string answer;
  while (true) {
    std::string piece = co_await reader.read(4096);
    if (piece.empty()) break;
    answer += piece;
  }
  std::vector<weave_test::RawResponse> r = parse_responses(answer);
  CO_ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 408);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST_F(HttpServer, BodyThatStopsArrivingIs408) {
  run_bounded(body_timeout());
}

// ---- shutdown ----------------------------------------------------------------------------------

Coro<void> graceful_shutdown() {
  http::Application app;
  app.router().add_get("/", hello);
  app.router().add_get("/slow", [](http::Request&) -> Coro<http::Response> {
    co_await weave::sleep(100ms);
    co_return http::Response(200, "finished");
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  const std::uint16_t port = server.port();
  auto [idle_r, idle_w] = co_await weave::open_connection("127.0.0.1", port);
  idle_w.write(get("/"));
  (void)co_await read_responses(idle_r, 1);
  auto [busy_r, busy_w] = co_await weave::open_connection("127.0.0.1", port);
  busy_w.write(get("/slow"));
  co_await weave::sleep(20ms);  // the slow request is in its handler
  server.close();
  // New connections are refused at once.
  EXPECT_THROW(co_await weave::open_connection("127.0.0.1", port), std::system_error);
  // The idle connection closes at once; the busy one gets its answer, told that it closes.
  EXPECT_EQ(co_await idle_r.read(100), "");
  std::vector<weave_test::RawResponse> r = co_await read_responses(busy_r, 1);
  EXPECT_EQ(r.at(0).body, "finished");
  EXPECT_EQ(r.at(0).header("connection").value_or(""), "close");
  EXPECT_EQ(co_await busy_r.read(100), "");
  co_await server.wait_closed();
  EXPECT_EQ(server.connection_count(), 0u);
  for (weave::StreamWriter* w : {&idle_w, &busy_w}) {
    w->close();
    co_await w->wait_closed();
  }
}

TEST_F(HttpServer, CloseStopsAcceptingClosesIdleAndFinishesInFlight) {
  run_bounded(graceful_shutdown());
}

Coro<void> shutdown_timeout() {
  http::ServerOptions options;
  options.shutdown_timeout = 100ms;
  http::Application app(options);
  app.router().add_get("/forever", [](http::Request&) -> Coro<http::Response> {
    co_await weave::sleep(60s);
    co_return http::Response(200, "never");
  });
  http::Server server = co_await http::start_server(app, "127.0.0.1", 0);
  auto [reader, writer] = co_await weave::open_connection("127.0.0.1", server.port());
  writer.write(get("/forever"));
  co_await weave::sleep(20ms);
  const auto t0 = weave::Clock::now();
  server.close();
  co_await server.wait_closed();
  const auto took = weave::Clock::now() - t0;
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, weave_test::scaled(1000ms));
  std::string rest;
  try {
    rest = co_await reader.read(100);
  } catch (const std::system_error&) {
  }
  EXPECT_EQ(rest, "");
  writer.close();
  co_await writer.wait_closed();
}

TEST_F(HttpServer, ShutdownTimeoutAbortsWhatIsStillRunning) {
  run_bounded(shutdown_timeout());
}

Coro<void> serve_forever_cancelled() {
  http::Server server =
      co_await http::start_server(hello_app(http::ServerOptions()), "127.0.0.1", 0);
  auto serving = weave::create_task(server.serve_forever());
  co_await weave::sleep(10ms);
  serving.cancel();
  EXPECT_THROW(co_await serving, weave::CancelledError);
  EXPECT_THROW(co_await weave::open_connection("127.0.0.1", server.port()), std::system_error);
}

TEST_F(HttpServer, CancellingServeForeverClosesTheServer) {
  run_bounded(serve_forever_cancelled());
}

}  // namespace
