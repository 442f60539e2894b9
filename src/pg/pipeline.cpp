// Statements issued concurrently on one connection share libpq's pipeline mode: a driver task
// sends every queued statement at once, each followed by a sync (so that an error aborts only
// its own statement), and hands each its results in order. A batch of N costs one round trip,
// not N. COPY, executemany, prepare() and simple-protocol statements take the connection's lock
// instead, which the driver holds while it drives.
#include <algorithm>
#include <exception>
#include <utility>

#include "state.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::pg::detail {

void ConnectionState::send_queued() {
  while (!queued.empty()) {
    JobPtr job = std::move(queued.front());
    queued.pop_front();
    if (statements.capacity > 0) {
      job->sent = send_cached(job->sql, job->params, false);
    } else {
      job->sent = send(job->sql, job->params, false, {});
    }
    if (PQpipelineSync(conn) == 0) raise_send_failure();
    job->sent_out = true;
    ++queries;
    in_flight.push_back(std::move(job));
  }
}

Coro<void> ConnectionState::drive(std::shared_ptr<ConnectionState> self) {
  ConnectionState& st = *self;
  std::exception_ptr failure;
  try {
    auto held = co_await st.lock.scoped();
    while (!st.queued.empty()) {
      st.check_open();
      if (PQenterPipelineMode(st.conn) == 0) st.raise_send_failure();
      st.send_queued();
      co_await st.flush();
      while (!st.in_flight.empty()) {
        JobPtr job = st.in_flight.front();
        std::tie(job->last, job->error) = co_await st.read_pipelined(job->sent, false);
        st.in_flight.pop_front();
        if (!job->done.done()) job->done.set_result();
        if (!st.queued.empty()) {  // issued meanwhile: they join the pipeline now
          st.send_queued();
          co_await st.flush();
        }
      }
      PQexitPipelineMode(st.conn);
    }
  } catch (const CancelledError&) {  // the loop is shutting down
    failure = std::make_exception_ptr(ConnectionDoesNotExistError("the connection is closed"));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    // The pipeline's state is unknown now: nothing more can be read from this connection.
    st.mark_lost("the connection was closed: its pipeline failed");
    for (auto* list : {&st.in_flight, &st.queued}) {
      for (JobPtr& job : *list) {
        job->failure = failure;
        if (!job->done.done()) job->done.set_result();
      }
      list->clear();
    }
  }
  st.driving = false;
}

Coro<ResultPtr> ConnectionState::run_pipelined(const std::string& sql, const Params& params) {
  check_open();
  auto job = std::make_shared<Job>();
  job->sql = sql;
  job->params = params;
  job->done = loop->create_future<void>();
  queued.push_back(job);
  if (!driving) {
    driving = true;
    loop->create_task(drive(shared_from_this()), "pg pipeline");
  }
  std::exception_ptr cancelled;
  try {
    co_await job->done;
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (cancelled) {
    if (!job->sent_out) {
      queued.erase(std::remove(queued.begin(), queued.end(), job), queued.end());
    } else if (in_flight.size() == 1 && in_flight.front() == job && lost.empty()) {
      // The server runs it now and nothing follows it: stop it there. (With statements behind
      // it, a late cancel could hit one of them; its result is just dropped instead.)
      std::shared_ptr<PGcancel> cancel(PQgetCancel(conn), [](PGcancel* c) { PQfreeCancel(c); });
      if (cancel) {
        auto send_cancel = [cancel] {
          char error[256];
          PQcancel(cancel.get(), error, sizeof error);
        };
        try {
          co_await to_thread(send_cancel);
        } catch (...) {  // cancelled again: the statement finishes on its own
        }
      }
    }
    std::rethrow_exception(cancelled);
  }
  if (job->failure) std::rethrow_exception(job->failure);
  if (job->error) {
    const char* state = PQresultErrorField(job->error->res, PG_DIAG_SQLSTATE);
    if (!job->sent.key.empty() && state != nullptr && std::string_view(state) == "0A000") {
      statements.erase(job->sent.key);
    }
    raise_error(job->error);
  }
  co_return job->last;
}

}  // namespace weave::pg::detail
