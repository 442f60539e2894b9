// connect() and the statement calls of Connection; Row's accessors; PostgresError.
#include <netdb.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <new>
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
  return data().columns.size();
}
std::string_view Row::column_name(std::size_t index) const {
  if (index >= size()) throw std::out_of_range("no column " + std::to_string(index));
  return data().columns[index].name;
}
std::size_t Row::index_of(std::string_view name) const {
  const auto& columns = data().columns;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (name == columns[i].name) return i;
  }
  throw std::out_of_range("no column named \"" + std::string(name) + "\"");
}
bool Row::is_null(std::size_t index) const {
  return !field(index).text;
}
const detail::ResultData& Row::data() const noexcept {
  return *static_cast<const detail::ResultData*>(result_);
}
Field Row::field(std::size_t index) const {
  const detail::ResultData& data = this->data();
  if (index >= data.columns.size()) throw std::out_of_range("no column " + std::to_string(index));
  const detail::Column& column = data.columns[index];
  Field f;
  f.oid = column.oid;
  f.column = column.name;
  f.binary = column.binary;
  const int col = static_cast<int>(index);
  // A NULL has length 0: only an empty value needs the third call.
  const int length = PQgetlength(data.res, row_, col);
  if (length > 0 || PQgetisnull(data.res, row_, col) == 0) {
    f.text = std::string_view(PQgetvalue(data.res, row_, col), static_cast<std::size_t>(length));
  }
  return f;
}

namespace detail {
void free_result(const ResultCount* result) noexcept {
  const_cast<ResultData*>(static_cast<const ResultData*>(result))->destroy();
}

ResultData* ResultData::make(PGresult* r) {
  void* at = PQresultAlloc(r, sizeof(ResultData));
  if (at == nullptr) {
    PQclear(r);
    throw std::bad_alloc();
  }
  return ::new (at) ResultData(r);
}

void ResultData::describe() {
  const int n = PQnfields(res);
  const auto count = static_cast<std::size_t>(n);
  columns.data = columns.few;
  if (count > std::size(columns.few)) {
    void* at = PQresultAlloc(res, count * sizeof(Column));
    if (at == nullptr) throw std::bad_alloc();
    columns.data = ::new (at) Column[count];
  }
  columns.n = count;
  for (int i = 0; i < n; ++i) {
    Column& c = columns[static_cast<std::size_t>(i)];
    c.oid = PQftype(res, i);
    c.binary = PQfformat(res, i) == 1;
    c.name = PQfname(res, i);
  }
}
}  // namespace detail

// ---- connect -----------------------------------------------------------------------------------

namespace detail {
namespace {
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (;;) {
    const std::size_t comma = s.find(',', from);
    out.push_back(s.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}
std::string join_list(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}
bool is_literal_address(const std::string& h) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0) return false;
  freeaddrinfo(res);
  return true;
}

/// The `keys` a connection service defines, as libpq's service lookup finds them: the service
/// named by the conninfo's `service` or PGSERVICE, in PGSERVICEFILE (else ~/.pg_service.conf),
/// then in pg_service.conf of PGSYSCONFDIR (else Debian's libpq default). Values for the keys
/// the service leaves out stay empty.
void read_service(const std::string& service, std::map<std::string, std::string>& keys) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  std::vector<std::string> files;
  if (!env("PGSERVICEFILE").empty()) {
    files.push_back(env("PGSERVICEFILE"));
  } else if (!env("HOME").empty()) {
    files.push_back(env("HOME") + "/.pg_service.conf");
  }
  const std::string sysconf = env("PGSYSCONFDIR");
  files.push_back((sysconf.empty() ? std::string("/etc/postgresql-common") : sysconf) +
                  "/pg_service.conf");
  for (const std::string& path : files) {
    std::ifstream in(path);
    bool inside = false, found = false;
    for (std::string line; std::getline(in, line);) {
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      line.erase(0, first);
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
        line.pop_back();
      }
      if (line.front() == '[') {
        inside = line == "[" + service + "]";
        found = found || inside;
        continue;
      }
      const auto eq = line.find('=');
      if (!inside || eq == std::string::npos) continue;
      auto it = keys.find(line.substr(0, eq));
      if (it != keys.end() && it->second.empty()) it->second = line.substr(eq + 1);
    }
    if (found) return;  // libpq reads the system file only for a service the user's lacks
  }
}
}  // namespace

std::vector<std::pair<std::string, std::string>> resolve_hosts(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &error);
  if (opts == nullptr) {
    PQfreemem(error);
    return {};
  }
  std::string service;
  std::map<std::string, std::string> keys = {{"host", ""}, {"hostaddr", ""}, {"port", ""}};
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    const std::string key = o->keyword;
    const std::string value = o->val != nullptr ? o->val : "";
    if (keys.count(key) != 0) keys[key] = value;
    if (key == "service") service = value;
  }
  PQconninfoFree(opts);
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  // libpq's order: the conninfo, then its service's file, then the environment.
  if (service.empty()) service = env("PGSERVICE");
  if (!service.empty()) read_service(service, keys);
  std::string host = keys["host"], hostaddr = keys["hostaddr"], port = keys["port"];
  if (host.empty()) host = env("PGHOST");
  if (hostaddr.empty()) hostaddr = env("PGHOSTADDR");
  if (port.empty()) port = env("PGPORT");
  if (host.empty() || !hostaddr.empty()) return {};
  const std::vector<std::string> hosts = split_list(host);
  std::vector<std::string> ports = split_list(port);
  const bool port_each = ports.size() == hosts.size() && hosts.size() > 1;
  std::vector<std::string> out_hosts, out_addrs, out_ports;
  bool resolved = false;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    const std::string& h = hosts[i];
    auto keep = [&](std::string addr) {
      out_hosts.push_back(h);
      out_addrs.push_back(std::move(addr));
      if (port_each) out_ports.push_back(ports[i]);
    };
    if (h.empty() || h[0] == '/' || h[0] == '@' || is_literal_address(h)) {
      keep("");
      continue;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0) continue;  // libpq skips it too
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      char numeric[NI_MAXHOST];
      if (getnameinfo(a->ai_addr, a->ai_addrlen, numeric, sizeof numeric, nullptr, 0,
                      NI_NUMERICHOST) == 0) {
        keep(numeric);
        resolved = true;
      }
    }
    freeaddrinfo(res);
  }
  if (!resolved) return {};
  std::vector<std::pair<std::string, std::string>> out = {{"host", join_list(out_hosts)},
                                                          {"hostaddr", join_list(out_addrs)}};
  if (port_each) out.emplace_back("port", join_list(out_ports));
  return out;
}
}  // namespace detail

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
  // Every host name is resolved here, off the loop thread, and handed to libpq as hostaddr:
  // PQconnectPoll, on the loop, would otherwise look up each host after the first itself.
  auto started = std::make_shared<StartedConn>();
  auto start = [started, conninfo] {
    const auto resolved = detail::resolve_hosts(conninfo);
    std::vector<const char*> keys = {"dbname"}, values = {conninfo.c_str()};
    for (const auto& [k, v] : resolved) {
      keys.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    started->conn = PQconnectStartParams(keys.data(), values.data(), 1);
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
  r->describe();
  const int n = PQntuples(r->res);
  rows.reserve(static_cast<std::size_t>(n));
  r->refs += static_cast<std::size_t>(n);  // one reference per row, counted at once
  for (int i = 0; i < n; ++i) rows.emplace_back(r.get(), i);
  return rows;
}
}  // namespace

Coro<std::vector<Row>> Connection::fetch_params(Query q, Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(q, params, false);
  co_return rows_of(r);
}

Coro<std::optional<Row>> Connection::fetchrow_params(Query q, Params params) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(q, params, false);
  if (!r || PQntuples(r->res) == 0) co_return std::nullopt;
  r->describe();
  ++r->refs;
  co_return Row(r.get(), 0);
}

Coro<std::string> Connection::execute_params(Query q, Params params, bool simple) {
  auto state = open_state(state_);
  detail::ResultPtr r = co_await state->run(q, params, simple);
  co_return r ? std::string(PQcmdStatus(r->res)) : std::string();
}

Coro<PreparedStatement> Connection::prepare(Query q) {
  auto state = open_state(state_);
  std::string name = co_await state->prepare(q.sql);
  co_return PreparedStatement(state_, std::move(name), std::move(q.sql));
}

Coro<std::vector<Row>> PreparedStatement::fetch_params(Params params) {
  auto state = open_state(state_);
  const Query q(query_);
  detail::ResultPtr r = co_await state->run(q, params, false, &name_);
  co_return rows_of(r);
}

Coro<std::optional<Row>> PreparedStatement::fetchrow_params(Params params) {
  auto state = open_state(state_);
  const Query q(query_);
  detail::ResultPtr r = co_await state->run(q, params, false, &name_);
  if (!r || PQntuples(r->res) == 0) co_return std::nullopt;
  r->describe();
  ++r->refs;
  co_return Row(r.get(), 0);
}

Coro<std::string> PreparedStatement::execute_params(Params params) {
  auto state = open_state(state_);
  const Query q(query_);
  detail::ResultPtr r = co_await state->run(q, params, false, &name_);
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
