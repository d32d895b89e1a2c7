#include "http/file_response.h"

#include <algorithm>
#include <array>
#include <limits>
#include <random>

#include "core/clock.h"
#include "http/detail/conditional.h"

namespace hub::http {
namespace {

char Lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return Lower(x) == Lower(y); });
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// 1*DIGIT, saturating at UINT64_MAX (a huge first-pos is simply unsatisfiable).
bool ParseDigits(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    v = v > (std::numeric_limits<uint64_t>::max() - d) / 10 ? std::numeric_limits<uint64_t>::max()
                                                             : v * 10 + d;
  }
  *out = v;
  return true;
}

int64_t FloorSeconds(int64_t unix_nanos) {
  int64_t s = unix_nanos / 1'000'000'000;
  if (unix_nanos % 1'000'000'000 < 0) --s;
  return s;
}

std::string ContentRange(uint64_t first, uint64_t last, uint64_t size) {
  return "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size);
}

std::string MakeBoundary() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string b = "stream-hub-";
  for (int i = 0; i < 2; ++i) {
    uint64_t v = rng();
    for (int j = 0; j < 16; ++j, v >>= 4) b.push_back(kHex[v & 15]);
  }
  return b;
}

}  // namespace

namespace detail {

bool EtagListMatches(std::string_view list, std::string_view etag, bool strong) {
  list = TrimOws(list);
  if (list == "*") return true;
  const bool etag_weak = etag.substr(0, 2) == "W/";
  if (strong && etag_weak) return false;
  const std::string_view opaque = etag_weak ? etag.substr(2) : etag;
  size_t i = 0;
  while (i < list.size()) {
    char c = list[i];
    if (c == ' ' || c == '\t' || c == ',') {
      ++i;
      continue;
    }
    bool weak = false;
    if (list.substr(i, 2) == "W/") {
      weak = true;
      i += 2;
    }
    if (i >= list.size() || list[i] != '"') return false;
    size_t close = list.find('"', i + 1);
    if (close == std::string_view::npos) return false;
    std::string_view tag = list.substr(i, close - i + 1);
    i = close + 1;
    if (strong && weak) continue;
    if (tag == opaque) return true;
  }
  return false;
}

bool IfRangeMatches(std::string_view value, std::string_view etag, int64_t mtime_unix_seconds) {
  value = TrimOws(value);
  if (value.empty()) return false;
  if (value.front() == '"') return etag.substr(0, 2) != "W/" && value == etag;
  if (value.substr(0, 2) == "W/") return false;  // weak tags never match If-Range
  int64_t t = ParseHttpDate(value);
  return t >= 0 && t == mtime_unix_seconds;
}

}  // namespace detail

RangeSpec ParseRange(std::string_view value, uint64_t size, size_t max_ranges) {
  RangeSpec none;
  value = TrimOws(value);
  size_t eq = value.find('=');
  if (eq == std::string_view::npos || !IEquals(TrimOws(value.substr(0, eq)), "bytes")) return none;
  std::string_view set = value.substr(eq + 1);
  std::vector<ByteRange> ranges;
  size_t specs = 0;
  for (;;) {
    size_t comma = set.find(',');
    std::string_view spec = TrimOws(set.substr(0, comma));
    if (!spec.empty()) {  // empty list elements are allowed (RFC 9110 §5.6.1)
      if (++specs > max_ranges) return none;
      size_t dash = spec.find('-');
      if (dash == std::string_view::npos) return none;
      std::string_view a = TrimOws(spec.substr(0, dash));
      std::string_view b = TrimOws(spec.substr(dash + 1));
      if (a.empty()) {  // suffix-range: the last n bytes
        uint64_t n = 0;
        if (!ParseDigits(b, &n)) return none;
        if (n > 0 && size > 0) ranges.push_back({size - std::min(n, size), size - 1});
      } else {
        uint64_t first = 0, last = std::numeric_limits<uint64_t>::max();
        if (!ParseDigits(a, &first)) return none;
        if (!b.empty() && (!ParseDigits(b, &last) || last < first)) return none;
        if (first < size) ranges.push_back({first, std::min(last, size - 1)});
      }
    }
    if (comma == std::string_view::npos) break;
    set.remove_prefix(comma + 1);
  }
  if (specs == 0) return none;
  if (ranges.empty()) return RangeSpec{RangeSpec::kUnsatisfiable, {}};
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& x, const ByteRange& y) { return x.first < y.first; });
  std::vector<ByteRange> merged;
  merged.reserve(ranges.size());
  for (const ByteRange& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().last + 1) {  // overlapping or adjacent
      merged.back().last = std::max(merged.back().last, r.last);
    } else {
      merged.push_back(r);
    }
  }
  return RangeSpec{RangeSpec::kRanges, std::move(merged)};
}

std::string MakeETag(uint64_t size, int64_t mtime_unix_nanos) {
  static const char* kHex = "0123456789abcdef";
  auto hex = [](std::string& out, uint64_t v) {
    char digits[16];
    int n = 0;
    do {
      digits[n++] = kHex[v & 15];
      v >>= 4;
    } while (v != 0);
    while (n > 0) out.push_back(digits[--n]);
  };
  std::string etag = "\"";
  hex(etag, size);
  etag.push_back('-');
  hex(etag, static_cast<uint64_t>(mtime_unix_nanos));
  etag.push_back('"');
  return etag;
}

asio::awaitable<Result<void>> ServeFile(Exchange& ex, const FileToServe& file) {
  const Request& req = ex.request();
  const bool head = req.method() == "HEAD";
  if (!head && req.method() != "GET") {
    Response r = JsonError(405, "method_not_allowed", "Files answer GET and HEAD only.");
    r.headers.emplace_back("Allow", "GET, HEAD");
    co_return co_await ex.Send(std::move(r));
  }
  const std::string etag =
      file.etag.empty() ? MakeETag(file.size, file.mtime_unix_nanos) : file.etag;
  const int64_t mtime = FloorSeconds(file.mtime_unix_nanos);

  Headers headers;
  headers.reserve(6 + file.extra_headers.size());
  headers.emplace_back("ETag", etag);
  headers.emplace_back("Last-Modified", FormatHttpDate(mtime));
  if (!file.cache_control.empty()) headers.emplace_back("Cache-Control", file.cache_control);
  headers.emplace_back("Accept-Ranges", "bytes");

  // Preconditions in the order of RFC 9110 §13.2.2.
  bool failed = false;
  if (auto im = req.header("If-Match")) {
    failed = !detail::EtagListMatches(*im, etag, true);
  } else if (auto ius = req.header("If-Unmodified-Since")) {
    int64_t t = ParseHttpDate(*ius);
    failed = t >= 0 && mtime > t;
  }
  if (failed) {
    Response r = JsonError(412, "precondition_failed",
                           "The file changed since you fetched it; fetch it again.");
    r.headers.insert(r.headers.end(), headers.begin(), headers.end());
    co_return co_await ex.Send(std::move(r));
  }
  bool not_modified = false;
  if (auto inm = req.header("If-None-Match")) {
    not_modified = detail::EtagListMatches(*inm, etag, false);
  } else if (auto ims = req.header("If-Modified-Since")) {
    int64_t t = ParseHttpDate(*ims);
    not_modified = t >= 0 && mtime <= t;
  }
  if (not_modified) {
    // (A named Response: gcc 12 frees a braced temporary passed into a
    // co_await expression twice.)
    Response r;
    r.status = 304;
    r.headers = std::move(headers);
    co_return co_await ex.Send(std::move(r));
  }

  RangeSpec spec;
  auto range = req.header("Range");
  // Range is defined for GET only (RFC 9110 §14.2); HEAD gets the full head.
  if (range && !head) {
    auto if_range = req.header("If-Range");
    if (!if_range || detail::IfRangeMatches(*if_range, etag, mtime)) {
      spec = ParseRange(*range, file.size);
    }
  }
  if (spec.kind == RangeSpec::kUnsatisfiable) {
    Response r = JsonError(416, "range_not_satisfiable",
                           "The requested range lies outside the file, which has " +
                               std::to_string(file.size) + " bytes.");
    r.headers.insert(r.headers.end(), headers.begin(), headers.end());
    r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(file.size));
    co_return co_await ex.Send(std::move(r));
  }

  headers.insert(headers.end(), file.extra_headers.begin(), file.extra_headers.end());
  if (spec.kind == RangeSpec::kNone) {
    headers.emplace_back("Content-Type", file.content_type);
    co_return co_await ex.SendFile(200, std::move(headers), file.fd, file.read_at, 0, file.size);
  }
  if (spec.ranges.size() == 1) {
    const ByteRange& r = spec.ranges.front();
    headers.emplace_back("Content-Type", file.content_type);
    headers.emplace_back("Content-Range", ContentRange(r.first, r.last, file.size));
    co_return co_await ex.SendFile(206, std::move(headers), file.fd, file.read_at, r.first,
                                   r.last - r.first + 1);
  }
  // multipart/byteranges (RFC 9110 §14.6): each part has its own
  // Content-Type and Content-Range; the bodies go out with sendfile.
  const std::string boundary = MakeBoundary();
  std::vector<FilePart> parts;
  parts.reserve(spec.ranges.size());
  for (const ByteRange& r : spec.ranges) {
    FilePart part;
    part.prefix.reserve(96 + file.content_type.size());
    part.prefix += "\r\n--";
    part.prefix += boundary;
    part.prefix += "\r\nContent-Type: ";
    part.prefix += file.content_type;
    part.prefix += "\r\nContent-Range: ";
    part.prefix += ContentRange(r.first, r.last, file.size);
    part.prefix += "\r\n\r\n";
    part.offset = r.first;
    part.length = r.last - r.first + 1;
    parts.push_back(std::move(part));
  }
  // The representation's Content-Type moves into the parts.
  headers.emplace_back("Content-Type", "multipart/byteranges; boundary=" + boundary);
  const std::string suffix = "\r\n--" + boundary + "--\r\n";
  co_return co_await ex.SendFileParts(206, std::move(headers), file.fd, file.read_at, parts,
                                      suffix);
}

std::string_view ContentTypeFor(std::string_view file_name) {
  size_t slash = file_name.find_last_of('/');
  if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
  size_t dot = file_name.find_last_of('.');
  if (dot == std::string_view::npos) return "application/octet-stream";
  std::string_view ext = file_name.substr(dot + 1);
  struct Entry {
    std::string_view ext, type;
  };
  static constexpr std::array<Entry, 31> kTypes{{
      {"mp4", "video/mp4"},
      {"m4v", "video/mp4"},
      {"mov", "video/quicktime"},
      {"webm", "video/webm"},
      {"mkv", "video/x-matroska"},
      {"m3u8", "application/vnd.apple.mpegurl"},
      {"ts", "video/mp2t"},
      {"m4s", "video/iso.segment"},
      {"mp3", "audio/mpeg"},
      {"aac", "audio/aac"},
      {"m4a", "audio/mp4"},
      {"vtt", "text/vtt; charset=utf-8"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"png", "image/png"},
      {"webp", "image/webp"},
      {"gif", "image/gif"},
      {"svg", "image/svg+xml"},
      {"ico", "image/x-icon"},
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"txt", "text/plain; charset=utf-8"},
      {"woff2", "font/woff2"},
      {"woff", "font/woff"},
      {"wasm", "application/wasm"},
      {"xml", "application/xml"},
  }};
  for (const Entry& e : kTypes) {
    if (IEquals(ext, e.ext)) return e.type;
  }
  return "application/octet-stream";
}

}  // namespace hub::http
