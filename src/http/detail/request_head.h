#pragma once
// Request-head parsing shared by the server and fuzz/http_head_fuzz.cpp, so
// the fuzzer drives the exact code path the server runs. Beast lives only in
// request_head.cpp (a Beast TU costs ~10 s and ~0.9 GB to compile).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"

namespace hub::http::detail {

struct HeadLimits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_header_count = 100;
};

// A parsed head: the request plus what the connection needs to frame it.
struct RequestHead {
  Request request;
  unsigned version = 11;         // 10 or 11
  bool keep_alive = true;        // HTTP/1.1 rules (Connection header, version)
  bool expect_continue = false;  // "Expect: 100-continue" on HTTP/1.1
};

// Why a head was refused; the server answers JsonError(status, code, message)
// and closes the connection.
struct HeadError {
  int status = 400;
  std::string_view code;  // static string
  std::string message;
};

// Where the head ends in `buffered` (the index just past the blank line), or
// npos if no blank line occurs within the first `max_header_bytes` bytes.
// `from` lets a caller skip bytes already searched.
size_t FindHeadEnd(std::string_view buffered, size_t max_header_bytes, size_t from = 0);

// Parses a complete head (request line, fields, blank line) with Beast's
// request_parser<empty_body> plus our own checks: header count (431), HTTP
// version (505), Host on HTTP/1.1, Content-Length / Transfer-Encoding
// framing (both present, invalid or conflicting lengths -> 400; a coding
// other than a single "chunked" -> 501), Expect (417 unless 100-continue),
// the request-target (origin-form, absolute-form, "*" for OPTIONS), the
// percent-decoded path (no NUL, no "." or ".." segments) and the query.
// Fills *out, reusing the capacity of its strings; on error *out is
// unspecified. remote_address is left untouched.
std::optional<HeadError> ParseRequestHead(std::string_view head, const HeadLimits& limits,
                                          RequestHead* out);

// Splits "a=1&b=x+y" into decoded pairs ('+' is a space). False on a
// malformed escape or a decoded NUL.
bool ParseQuery(std::string_view query, Request* out);

}  // namespace hub::http::detail
