// Statements issued concurrently on one connection share libpq's pipeline mode, each followed
// by a sync (so that an error aborts only its own statement), and each gets its results in
// order: a batch of N costs one round trip, not N. A statement issued on an idle connection
// sends and reads its own pipeline in its own coroutine; statements issued while it is in
// flight queue, and a driver task sends them and hands each its results. COPY, executemany,
// prepare() and simple-protocol statements take the connection's lock instead, which the
// pipeline holds while it has statements.
#include <algorithm>
#include <exception>
#include <utility>

#include "state.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"

namespace weave::pg::detail {

void ConnectionState::send_job(Job& job) {
  if (statements.capacity > 0) {
    job.sent = send_cached(*job.sql, *job.params, false);
  } else {
    job.sent = send(*job.sql, *job.params, false, nullptr);
  }
  if (PQpipelineSync(conn) == 0) raise_send_failure();
  job.sent_out = true;
  job.sql = nullptr;
  job.params = nullptr;
  ++queries;
}

void ConnectionState::send_queued() {
  while (!queued.empty()) {
    Job* job = queued.front();
    send_job(*job);
    queued.pop_front();
    in_flight.push_back(job);
  }
}

namespace {
void finish_job(Job* job) noexcept {
  job->finished = true;
  if (job->orphan) {
    delete job;
  } else {
    job->done.set();
  }
}
}  // namespace

void ConnectionState::fail_jobs(const std::exception_ptr& failure) noexcept {
  for (auto* list : {&in_flight, &queued}) {
    for (Job* job : *list) {
      job->failure = failure;
      finish_job(job);
    }
    list->clear();
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
      if (!st.try_flush()) co_await st.flush();
      while (!st.in_flight.empty()) {
        // A copy: the job in front may be cancelled (and replaced by an orphan) while this waits.
        const Sent sent = st.in_flight.front()->sent;
        PipelineRead read;
        while (!st.read_available(sent, read)) co_await st.readable();
        Job* job = st.in_flight.front();
        st.in_flight.pop_front();
        job->last = std::move(read.last);
        job->error = std::move(read.error);
        finish_job(job);
        if (!st.queued.empty()) {  // issued meanwhile: they join the pipeline now
          st.send_queued();
          if (!st.try_flush()) co_await st.flush();
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
    st.fail_jobs(failure);
  }
  st.driving = false;
}

void ConnectionState::hand_over() {
  if (queued.empty()) {
    driving = false;
    return;
  }
  loop->create_task(drive(shared_from_this()), "pg pipeline");
}

bool ConnectionState::withdraw(Job& job) {
  if (job.finished) return false;
  if (!job.sent_out) {
    queued.erase(std::remove(queued.begin(), queued.end(), &job), queued.end());
    return false;
  }
  const bool alone = in_flight.size() == 1 && lost.empty();
  auto* orphan = new Job;
  orphan->sent = job.sent;
  orphan->sent_out = true;
  orphan->orphan = true;
  std::replace(in_flight.begin(), in_flight.end(), &job, orphan);
  return alone;
}

ResultPtr ConnectionState::outcome(Job& job) {
  if (job.failure) std::rethrow_exception(job.failure);
  if (job.error) {
    // A cached plan that no longer fits (the table changed) is prepared afresh next time.
    const char* state = PQresultErrorField(job.error->res, PG_DIAG_SQLSTATE);
    if (job.sent.entry != 0 && state != nullptr && std::string_view(state) == "0A000") {
      statements.erase(job.sent.entry);
    }
    raise_error(job.error);
  }
  return std::move(job.last);
}

namespace {
/// asyncpg's InvalidCachedStatementError: the table under a cached statement changed. Out of a
/// transaction the statement is prepared afresh and run again, once.
bool stale_statement(const PostgresError& e, const ConnectionState& st) {
  return e.sqlstate() == "0A000" && st.statements.capacity > 0 && st.conn != nullptr &&
         PQtransactionStatus(st.conn) == PQTRANS_IDLE;
}
}  // namespace

Coro<ResultPtr> ConnectionState::run_pipelined(const std::string& sql, const Params& params) {
  for (int attempt = 0;; ++attempt) {
    check_open();
    Job job;
    job.sql = &sql;
    job.params = &params;
    std::exception_ptr cancelled;
    if (!driving) {
      // The connection is idle: this statement is the pipeline's, read here, with no task and
      // nothing allocated for it. Statements issued meanwhile queue for the driver task.
      driving = true;
      std::exception_ptr failure;
      bool held = false;
      try {
        co_await lock.acquire();
        held = true;
        check_open();
        if (PQenterPipelineMode(conn) == 0) raise_send_failure();
        send_job(job);
        if (!try_flush()) co_await flush();
        PipelineRead read;
        while (!read_available(job.sent, read)) co_await readable();
        PQexitPipelineMode(conn);
        job.last = std::move(read.last);
        job.error = std::move(read.error);
      } catch (const CancelledError&) {
        cancelled = std::current_exception();
      } catch (...) {
        failure = std::current_exception();
      }
      if (cancelled && job.sent_out) {
        statements.erase(job.sent.prepare_index >= 0 ? job.sent.entry : 0);
        co_await abandon();  // cancels it on the server and reads up to its sync
      }
      if (failure) {
        mark_lost("the connection was closed: its pipeline failed");
        fail_jobs(failure);
      }
      if (held) lock.release();
      hand_over();
      if (failure) std::rethrow_exception(failure);
    } else {
      queued.push_back(&job);
      try {
        co_await job.done.wait();
      } catch (const CancelledError&) {
        cancelled = std::current_exception();
      }
      if (cancelled && withdraw(job)) {
        // The server runs it now and nothing follows it: stop it there. (With statements
        // behind it, a late cancel could hit one of them; its result is just dropped instead.)
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
    }
    if (cancelled) std::rethrow_exception(cancelled);
    try {
      co_return outcome(job);
    } catch (const PostgresError& e) {
      if (attempt > 0 || !stale_statement(e, *this)) throw;
    }
  }
}

}  // namespace weave::pg::detail
