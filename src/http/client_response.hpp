#pragma once
// What a ClientResponse holds: the head, the connection until the body has been read, and the
// decoded bytes not handed out yet.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client_connection.hpp"
#include "client_decoder.hpp"
#include "client_pool.hpp"
#include "weave/http.hpp"

namespace weave::http::detail {

struct ClientResponseState {
  ClientResponseState(std::shared_ptr<ClientSessionState> s, std::shared_ptr<ClientConnection> c,
                      URL u, std::string m, ReadLimits l, bool decode);

  /// Gets more decoded bytes into `pending`; false once the body has ended (and nothing came).
  Coro<bool> fill();
  /// Hands the connection back: pooled if the body ended on a reusable connection.
  void release() noexcept;
  /// Takes up to `n` bytes of `pending`.
  std::string take(std::size_t n);

  ResponseHead head;
  URL url;
  std::string method;
  std::vector<std::pair<int, std::string>> history;
  std::shared_ptr<ClientSessionState> session;
  std::shared_ptr<ClientConnection> conn;
  ReadLimits limits;
  std::unique_ptr<BodyDecoder> decoder;
  std::string pending;
  std::optional<std::string> body;  ///< read()'s result, kept
  bool eof = false;
  ClientContent content{this};
};

}  // namespace weave::http::detail
