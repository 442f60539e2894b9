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
  return result_->ncolumns;
}
std::string_view Row::column_name(std::size_t index) const {
  if (index >= size()) detail::no_column(index);
  return result_->columns[index].name;
}
std::size_t Row::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < result_->ncolumns; ++i) {
    if (name == result_->columns[i].name) return i;
  }
  throw std::out_of_range("no column named \"" + std::string(name) + "\"");
}
bool Row::is_null(std::size_t index) const {
  if (index >= size()) detail::no_column(index);
  return value_at(index) == nullptr;
}

namespace detail {
void free_result(const ResultCount* result) noexcept {
  const_cast<ResultData*>(static_cast<const ResultData*>(result))->destroy();
}

std::size_t field_length(const ResultCount* result, int row, std::size_t column) noexcept {
  return static_cast<std::size_t>(PQgetlength(result->res, row, static_cast<int>(column)));
}
bool field_is_null(const ResultCount* result, int row, std::size_t column) noexcept {
  return PQgetisnull(result->res, row, static_cast<int>(column)) != 0;
}

void no_column(std::size_t index) {
  throw std::out_of_range("no column " + std::to_string(index));
}

ResultData* ResultData::make(PGresult* r) {
  void* at = PQresultAlloc(r, sizeof(ResultData));
  if (at == nullptr) {
    PQclear(r);
    throw std::bad_alloc();
  }
  return ::new (at) ResultData(r);
}

namespace {
/// The size of a binary value of type `oid` when the type has one, else Column::kAskLength.
int fixed_width(unsigned oid) noexcept {
  switch (oid) {
    case 16:  // bool
    case 18:  // "char"
      return 1;
    case 21:  // int2
      return 2;
    case 23:    // int4
    case 26:    // oid
    case 700:   // float4
    case 1082:  // date
      return 4;
    case 20:    // int8
    case 701:   // float8
    case 1114:  // timestamp
    case 1184:  // timestamptz
      return 8;
    case 1186:  // interval
    case 2950:  // uuid
      return 16;
    default:
      return Column::kAskLength;
  }
}

/// libpq points a NULL field's value at a byte inside the PGresult itself (its `null_field`),
/// the same byte for every NULL of the result, and a value, even an empty one, at memory of
/// its own: so a field is NULL exactly when its value pointer is that byte, and one call
/// (PQgetvalue) tells both. That is libpq's implementation, not its documented contract: the
/// offset of that byte is found once on a result built through the public API, and -1 (every
/// NULL then asked with PQgetisnull) when libpq does not behave so.
std::ptrdiff_t null_field_offset() noexcept {
  static const std::ptrdiff_t offset = [] {
    PGresult* r = PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK);
    if (r == nullptr) return std::ptrdiff_t{-1};
    char name[] = "n";
    PGresAttDesc column{name, 0, 0, 0, 23, 4, -1};
    std::ptrdiff_t found = -1;
    if (PQsetResultAttrs(r, 1, &column) != 0 && PQsetvalue(r, 0, 0, nullptr, -1) != 0 &&
        PQsetvalue(r, 1, 0, name, 1) != 0 && PQgetisnull(r, 0, 0) == 1) {
      const char* null_value = PQgetvalue(r, 0, 0);
      const std::ptrdiff_t at = null_value - reinterpret_cast<const char*>(r);
      // Inside the result's own struct, and not where a value goes.
      if (at >= 0 && at < 1024 && PQgetvalue(r, 1, 0) != null_value) found = at;
    }
    PQclear(r);
    return found;
  }();
  return offset;
}

/// How Row::get reads a column directly: a binary column of a type with one form and a known
/// length (a fixed size every row has, or text up to its terminator).
Column::Kind kind_of(const Column& c) noexcept {
  using Kind = Column::Kind;
  struct Direct {
    unsigned oid;
    Kind kind;
  };
  static constexpr Direct fixed[] = {{16, Kind::boolean}, {18, Kind::character}, {21, Kind::int2},
                                     {23, Kind::int4},    {20, Kind::int8},      {26, Kind::oid},
                                     {700, Kind::float4}, {701, Kind::float8}};
  if (!c.binary) return Kind::none;
  if (c.width == Column::kTerminated) return Kind::text;
  if (c.width <= 0) return Kind::none;  // a fixed size the first row did not show
  for (const Direct& d : fixed) {
    if (d.oid == c.oid) return d.kind;
  }
  return Kind::none;
}

/// How a column's lengths are found: a fixed binary size (when the first row has it: a size is
/// not trusted that a row does not show), a terminator, or libpq's.
int width_of(const PGresult* res, int column, unsigned oid, bool binary) noexcept {
  if (!binary) return Column::kAskLength;
  switch (oid) {
    case 19:    // name
    case 25:    // text
    case 1042:  // bpchar
    case 1043:  // varchar
      return Column::kTerminated;
    default:
      break;
  }
  const int width = fixed_width(oid);
  if (width == Column::kAskLength || PQntuples(res) == 0 || PQgetisnull(res, 0, column) != 0) {
    return width;
  }
  return PQgetlength(res, 0, column) == width ? width : Column::kAskLength;
}
}  // namespace

void ResultData::describe() {
  const int n = PQnfields(res);
  const auto count = static_cast<std::size_t>(n);
  Column* described = few_columns;
  if (count > std::size(few_columns)) {
    void* at = PQresultAlloc(res, count * sizeof(Column));
    if (at == nullptr) throw std::bad_alloc();
    described = ::new (at) Column[count];
  }
  const std::ptrdiff_t null_at = null_field_offset();
  null_value = null_at >= 0 ? reinterpret_cast<const char*>(res) + null_at : nullptr;
  for (int i = 0; i < n; ++i) {
    Column& c = described[static_cast<std::size_t>(i)];
    c.oid = PQftype(res, i);
    c.binary = PQfformat(res, i) == 1;
    c.name = PQfname(res, i);
    c.width = width_of(res, i, c.oid, c.binary);
    // Row::get's direct reads tell NULLs by that address alone: without it, none.
    if (null_value != nullptr) c.kind = kind_of(c);
  }
  columns = described;
  ncolumns = count;
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
  const int n = PQntuples(r->res);
  r->describe();
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
