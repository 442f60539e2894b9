// A server connection's life: parsing into a queue of requests, and the task that answers them.
#include "server_connection.hpp"

#include <cerrno>
#include <system_error>

#include "target.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/timeouts.hpp"

namespace weave::http::detail {
namespace {
// Pipelined requests parsed ahead of the one being answered before reading pauses, and bytes of
// a body buffered while its handler does not read; both bound a connection's memory.
constexpr std::size_t kMaxQueued = 64;
constexpr std::size_t kBodyBuffer = std::size_t{256} * 1024;
constexpr std::size_t kFlushAt = std::size_t{64} * 1024;
// How long a closing connection goes on discarding what the client still sends (nginx's
// lingering_time, shorter: only a client that keeps sending waits it out).
constexpr Clock::duration kLingeringTime = std::chrono::seconds(2);

ParserLimits limits_of(const ServerOptions& o) {
  return {o.max_line_size, o.max_field_size, o.max_headers};
}

Coro<void> wait_event(Event& event) {
  co_await event.wait();
}
}  // namespace

ServerConnection::ServerConnection(std::shared_ptr<ServerCore> core, std::shared_ptr<AppState> app)
    : core_(std::move(core)),
      app_(std::move(app)),
      options_(app_->options),
      parser_(*this, limits_of(app_->options)) {}

ServerConnection::~ServerConnection() {
  auto drop = [](Pending* p) {
    while (p != nullptr) delete std::exchange(p, p->next);
  };
  if (parsing_ != nullptr && !parsing_->in_queue) delete parsing_;
  drop(front_);
  drop(free_);
}

// ---- Protocol ----------------------------------------------------------------------------------

void ServerConnection::connection_made(Transport& transport) {
  transport_ = transport.shared_from_this();
  core_->add(this);
  if (core_->closing) {
    close_transport();
    return;
  }
  // A connection that sends nothing is held to the header timeout, as one that sends too slowly.
  phase_ = Phase::kHead;
  arm_timer(options_.header_timeout);
}

void ServerConnection::data_received(std::string_view data) {
  if (errored_ || parser_.upgraded() || closing_ || phase_ == Phase::kLingering) return;
  if (!parser_.feed(data)) queue_error(parser_.error_status(), std::string(parser_.error_reason()));
  update_reading();
}

void ServerConnection::enqueue(Pending* p) {
  p->in_queue = true;
  (back_ != nullptr ? back_->next : front_) = p;
  back_ = p;
  ++queued_;
}

void ServerConnection::queue_error(int status, std::string reason) {
  // A request whose head failed becomes the error's entry; one whose body failed keeps what
  // arrived of it, and the error follows it.
  Pending* p = parsing_;
  if (p != nullptr && p->in_queue) {
    // Its body broke the framing: a handler reading it gets the error; one not started yet is
    // answered with it instead; either way nothing more is read.
    p->complete = true;
    parsing_ = nullptr;
    errored_ = true;
    if (p->in_handler) {
      p->body_error = status;
      p->error_reason = std::move(reason);
      closing_ = true;
      body_.set();
    } else {
      p->error_status = status;
      p->error_reason = std::move(reason);
    }
    wake();
    return;
  }
  if (p == nullptr) p = acquire_pending();
  parsing_ = nullptr;
  p->error_status = status;
  p->error_reason = std::move(reason);
  enqueue(p);
  // Nothing after it is read; the requests before it are still answered, then it, then the close.
  errored_ = true;
  wake();
}

bool ServerConnection::eof_received() {
  eof_ = true;
  if (phase_ == Phase::kLingering) return false;  // the client has read the answers: close
  // With nothing to answer, the transport closes; else the answers still go out.
  if (front_ == nullptr) return false;
  body_.set();
  wake();
  // Keep the write side open: the requests that came before the EOF still get their answers.
  return true;
}

void ServerConnection::connection_lost(std::exception_ptr) {
  lost_ = true;
  // The transport holds this protocol: letting go of it breaks the cycle, once the transport's
  // own call has returned.
  get_running_loop().call_soon([transport = std::move(transport_)] {});
  if (timer_armed_) timer_.cancel();
  timer_armed_ = false;
  core_->remove(this);
  body_.set();
  writable_.set();
  wake();
}

void ServerConnection::pause_writing() {
  write_paused_ = true;
  writable_.clear();
}

void ServerConnection::resume_writing() {
  write_paused_ = false;
  writable_.set();
}

// ---- RequestParser::Sink -----------------------------------------------------------------------

RequestHead& ServerConnection::begin_request() {
  parsing_ = acquire_pending();
  if (phase_ != Phase::kHead) {
    phase_ = Phase::kHead;
    arm_timer(options_.header_timeout);
  }
  return parsing_->request.head_;
}

void ServerConnection::head_complete() {
  enqueue(parsing_);
  phase_ = Phase::kBusy;
  wake();
}

void ServerConnection::body(std::string_view data) {
  if (parsing_ == nullptr) return;
  parsing_->body.append(data);
  if (parsing_ == front_) body_.set();
}

void ServerConnection::request_complete() {
  if (parsing_ == nullptr) return;
  parsing_->complete = true;
  if (parsing_ == front_) body_.set();
  parsing_ = nullptr;
}

// ---- the answering task ------------------------------------------------------------------------

void ServerConnection::wake() {
  if (phase_ == Phase::kLingering) return;  // everything was answered
  if (!serving_ && front_ != nullptr && !lost_) {
    serving_ = true;
    create_task(serve(shared_from_this()));
    return;
  }
  wake_.set();
}

// `self` keeps the connection alive from the task's creation to its end.
Coro<void> ServerConnection::serve(std::shared_ptr<ServerConnection> self) {
  (void)self;
  struct Serving {
    ServerConnection* c;
    ~Serving() { c->serving_ = false; }
  } serving{this};
  while (!lost_) {
    if (front_ == nullptr) {
      if (closing_ || eof_) {
        close_after_answers();
        break;
      }
      flush();
      if (parser_.idle() && phase_ != Phase::kIdle) {
        phase_ = Phase::kIdle;
        arm_timer(options_.keepalive_timeout);
      }
      wake_.clear();
      co_await wake_.wait();
      continue;
    }
    Pending& p = *front_;
    if (p.error_status != 0) {
      respond_error(p, p.error_status, p.error_reason, nullptr);
      close_after_answers();
      break;
    }
    co_await answer(p);
    const bool close = must_close_after(p);
    release_front();
    if (close) {
      closing_ = true;
      close_after_answers();
      break;
    }
    // Batched answers still go out before they pile up, so that a client that does not read
    // makes the transport push back (pause_writing) instead of the buffer growing.
    if (out_.size() >= kFlushAt) flush();
    if (write_paused_) {
      flush();
      co_await wait_writable();
    }
    update_reading();
  }
}

Coro<void> ServerConnection::answer(Pending& p) {
  Request& req = p.request;
  if (!split_target(req.head_.target, req.path_, req.query_string_, req.query_)) {
    respond_error(p, 400, "Malformed percent-encoding in the request-target", nullptr);
    co_return;
  }
  Router::Resolution route = app_->router.resolve(req.method(), req.path());
  if (route.handler == nullptr) {
    Headers allow;
    if (route.status == 405) allow.add("Allow", std::move(route.allow));
    respond_error(p, route.status, reason_phrase(route.status), &allow);
    co_return;
  }
  req.match_info_ = std::move(route.match_info);
  // A handler that waits must not hold back the answers made before it.
  if (!out_.empty()) schedule_flush();
  std::exception_ptr failure;
  p.in_handler = true;
  struct InHandler {
    Pending& p;
    ~InHandler() { p.in_handler = false; }
  } in_handler{p};
  try {
    Response response = co_await (*route.handler)(req);
    if (response.prepared()) {
      if (!response.eof_written_) co_await write_body(response, std::string(), true);
    } else {
      respond(p, response);
    }
  } catch (const HttpError& e) {
    if (p.answered) {
      closing_ = true;
    } else {
      respond_error(p, e.status(), e.body(), &e.headers(), e.reason());
    }
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure && (lost_ || eof_)) {
    // The client went away: what failed was the handler's read or write, nobody to tell.
    closing_ = true;
  } else if (failure) {
    get_running_loop().call_exception_handler({"Error handling request", failure, current_task()});
    if (p.answered) {
      closing_ = true;  // the response is cut short: only closing tells the client
    } else {
      respond_error(p, 500, "500 Internal Server Error", nullptr);
    }
  }
}

bool ServerConnection::must_close_after(const Pending& p) const noexcept {
  return closing_ || lost_ || !p.request.keep_alive() || !p.complete || parser_.upgraded() ||
         (core_->closing);
}

Coro<void> ServerConnection::wait_writable() {
  while (write_paused_ && !lost_) co_await writable_.wait();
}

Coro<void> ServerConnection::wait_for_body() {
  body_.clear();
  try {
    co_await timeout(options_.body_timeout, wait_event(body_));
  } catch (const TimeoutError&) {
    closing_ = true;
    throw HttpError(408, {}, "408: the request body did not arrive in time");
  }
}

void ServerConnection::flush() {
  flush_scheduled_ = false;
  if (out_.empty() || transport_ == nullptr) return;
  transport_->write(out_);
  out_.clear();
}

void ServerConnection::schedule_flush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  get_running_loop().call_soon([self = shared_from_this()] { self->flush(); });
}

void ServerConnection::update_reading() {
  if (lost_ || transport_ == nullptr) return;
  // Lingering, the client's bytes are read to be dropped: pausing would leave them unread.
  bool pause = phase_ != Phase::kLingering &&
               (errored_ || parser_.upgraded() || closing_ || queued_ >= kMaxQueued);
  if (!pause && parsing_ != nullptr) {
    const bool reading_whole = whole_read_ && parsing_ == front_;
    const std::size_t limit = reading_whole ? options_.client_max_size + 1 : kBodyBuffer;
    pause = parsing_->body.size() >= limit;
  }
  if (pause == reading_paused_) return;
  reading_paused_ = pause;
  if (pause) {
    transport_->pause_reading();
  } else {
    transport_->resume_reading();
  }
}

// ---- timeouts ----------------------------------------------------------------------------------

void ServerConnection::arm_timer(Clock::duration d) {
  if (lost_) return;
  EventLoop& loop = get_running_loop();
  deadline_ = loop.time() + d;
  if (timer_armed_ && armed_for_ <= deadline_) return;  // on_timer re-arms for the later one
  if (timer_armed_) timer_.cancel();
  armed_for_ = deadline_;
  timer_armed_ = true;
  timer_ = loop.call_at(deadline_, [this] { on_timer(); });
}

void ServerConnection::on_timer() {
  timer_armed_ = false;
  if (lost_) return;
  EventLoop& loop = get_running_loop();
  if (loop.time() < deadline_) {
    armed_for_ = deadline_;
    timer_armed_ = true;
    timer_ = loop.call_at(deadline_, [this] { on_timer(); });
    return;
  }
  if (phase_ == Phase::kLingering) {
    close_transport();  // the client kept sending: its time is up
  } else if (phase_ == Phase::kIdle && front_ == nullptr) {
    close_transport();  // an idle keep-alive connection goes quietly, as aiohttp's
  } else if (phase_ == Phase::kHead) {
    if (parser_.idle() && front_ == nullptr) {
      close_transport();  // nothing was sent at all
      return;
    }
    if (parser_.idle()) return;
    // A head still incomplete after header_timeout: a slowloris client, answered 408.
    queue_error(408, "408: the request head did not arrive in time");
    update_reading();
  }
}

// ---- request bookkeeping -----------------------------------------------------------------------

ServerConnection::Pending* ServerConnection::acquire_pending() {
  Pending* p = free_;
  if (p == nullptr) return new Pending(this);
  free_ = p->next;
  p->next = nullptr;
  return p;
}

void ServerConnection::release_front() {
  Pending* p = front_;
  front_ = p->next;
  if (front_ == nullptr) back_ = nullptr;
  --queued_;
  if (parsing_ == p) parsing_ = nullptr;  // its body is still arriving; the connection closes
  p->body.clear();
  p->taken = 0;
  p->complete = false;
  p->answered = false;
  p->continue_sent = false;
  p->error_status = 0;
  p->body_error = 0;
  p->error_reason.clear();
  p->in_queue = false;
  p->request.match_info_.clear();
  p->next = free_;
  free_ = p;
}

void ServerConnection::shut_down() {
  closing_ = true;
  if (phase_ == Phase::kLingering) {
    close_transport();
    return;
  }
  if (front_ == nullptr && !serving_ && transport_ != nullptr) {
    close_transport();
    return;
  }
  wake();
}

void ServerConnection::abort() {
  if (transport_ != nullptr) transport_->abort();
}

void ServerConnection::close_transport() {
  if (transport_ != nullptr) transport_->close();
}

// Closing a socket with unread input makes the kernel answer with a reset, which can destroy the
// answers still on their way to the client (it then reads ECONNRESET instead of the 408 or 400).
// So, as nginx's lingering close, a client that may still be sending gets a FIN after the
// answers, and what it sends is read and dropped until its EOF or kLingeringTime.
void ServerConnection::close_after_answers() {
  flush();
  if (transport_ == nullptr || lost_ || eof_ || core_->closing || parser_.upgraded() ||
      !transport_->can_write_eof()) {
    close_transport();
    return;
  }
  phase_ = Phase::kLingering;
  transport_->write_eof();
  update_reading();
  arm_timer(kLingeringTime);
}

std::string ServerConnection::remote() const {
  if (transport_ == nullptr) return {};
  ExtraInfo peer = transport_->get_extra_info("peername");
  if (!peer.has_value()) return {};
  try {
    return peer.host();
  } catch (const std::exception&) {
    return {};
  }
}

void ServerCore::remove(ServerConnection* c) {
  connections.erase(c);
  if (closing && connections.empty()) {
    shutdown_timer.cancel();
    all_closed.set();
  }
}

}  // namespace weave::http::detail
