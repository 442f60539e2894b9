// Routing (aiohttp's UrlDispatcher) and the decoding of a request-target into path and query.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <string_view>

#include "weave/errors.hpp"
#include "weave/http.hpp"

namespace weave::http {
namespace {
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  path.remove_prefix(1);  // the leading '/'
  while (true) {
    std::size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}
}  // namespace

void Router::add_route(std::string method, std::string path, Handler handler) {
  if (!handler) throw ValueError("add_route: empty handler");
  if (path.empty() || path.front() != '/') {
    throw ValueError("add_route: a path starts with '/': " + path);
  }
  Route route{std::move(method), {}, std::move(handler)};
  std::vector<std::string_view> parts = split_path(path);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (part.find_first_of("{}") == std::string_view::npos) {
      route.segments.push_back({std::string(part), Segment::kLiteral});
      continue;
    }
    if (part.size() < 3 || part.front() != '{' || part.back() != '}') {
      throw ValueError("add_route: a parameter is a whole segment, {name}: " + path);
    }
    std::string_view name = part.substr(1, part.size() - 2);
    Segment::Kind kind = Segment::kParameter;
    if (name.ends_with(":.*")) {
      if (i + 1 != parts.size()) throw ValueError("add_route: {name:.*} comes last: " + path);
      name.remove_suffix(3);
      kind = Segment::kTail;
    }
    if (name.empty() || name.find_first_of("{}:/") != std::string_view::npos) {
      throw ValueError("add_route: malformed parameter in " + path);
    }
    route.segments.push_back({std::string(name), kind});
  }
  routes_.push_back(std::move(route));
}

void Router::add_get(std::string path, Handler handler) {
  Handler copy = handler;
  add_route("GET", path, std::move(handler));
  add_route("HEAD", std::move(path), std::move(copy));
}
void Router::add_post(std::string path, Handler handler) {
  add_route("POST", std::move(path), std::move(handler));
}
void Router::add_put(std::string path, Handler handler) {
  add_route("PUT", std::move(path), std::move(handler));
}
void Router::add_patch(std::string path, Handler handler) {
  add_route("PATCH", std::move(path), std::move(handler));
}
void Router::add_delete(std::string path, Handler handler) {
  add_route("DELETE", std::move(path), std::move(handler));
}

bool Router::match(const Route& route, std::string_view path,
                   std::vector<std::pair<std::string, std::string>>* params) {
  if (path.empty() || path.front() != '/') return false;
  std::string_view rest = path.substr(1);
  bool exhausted = false;  // every part of the path is taken
  for (const Segment& seg : route.segments) {
    if (seg.kind == Segment::kTail) {
      if (params != nullptr) params->emplace_back(seg.text, exhausted ? "" : std::string(rest));
      return true;
    }
    if (exhausted) return false;
    std::size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    exhausted = slash == std::string_view::npos;
    rest = exhausted ? std::string_view() : rest.substr(slash + 1);
    if (seg.kind == Segment::kLiteral) {
      if (part != seg.text) return false;
    } else {
      if (part.empty()) return false;
      if (params != nullptr) params->emplace_back(seg.text, std::string(part));
    }
  }
  return exhausted;
}

Router::Resolution Router::resolve(std::string_view method, std::string_view path) const {
  Resolution r;
  for (const Route& route : routes_) {
    if (route.method != method && route.method != "*") continue;
    r.match_info.clear();
    if (match(route, path, &r.match_info)) {
      r.handler = &route.handler;
      return r;
    }
  }
  r.match_info.clear();
  std::vector<std::string_view> methods;
  for (const Route& route : routes_) {
    if (!match(route, path, nullptr)) continue;
    if (std::find(methods.begin(), methods.end(), route.method) != methods.end()) continue;
    methods.push_back(route.method);
    if (!r.allow.empty()) r.allow += ", ";
    r.allow += route.method;
  }
  r.status = r.allow.empty() ? 404 : 405;
  return r;
}

}  // namespace weave::http
