#include "http/detail/request_head.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace hub::http::detail {
namespace {

namespace beast_http = boost::beast::http;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

HeadError Bad(int status, std::string_view code, std::string message) {
  return HeadError{status, code, std::move(message)};
}

// Keeps the capacity of `out` (the strings live as long as the connection).
void Assign(std::string& out, std::string_view in) { out.assign(in.data(), in.size()); }

// "." and ".." segments would let a handler that maps {path...} onto a
// directory escape it; browsers never send them (they resolve them first).
bool HasDotSegment(std::string_view path) {
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    if (seg == "." || seg == "..") return true;
    i = j + 1;
  }
  return false;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// PercentDecode(in, false) into *out, keeping its capacity.
bool DecodePathInto(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (in.size() - i < 3) return false;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out->push_back(c);
  }
  return true;
}

}  // namespace

size_t FindHeadEnd(std::string_view buffered, size_t max_header_bytes, size_t from) {
  std::string_view window = buffered.substr(0, std::min(buffered.size(), max_header_bytes));
  if (from >= 3) from -= 3;  // the terminator may straddle the last search's end
  size_t pos = window.find("\r\n\r\n", std::min(from, window.size()));
  return pos == std::string_view::npos ? std::string_view::npos : pos + 4;
}

bool ParseQuery(std::string_view query, Request* out) {
  size_t n = 0;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    auto key = PercentDecode(piece.substr(0, eq), true);
    auto value = PercentDecode(
        eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1), true);
    if (!key || !value) return false;
    if (n < out->query_.size()) {
      out->query_[n].first = std::move(*key);
      out->query_[n].second = std::move(*value);
    } else {
      out->query_.emplace_back(std::move(*key), std::move(*value));
    }
    ++n;
  }
  out->query_.resize(n);
  return true;
}

std::optional<HeadError> ParseRequestHead(std::string_view head, const HeadLimits& limits,
                                          RequestHead* out) {
  beast_http::request_parser<beast_http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // bodies are the handler's call
  parser.eager(false);
  boost::system::error_code ec;
  size_t used = parser.put(boost::asio::const_buffer(head.data(), head.size()), ec);
  if (ec == beast_http::error::header_limit) {
    return Bad(431, "header_too_large", "The request head is too large; send fewer or shorter headers.");
  }
  if (ec == beast_http::error::bad_content_length) {
    return Bad(400, "bad_content_length",
               "Content-Length is invalid, conflicting, or sent with Transfer-Encoding.");
  }
  if (ec == beast_http::error::bad_transfer_encoding) {
    return Bad(400, "bad_transfer_encoding",
               "Transfer-Encoding is repeated or sent with Content-Length.");
  }
  if (ec == beast_http::error::bad_version) {
    // Beast refuses both a malformed version and one other than 1.0/1.1.
    std::string_view line = head.substr(0, head.find("\r\n"));
    std::string_view version = line.substr(line.rfind(' ') + 1);
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && digit(version[5]) &&
        version[6] == '.' && digit(version[7])) {
      return Bad(505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are supported.");
    }
  }
  if (ec || !parser.is_header_done() || used != head.size()) {
    return Bad(400, "bad_request",
               std::string("Malformed request head (") + ec.message() + "); send valid HTTP/1.1.");
  }
  const auto& msg = parser.get();
  out->version = msg.version();
  if (out->version != 10 && out->version != 11) {
    return Bad(505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are supported.");
  }
  Request& req = out->request;
  Assign(req.method_, msg.method_string());
  Assign(req.target_, msg.target());

  size_t count = 0, host_count = 0, te_count = 0;
  bool te_ok = true;
  std::optional<std::string_view> expect;
  for (const auto& field : msg) {
    std::string_view name = field.name_string();
    std::string_view value = field.value();
    if (++count > limits.max_header_count) {
      return Bad(431, "too_many_headers", "The request has too many header fields; send fewer.");
    }
    if (value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
      return Bad(400, "bad_header", "A header value holds NUL, CR or LF.");
    }
    if (count - 1 < req.headers_.size()) {
      Assign(req.headers_[count - 1].first, name);
      Assign(req.headers_[count - 1].second, value);
    } else {
      req.headers_.emplace_back(name, value);
    }
    if (IEquals(name, "host")) {
      ++host_count;
    } else if (IEquals(name, "transfer-encoding")) {
      // Only a single "chunked" is decoded; anything else (gzip, chunked
      // twice) would leave the body's end unknown.
      std::string_view list = value;
      while (true) {
        size_t comma = list.find(',');
        std::string_view token = TrimOws(list.substr(0, comma));
        if (!token.empty()) {
          ++te_count;
          if (!IEquals(token, "chunked")) te_ok = false;
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    } else if (IEquals(name, "expect")) {
      if (expect) return Bad(417, "expectation_failed", "Send at most one Expect header.");
      expect = value;
    }
  }
  req.headers_.resize(count);

  if (out->version == 11 && host_count != 1) {
    return Bad(400, "bad_host", "An HTTP/1.1 request needs exactly one Host header.");
  }
  if (te_count > 0 || parser.chunked()) {
    if (out->version == 10) {
      return Bad(400, "bad_transfer_encoding", "HTTP/1.0 requests cannot use Transfer-Encoding.");
    }
    if (!te_ok || te_count != 1 || !parser.chunked()) {
      return Bad(501, "unsupported_transfer_encoding",
                 "Only 'Transfer-Encoding: chunked' is supported for request bodies.");
    }
  }
  req.chunked_ = parser.chunked();
  if (auto len = parser.content_length()) {
    req.content_length_ = *len;
  } else {
    req.content_length_.reset();
  }
  out->expect_continue = false;
  if (expect) {
    if (!IEquals(TrimOws(*expect), "100-continue")) {
      return Bad(417, "expectation_failed", "Only 'Expect: 100-continue' is supported.");
    }
    out->expect_continue = out->version == 11;
  }
  out->keep_alive = parser.keep_alive();

  // Request-target forms (RFC 9112 §3.2).
  std::string_view target = req.target_;
  std::string_view raw_path;
  std::string_view query;
  if (!target.empty() && target.front() == '/') {
    raw_path = target;
  } else if (target == "*") {
    if (req.method_ != "OPTIONS") {
      return Bad(400, "bad_target", "'*' is a request-target only for OPTIONS.");
    }
    raw_path = target;
  } else {
    size_t scheme_end = target.find("://");
    std::string_view scheme =
        scheme_end == std::string_view::npos ? std::string_view{} : target.substr(0, scheme_end);
    if (!IEquals(scheme, "http") && !IEquals(scheme, "https")) {
      return Bad(400, "bad_target", "The request-target must be a path like /api/videos.");
    }
    std::string_view rest = target.substr(scheme_end + 3);
    size_t path_start = rest.find_first_of("/?");
    raw_path = path_start == std::string_view::npos ? std::string_view("/") : rest.substr(path_start);
    if (raw_path.front() == '?') {
      query = raw_path.substr(1);
      raw_path = "/";
    }
  }
  if (size_t q = raw_path.find('?'); q != std::string_view::npos) {
    query = raw_path.substr(q + 1);
    raw_path = raw_path.substr(0, q);
  }
  if (!DecodePathInto(raw_path, &req.path_)) {
    return Bad(400, "bad_path", "The path has a malformed %-escape or an encoded NUL.");
  }
  if (HasDotSegment(req.path_)) {
    return Bad(400, "bad_path", "The path has '.' or '..' segments; send a normalized path.");
  }
  if (!ParseQuery(query, &req)) {
    return Bad(400, "bad_query", "The query has a malformed %-escape or an encoded NUL.");
  }
  req.params_.clear();
  req.route_.clear();
  return std::nullopt;
}

}  // namespace hub::http::detail
