#pragma once
// Serving a stored file over HTTP with everything a browser and a CDN expect:
// Range (RFC 9110 §14: single range -> 206 + Content-Range, several ->
// multipart/byteranges, unsatisfiable -> 416 with "Content-Range: bytes */N",
// malformed -> ignored, full 200), HEAD, strong ETag, Last-Modified,
// If-None-Match / If-Modified-Since (304), If-Range, Accept-Ranges.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/server.h"

namespace hub::http {

struct ByteRange {
  uint64_t first = 0;  // inclusive
  uint64_t last = 0;   // inclusive
};

struct RangeSpec {
  enum Kind { kNone, kUnsatisfiable, kRanges } kind = kNone;  // kNone: serve whole
  std::vector<ByteRange> ranges;  // sorted and coalesced when kRanges
};

// Parses a Range header value against a representation of `size` bytes.
// Malformed or non-"bytes" units -> kNone (RFC: ignore). More than
// max_ranges ranges -> kNone.
RangeSpec ParseRange(std::string_view value, uint64_t size, size_t max_ranges = 16);

struct FileToServe {
  int fd = -1;                  // for sendfile; -1 -> read_at
  ReadAt read_at;               // used when fd < 0
  uint64_t size = 0;
  int64_t mtime_unix_nanos = 0;
  std::string etag;             // strong validator incl. quotes; derived if empty
  std::string content_type = "application/octet-stream";
  std::string cache_control;    // optional, e.g. "public, max-age=31536000, immutable"
  Headers extra_headers;        // e.g. Content-Disposition
};

// Derives a strong ETag from size and mtime: "\"<size hex>-<mtime ns hex>\"".
std::string MakeETag(uint64_t size, int64_t mtime_unix_nanos);

// Answers GET/HEAD for the file with all the rules above.
asio::awaitable<Result<void>> ServeFile(Exchange& ex, const FileToServe& file);

// Content-Type from a file name's extension ("video/mp4" for .mp4, ...);
// application/octet-stream when unknown.
std::string_view ContentTypeFor(std::string_view file_name);

}  // namespace hub::http
