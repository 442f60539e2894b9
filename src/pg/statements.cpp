// The per-connection prepared-statement cache: a statement seen before runs by name (the server
// skips parsing and planning); a new one is prepared and run in one pipeline, so that the miss
// costs no extra round trip.
#include <string>
#include <utility>
#include <vector>

#include "state.hpp"

namespace weave::pg::detail {

std::size_t StatementCache::hash_of(std::string_view sql, const Params& params) noexcept {
  std::size_t h = std::hash<std::string_view>{}(sql);
  for (const Param& p : params) h = (h ^ p.oid) * 0x100000001b3ull;  // FNV-1a's step per type
  return h;
}

bool StatementCache::Equal::operator()(const Probe& a, const Position& b) const noexcept {
  if (a.hash != b->hash || a.sql != b->sql || a.params.size() != b->types.size()) return false;
  for (std::size_t i = 0; i < b->types.size(); ++i) {
    if (a.params[i].oid != b->types[i]) return false;
  }
  return true;
}

const StatementCache::Entry* StatementCache::find(const Probe& probe) {
  auto it = entries.find(probe);
  if (it == entries.end()) return nullptr;
  if (*it != order.begin()) order.splice(order.begin(), order, *it);
  return &**it;
}

int result_format_for(const PGresult* res) noexcept {
  const int n = PQnfields(res);
  if (n == 0) return 0;
  for (int i = 0; i < n; ++i) {
    if (!binary_result_type(PQftype(res, i))) return 0;
  }
  return 1;
}

namespace {
StatementCache::Position find_id(std::list<StatementCache::Entry>& order, std::uint64_t id) {
  for (auto it = order.begin(); it != order.end(); ++it) {
    if (it->id == id) return it;
  }
  return order.end();
}
}  // namespace

void StatementCache::learn(std::uint64_t id, const PGresult* res) {
  auto it = find_id(order, id);  // just inserted: at the front, or near it
  if (it != order.end()) it->result_format = result_format_for(res);
}

void StatementCache::learn_types(std::uint64_t id, const PGresult* described) {
  auto it = find_id(order, id);
  if (it == order.end()) return;
  it->server_types.resize(static_cast<std::size_t>(PQnparams(described)));
  for (std::size_t i = 0; i < it->server_types.size(); ++i) {
    it->server_types[i] = PQparamtype(described, static_cast<int>(i));
  }
}

const StatementCache::Entry& StatementCache::insert(const Probe& probe,
                                                    std::optional<std::string>& evicted) {
  if (entries.size() >= capacity && !order.empty()) {
    auto oldest = std::prev(order.end());
    evicted = std::move(oldest->name);
    entries.erase(oldest);
    order.erase(oldest);
  }
  Entry e;
  e.sql = probe.sql;
  e.types.reserve(probe.params.size());
  for (const Param& p : probe.params) e.types.push_back(p.oid);
  e.hash = probe.hash;
  e.id = ++next_id;
  e.name = "weave_stmt_" + std::to_string(e.id);
  order.push_front(std::move(e));
  entries.insert(order.begin());
  return order.front();
}

void StatementCache::erase(std::uint64_t id) {
  if (id == 0) return;
  auto it = find_id(order, id);
  if (it == order.end()) return;
  entries.erase(it);
  order.erase(it);
}

Bound::Bound(const Params& params, const Oid* types, std::size_t ntypes)
    : n_(static_cast<int>(params.size())),
      values_(inline_values_),
      lengths_(inline_lengths_),
      formats_(inline_formats_) {
  const std::size_t n = params.size();
  if (n > kInline) {
    more_values_.resize(n);
    more_lengths_.resize(n);
    more_formats_.resize(n);
    values_ = more_values_.data();
    lengths_ = more_lengths_.data();
    formats_ = more_formats_.data();
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Param* p = &params[i];
    if (types != nullptr && i < ntypes && p->text) {
      std::optional<Param> other;
      if (p->binary && types[i] != p->oid) {
        other = to_text(*p);
      } else if (p->time != Param::Time::none) {
        other = time_in_binary(*p, types[i]);
      }
      if (other) {
        if (converted_.empty()) converted_.reserve(n);  // c_str() stays put
        converted_.push_back(std::move(*other));
        p = &converted_.back();
      }
    }
    values_[i] = p->text ? p->text->data() : nullptr;
    lengths_[i] = p->text ? static_cast<int>(p->text->size()) : 0;
    formats_[i] = p->binary ? 1 : 0;
  }
}

Sent ConnectionState::send_cached(const std::string& sql, const Params& params, bool own_pipeline) {
  const int n = static_cast<int>(params.size());
  Sent sent;
  const StatementCache::Probe probe{sql, params, StatementCache::hash_of(sql, params)};
  if (const StatementCache::Entry* hit = statements.find(probe)) {
    sent.entry = hit->id;
    // Prepared with the parameters' own types: only a time value (untyped) may go otherwise.
    const Bound bound(params, hit->server_types.data(), hit->server_types.size());
    if (PQsendQueryPrepared(conn, hit->name.c_str(), n, bound.values(), bound.lengths(),
                            bound.formats(), hit->result_format) == 0) {
      raise_send_failure();
    }
    return sent;
  }
  const Bound bound(params);
  std::optional<std::string> evicted;
  const StatementCache::Entry& entry = statements.insert(probe, evicted);
  sent.entry = entry.id;
  const char* name = entry.name.c_str();
  if (own_pipeline && PQenterPipelineMode(conn) == 0) raise_send_failure();
  sent.pipelined = true;
  if (evicted) {
    const std::string drop = "DEALLOCATE " + *evicted;
    if (PQsendQueryParams(conn, drop.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 0) {
      raise_send_failure();
    }
    ++sent.query_index;
  }
  if (PQsendPrepare(conn, name, sql.c_str(), n, entry.types.data()) == 0) raise_send_failure();
  sent.prepare_index = sent.query_index++;
  // The parameter types the server infers, for the next runs (no round trip of its own): a time
  // value then goes in binary where the parameter has its type.
  if (PQsendDescribePrepared(conn, name) == 0) raise_send_failure();
  sent.describe_index = sent.query_index++;
  if (PQsendQueryPrepared(conn, name, n, bound.values(), bound.lengths(), bound.formats(), 0) ==
          0 ||
      (own_pipeline && PQpipelineSync(conn) == 0)) {
    raise_send_failure();
  }
  return sent;
}

bool ConnectionState::read_available(const Sent& sent, PipelineRead& read) {
  while (result_ready()) {
    PGresult* r = PQgetResult(conn);
    if (r == nullptr) {
      ++read.index;
      continue;
    }
    const ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      return true;
    }
    if (s == PGRES_FATAL_ERROR) {
      if (read.index == sent.prepare_index) statements.erase(sent.entry);
      if (!read.error) {
        read.error = ResultPtr(r);
        continue;
      }
    } else if (read.index == sent.describe_index && s == PGRES_COMMAND_OK) {
      statements.learn_types(sent.entry, r);
    } else if (read.index == sent.query_index && s != PGRES_PIPELINE_ABORTED) {
      // A statement prepared just now ran in text: its columns pick the format of the next runs.
      if (sent.prepare_index >= 0 && s == PGRES_TUPLES_OK) statements.learn(sent.entry, r);
      read.last = ResultPtr(r);
      continue;
    }
    PQclear(r);  // the results of the others (prepare, DEALLOCATE) are not kept
  }
  return false;
}

Coro<std::pair<ResultPtr, ResultPtr>> ConnectionState::read_pipelined(const Sent& sent) {
  PipelineRead read;
  while (!read_available(sent, read)) co_await readable();
  PQexitPipelineMode(conn);
  co_return std::make_pair(std::move(read.last), std::move(read.error));
}

}  // namespace weave::pg::detail
