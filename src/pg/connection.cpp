// connect() and the statement calls of Connection; Row's accessors; PostgresError.
#include <stdexcept>
#include <utility>

#include "state.hpp"
#include "weave/errors.hpp"
#include "weave/task.hpp"
#include "weave/timeouts.hpp"

namespace weave::pg {

PostgresError::PostgresError(std::string sqlstate, std::string message, std::string detail,
                             std::string hint, std::string severity)
    : std::runtime_error(message + " (SQLSTATE " + sqlstate + ")"),
      sqlstate_(std::move(sqlstate)),
      message_(std::move(message)),
      detail_(std::move(detail)),
      hint_(std::move(hint)),
      severity_(std::move(severity)) {}

// ---- Row ---------------------------------------------------------------------------------------

std::size_t Row::size() const noexcept {
  return static_cast<std::size_t>(PQnfields(result_->res));
}
std::string_view Row::column_name(std::size_t index) const {
  if (index >= size()) throw std::out_of_range("no column " + std::to_string(index));
  return PQfname(result_->res, static_cast<int>(index));
}
std::size_t Row::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < size(); ++i) {
    if (name == PQfname(result_->res, static_cast<int>(i))) return i;
  }
  throw std::out_of_range("no column named \"" + std::string(name) + "\"");
}
bool Row::is_null(std::size_t index) const {
  return !field(index).text;
}
Field Row::field(std::size_t index) const {
  if (index >= size()) throw std::out_of_range("no column " + std::to_string(index));
  const int col = static_cast<int>(index);
  Field f;
  f.oid = PQftype(result_->res, col);
  f.column = PQfname(result_->res, col);
  if (PQgetisnull(result_->res, row_, col) == 0) {
    f.text = std::string_view(PQgetvalue(result_->res, row_, col),
                              static_cast<std::size_t>(PQgetlength(result_->res, row_, col)));
  }
  return f;
}

// ---- connect -----------------------------------------------------------------------------------

namespace {
/// Holds the PGconn that a worker thread starts, so that it is finished wherever the last
/// reference goes (the worker, when the connect was cancelled meanwhile).
struct StartedConn {
  PGconn* conn = nullptr;
  ~StartedConn() {
    if (conn != nullptr) PQfinish(conn);
  }
};

Coro<void> wait_socket(int fd, bool write) {
  EventLoop& loop = get_running_loop();
  Future<void> ready = loop.create_future<void>();
  struct Withdraw {
    EventLoop& loop;
    int fd;
    bool write;
    ~Withdraw() { write ? loop.remove_writer(fd) : loop.remove_reader(fd); }
  } withdraw{loop, fd, write};
  auto fire = [ready]() mutable {
    if (!ready.done()) ready.set_result();
  };
  write ? loop.add_writer(fd, fire) : loop.add_reader(fd, fire);
  co_await ready;
}

Coro<Connection> connect_now(std::string conninfo, ConnectOptions options) {
  // PQconnectStartParams resolves the first host name before it returns: off the loop thread.
  auto started = std::make_shared<StartedConn>();
  auto start = [started, conninfo] {
    const char* keys[] = {"dbname", nullptr};
    const char* values[] = {conninfo.c_str(), nullptr};
    started->conn = PQconnectStartParams(keys, values, 1);
  };
  co_await to_thread(start);
  auto state =
      std::make_shared<detail::ConnectionState>(std::exchange(started->conn, nullptr), options);
  PGconn* conn = state->conn;
  if (conn == nullptr) throw ConnectionFailureError("out of memory");
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  while (PQstatus(conn) != CONNECTION_BAD && poll != PGRES_POLLING_OK &&
         poll != PGRES_POLLING_FAILED) {
    co_await wait_socket(PQsocket(conn), poll == PGRES_POLLING_WRITING);
    poll = PQconnectPoll(conn);
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    throw ConnectionFailureError("cannot connect: " + detail::libpq_message(conn));
  }
  if (PQsetnonblocking(conn, 1) != 0) throw ConnectionFailureError(detail::libpq_message(conn));
  // The server's NOTICEs are not printed on stderr (libpq's default): asyncpg logs them only
  // for a listener that asked.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  state->start_watching();
  co_return Connection(std::move(state));
}
}  // namespace

Coro<Connection> connect(std::string conninfo, ConnectOptions options) {
  if (options.timeout) {
    auto t = *options.timeout;
    co_return co_await weave::timeout(t, connect_now(std::move(conninfo), std::move(options)));
  }
  co_return co_await connect_now(std::move(conninfo), std::move(options));
}

// ---- Connection --------------------------------------------------------------------------------

Connection::~Connection() = default;

namespace {
/// The state, shared for the whole statement: it stays valid even if the Connection object
/// goes away while the statement runs.
std::shared_ptr<detail::ConnectionState> open_state(
    const std::shared_ptr<detail::ConnectionState>& s) {
  if (!s) throw ConnectionDoesNotExistError("the connection is closed");
  return s;
}
std::vector<Row> rows_of(const detail::ResultPtr& r) {
  std::vector<Row> rows;
  if (!r) return rows;
  const int n = PQntuples(r->res);
  rows.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) rows.emplace_back(r, i);
  return rows;
}
}  // namespace

Coro<std::vector<Row>> Connection::fetch_params(Query q, Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(std::move(q), std::move(params), false);
  co_return rows_of(r);
}

Coro<std::optional<Row>> Connection::fetchrow_params(Query q, Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(std::move(q), std::move(params), false);
  if (!r || PQntuples(r->res) == 0) co_return std::nullopt;
  co_return Row(r, 0);
}

Coro<std::string> Connection::execute_params(Query q, Params params, bool simple) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(std::move(q), std::move(params), simple);
  co_return r ? std::string(PQcmdStatus(r->res)) : std::string();
}

Coro<PreparedStatement> Connection::prepare(Query q) {
  auto state = open_state(state_);
  std::string name = co_await state->prepare(q.sql);
  co_return PreparedStatement(state_, std::move(name), std::move(q.sql));
}

Coro<std::vector<Row>> PreparedStatement::fetch_params(Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(query_, std::move(params), false, name_);
  co_return rows_of(r);
}

Coro<std::optional<Row>> PreparedStatement::fetchrow_params(Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(query_, std::move(params), false, name_);
  if (!r || PQntuples(r->res) == 0) co_return std::nullopt;
  co_return Row(r, 0);
}

Coro<std::string> PreparedStatement::execute_params(Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(query_, std::move(params), false, name_);
  co_return r ? std::string(PQcmdStatus(r->res)) : std::string();
}

Coro<void> Connection::close() {
  terminate();
  co_return;
}

void Connection::terminate() noexcept {
  if (state_) state_->finish();
}

bool Connection::is_closed() const noexcept {
  return !state_ || !state_->lost.empty();
}

bool Connection::is_in_transaction() const noexcept {
  return state_ && state_->conn != nullptr && state_->lost.empty() &&
         PQtransactionStatus(state_->conn) != PQTRANS_IDLE;
}

int Connection::get_server_pid() const noexcept {
  return state_ && state_->conn != nullptr ? PQbackendPID(state_->conn) : 0;
}

}  // namespace weave::pg
