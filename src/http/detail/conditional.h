#pragma once
// Validator comparisons of RFC 9110 §8.8.3 and §13, exposed for tests and
// fuzz/http_range_fuzz.cpp.

#include <cstdint>
#include <string_view>

namespace hub::http::detail {

// Does an If-Match / If-None-Match value ("*" or a list of entity-tags)
// match `etag` (with quotes, optionally W/)? `strong`: strong comparison
// (If-Match; weak tags never match), else weak (If-None-Match). A malformed
// list matches nothing from the point where it stops making sense.
bool EtagListMatches(std::string_view list, std::string_view etag, bool strong);

// If-Range (RFC 9110 §13.1.5): an entity-tag compared strongly with `etag`,
// or an HTTP-date equal to the Last-Modified second.
bool IfRangeMatches(std::string_view value, std::string_view etag, int64_t mtime_unix_seconds);

}  // namespace hub::http::detail
