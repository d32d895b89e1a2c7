// Fuzzes the request path the server runs on untrusted bytes: FindHeadEnd,
// ParseRequestHead (Beast's request_parser<empty_body> plus our checks),
// Router::Match on the parsed request, and the chunked body decoder on the
// bytes after the head, fed in pieces of varying size.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/detail/chunked.h"
#include "http/detail/request_head.h"
#include "http/server.h"

namespace {

using hub::http::Router;
namespace detail = hub::http::detail;

const Router& TheRouter() {
  static const Router* router = [] {
    auto* r = new Router;
    // Handlers are never called here: only matching is fuzzed.
    r->Add("GET", "/api/videos/{id}", {});
    r->Add("PATCH", "/api/videos/{id}", {});
    r->Add("GET", "/static/{path...}", {});
    r->Add("POST", "/files/", {});
    r->Add("GET", "/", {});
    return r;
  }();
  return *router;
}

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t knobs = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  detail::HeadLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_header_count = 16;
  size_t end = detail::FindHeadEnd(in, limits.max_header_bytes);
  std::string_view body = in;
  if (end != std::string_view::npos) {
    Check(end >= 4 && end <= limits.max_header_bytes && in.substr(end - 4, 4) == "\r\n\r\n");
    detail::RequestHead head;
    auto err = detail::ParseRequestHead(in.substr(0, end), limits, &head);
    if (err) {
      Check(err->status >= 400 && err->status <= 505 && !err->code.empty());
    } else {
      const hub::http::Request& req = head.request;
      Check(head.version == 10 || head.version == 11);
      Check(req.headers().size() <= limits.max_header_count);
      Check(req.path() == "*" || (!req.path().empty() && req.path().front() == '/'));
      Check(req.path().find('\0') == std::string_view::npos);
      Check(!(req.chunked() && req.content_length()));
      (void)req.header("content-length");
      (void)req.query("q");
      int status = 0;
      std::string allow;
      hub::http::Request copy = req;
      const auto* handler = TheRouter().Match(copy, &status, &allow);
      Check(handler != nullptr || status == 404 || status == 405);
      for (const auto& [name, value] : copy.params_) {
        Check(value.find('\0') == std::string::npos);
      }
    }
    body = in.substr(end);
  }

  // The chunked decoder on whatever follows, in pieces of 1..16 bytes into an
  // output buffer of 1..16 bytes, with direct reads mixed in.
  detail::ChunkedDecoder decoder;
  const size_t in_step = (knobs & 15) + 1;
  std::vector<char> out(((knobs >> 4) & 15) + 1);
  size_t decoded = 0;
  while (!body.empty() && !decoder.done() && !decoder.failed()) {
    if (uint64_t direct = decoder.data_remaining(); direct > 0 && (knobs & 1)) {
      size_t n = static_cast<size_t>(std::min<uint64_t>({direct, body.size(), out.size()}));
      decoder.ConsumeData(n);
      body.remove_prefix(n);
      decoded += n;
      continue;
    }
    std::string_view piece = body.substr(0, in_step);
    auto step = decoder.Decode(piece, out);
    Check(step.consumed <= piece.size() && step.produced <= out.size());
    Check(step.produced <= step.consumed);
    if (step.consumed == 0 && !decoder.done() && !decoder.failed()) {
      // Only possible when the output is full, which a fresh call cannot be.
      Check(false);
    }
    body.remove_prefix(step.consumed);
    decoded += step.produced;
  }
  (void)decoded;
  return 0;
}
