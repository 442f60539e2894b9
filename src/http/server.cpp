// Application, Server and start_server; and the request's body, as its handler reads it.
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "server_connection.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::http {

// ---- Request and BodyReader --------------------------------------------------------------------

std::string_view Request::match_info(std::string_view name) const {
  for (const auto& [k, v] : match_info_) {
    if (k == name) return v;
  }
  throw std::out_of_range("http: the route has no parameter " + std::string(name));
}

std::string Request::remote() const {
  return connection_->remote();
}

Coro<std::string> Request::read() {
  return connection_->read_body(-1, detail::ServerConnection::ReadMode::kWhole);
}

Coro<std::string> BodyReader::read(std::ptrdiff_t n) {
  return connection_->read_body(n, detail::ServerConnection::ReadMode::kUpTo);
}

Coro<std::string> BodyReader::readany() {
  return connection_->read_body(-1, detail::ServerConnection::ReadMode::kAny);
}

bool BodyReader::at_eof() const noexcept {
  return connection_->body_at_eof();
}

namespace detail {

bool ServerConnection::body_at_eof() const noexcept {
  return front_ == nullptr || (front_->complete && front_->body.empty());
}

Coro<std::string> ServerConnection::read_body(std::ptrdiff_t n, ReadMode mode) {
  if (front_ == nullptr) throw RuntimeError("http: the request is no longer being handled");
  Pending& p = *front_;
  auto gone = [] {
    return std::system_error(ECONNRESET, std::generic_category(), "http: the client went away");
  };
  auto check_body = [&p] {
    if (p.body_error != 0) throw HttpError(p.body_error, {}, p.error_reason);
  };
  check_body();
  const std::uint64_t max = options_.client_max_size;
  auto too_large = [&] {
    closing_ = true;
    whole_read_ = false;
    return HttpError(413, {},
                     "413: the request body is larger than " + std::to_string(max) + " bytes");
  };
  // Refused before the client is asked for the body (RFC 9110 10.1.1).
  if (mode == ReadMode::kWhole && p.request.head_.content_length.value_or(0) > max) {
    throw too_large();
  }
  if (p.request.head_.expect_continue && !p.continue_sent && !p.complete && !p.answered) {
    p.continue_sent = true;
    out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    flush();
  }
  if (mode == ReadMode::kWhole) {
    whole_read_ = true;
    update_reading();
    while (!p.complete) {
      if (p.taken + p.body.size() > max) throw too_large();
      if (lost_ || eof_) throw gone();
      co_await wait_for_body();
    }
    check_body();
    if (p.taken + p.body.size() > max) throw too_large();
    whole_read_ = false;
  } else {
    while (!p.complete && (p.body.empty() || (mode == ReadMode::kUpTo && n < 0))) {
      if (lost_ || eof_) throw gone();
      update_reading();
      co_await wait_for_body();
    }
    check_body();
  }
  std::string out;
  if (mode == ReadMode::kUpTo && n >= 0 && static_cast<std::size_t>(n) < p.body.size()) {
    out.assign(p.body, 0, static_cast<std::size_t>(n));
    p.body.erase(0, static_cast<std::size_t>(n));
  } else {
    out = std::move(p.body);
    p.body.clear();
  }
  p.taken += out.size();
  update_reading();
  co_return out;
}

}  // namespace detail

// ---- Application and Server --------------------------------------------------------------------

Application::Application() : Application(ServerOptions{}) {}
Application::Application(ServerOptions options)
    : state_(std::make_shared<detail::AppState>(detail::AppState{Router{}, std::move(options)})) {}
Router& Application::router() noexcept {
  return state_->router;
}
ServerOptions& Application::options() noexcept {
  return state_->options;
}

namespace {
std::shared_ptr<detail::ServerCore> make_core(const std::shared_ptr<detail::AppState>& app,
                                              ProtocolFactory& factory) {
  auto core = std::make_shared<detail::ServerCore>();
  core->app = app;
  core->anchor = std::make_shared<detail::ServerCore::Anchor>(detail::ServerCore::Anchor{core});
  factory = [anchor = core->anchor, app]() -> std::shared_ptr<Protocol> {
    if (!anchor->core) return nullptr;  // closed: never reached, the listener is gone
    return std::make_shared<detail::ServerConnection>(anchor->core, app);
  };
  return core;
}

weave::ServerOptions listener_options(const ServerOptions& o) {
  weave::ServerOptions l;
  l.backlog = o.backlog;
  l.reuse_port = o.reuse_port;
  l.ssl = o.ssl;
  return l;
}
}  // namespace

Coro<Server> start_server(Application app, std::string host, std::uint16_t port) {
  ProtocolFactory factory;
  std::shared_ptr<detail::ServerCore> core = make_core(app.state_, factory);
  core->listener = co_await get_running_loop().create_server(
      std::move(factory), std::move(host), port, listener_options(app.state_->options));
  core->port = core->listener.sockets().at(0).getsockname().port();
  co_return Server(std::move(core));
}

Coro<Server> start_unix_server(Application app, std::string path) {
  ProtocolFactory factory;
  std::shared_ptr<detail::ServerCore> core = make_core(app.state_, factory);
  core->listener = co_await get_running_loop().create_unix_server(
      std::move(factory), std::move(path), listener_options(app.state_->options));
  co_return Server(std::move(core));
}

std::uint16_t Server::port() const {
  return core_->port;
}

std::size_t Server::connection_count() const {
  return core_->connections.size();
}

void Server::close() {
  detail::ServerCore& core = *core_;
  if (core.closing) return;
  core.closing = true;
  core.listener.close();
  core.anchor->core.reset();
  core.each_connection([](detail::ServerConnection& c) { c.shut_down(); });
  if (core.connections.empty()) {
    core.all_closed.set();
    return;
  }
  core.shutdown_timer = get_running_loop().call_later(
      core.app->options.shutdown_timeout, [weak = std::weak_ptr<detail::ServerCore>(core_)] {
        if (std::shared_ptr<detail::ServerCore> core = weak.lock()) {
          core->each_connection([](detail::ServerConnection& c) { c.abort(); });
        }
      });
}

Coro<void> Server::wait_closed() {
  std::shared_ptr<detail::ServerCore> core = core_;
  if (!core->closing) throw RuntimeError("http: wait_closed() before close()");
  co_await core->all_closed.wait();
  co_await core->listener.wait_closed();
}

Coro<void> Server::serve_forever() {
  std::shared_ptr<detail::ServerCore> core = core_;
  bool cancelled = false;
  try {
    co_await core->listener.serve_forever();
  } catch (const CancelledError&) {
    cancelled = true;
  }
  close();
  co_await wait_closed();
  if (cancelled) throw CancelledError();
}

}  // namespace weave::http
