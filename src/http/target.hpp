#pragma once
// A request-target taken apart: its path, percent-decoded, and its query, decoded as a form.
#include <string>
#include <string_view>

#include "weave/http.hpp"

namespace weave::http::detail {

/// Decodes %XX escapes (and '+' as a space when `plus_is_space`) into `out`. False for a
/// malformed escape, or one that decodes to NUL.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space);

/// Splits `target` (origin-form, absolute-form or "*") into the decoded path and the raw query
/// string, and decodes the query into `query`. False when an escape is malformed.
bool split_target(std::string_view target, std::string& path, std::string_view& query_string,
                  QueryParams& query);

}  // namespace weave::http::detail
