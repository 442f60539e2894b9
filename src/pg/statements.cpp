// The per-connection prepared-statement cache: a statement seen before runs by name (the server
// skips parsing and planning); a new one is prepared and run in one pipeline, so that the miss
// costs no extra round trip.
#include <string>
#include <utility>
#include <vector>

#include "state.hpp"

namespace weave::pg::detail {

const StatementCache::Entry* StatementCache::find(const std::string& key) {
  auto it = entries.find(key);
  if (it == entries.end()) return nullptr;
  order.splice(order.begin(), order, it->second.position);
  return &it->second;
}

int result_format_for(const PGresult* res) noexcept {
  const int n = PQnfields(res);
  if (n == 0) return 0;
  for (int i = 0; i < n; ++i) {
    if (!binary_result_type(PQftype(res, i))) return 0;
  }
  return 1;
}

void StatementCache::learn(const std::string& key, const PGresult* res) {
  auto it = entries.find(key);
  if (it != entries.end()) it->second.result_format = result_format_for(res);
}

std::string StatementCache::insert(const std::string& key, std::optional<std::string>& evicted) {
  if (entries.size() >= capacity && !order.empty()) {
    auto oldest = entries.find(order.back());
    evicted = std::move(oldest->second.name);
    entries.erase(oldest);
    order.pop_back();
  }
  order.push_front(key);
  std::string name = "weave_stmt_" + std::to_string(++next_id);
  entries.emplace(key, Entry{name, order.begin()});
  return name;
}

void StatementCache::erase(const std::string& key) {
  auto it = entries.find(key);
  if (it == entries.end()) return;
  order.erase(it->second.position);
  entries.erase(it);
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
    if (p->binary && p->text && types != nullptr && i < ntypes && types[i] != p->oid) {
      if (converted_.empty()) converted_.reserve(n);  // c_str() stays put
      converted_.push_back(to_text(*p));
      p = &converted_.back();
    }
    values_[i] = p->text ? p->text->data() : nullptr;
    lengths_[i] = p->text ? static_cast<int>(p->text->size()) : 0;
    formats_[i] = p->binary ? 1 : 0;
  }
}

namespace {
std::string cache_key(const std::string& sql, const Params& params) {
  std::string key;
  for (const Param& p : params) key += std::to_string(p.oid) + ',';
  key += '\n';
  key += sql;
  return key;
}
}  // namespace

Sent ConnectionState::send_cached(const std::string& sql, const Params& params, bool own_pipeline) {
  const Bound bound(params);  // prepared with the parameters' own types
  const int n = bound.count();
  Sent sent;
  sent.key = cache_key(sql, params);
  if (const StatementCache::Entry* hit = statements.find(sent.key)) {
    if (PQsendQueryPrepared(conn, hit->name.c_str(), n, bound.values(), bound.lengths(),
                            bound.formats(), hit->result_format) == 0) {
      raise_send_failure();
    }
    return sent;
  }
  std::optional<std::string> evicted;
  const std::string name = statements.insert(sent.key, evicted);
  if (own_pipeline && PQenterPipelineMode(conn) == 0) raise_send_failure();
  sent.pipelined = true;
  if (evicted) {
    const std::string drop = "DEALLOCATE " + *evicted;
    if (PQsendQueryParams(conn, drop.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) == 0) {
      raise_send_failure();
    }
    ++sent.query_index;
  }
  std::vector<Oid> types(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) types[i] = params[i].oid;
  if (PQsendPrepare(conn, name.c_str(), sql.c_str(), n, types.data()) == 0) raise_send_failure();
  sent.prepare_index = sent.query_index++;
  if (PQsendQueryPrepared(conn, name.c_str(), n, bound.values(), bound.lengths(), bound.formats(),
                          0) == 0 ||
      (own_pipeline && PQpipelineSync(conn) == 0)) {
    raise_send_failure();
  }
  return sent;
}

Coro<std::pair<ResultPtr, ResultPtr>> ConnectionState::read_pipelined(const Sent& sent, bool exit) {
  ResultPtr last, error;
  int index = 0;  // which statement of the pipeline the next result belongs to
  for (;;) {
    while (!result_ready()) co_await wait_io(false);
    ResultPtr r = take_result();
    if (!r) {
      ++index;
      continue;
    }
    ExecStatusType s = PQresultStatus(r->res);
    if (s == PGRES_PIPELINE_SYNC) break;
    if (s == PGRES_FATAL_ERROR) {
      if (index == sent.prepare_index) statements.erase(sent.key);
      if (!error) error = std::move(r);
    } else if (index == sent.query_index && s != PGRES_PIPELINE_ABORTED) {
      // A statement prepared just now ran in text: its columns pick the format of the next runs.
      if (sent.prepare_index >= 0 && s == PGRES_TUPLES_OK) statements.learn(sent.key, r->res);
      last = std::move(r);
    }
  }
  if (exit) PQexitPipelineMode(conn);
  co_return std::make_pair(std::move(last), std::move(error));
}

}  // namespace weave::pg::detail
