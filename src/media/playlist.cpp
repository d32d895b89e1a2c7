#include "media/playlist.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "media/detail/text.h"

namespace hub::media {
namespace {

constexpr size_t kMaxSegments = 100'000;

Error Bad(std::string what) {
  return MakeError(errc::bad_output, "the HLS playlist is not valid: " + std::move(what));
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool ParseInt(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseDuration(std::string_view s, double* out) {
  // decimal-floating-point (RFC 8216 4.2): digits with an optional fraction.
  if (s.empty() || s.size() > 32) return false;
  std::string tmp(s);
  for (char c : tmp) {
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  }
  char* end = nullptr;
  *out = std::strtod(tmp.c_str(), &end);
  return end == tmp.c_str() + tmp.size() && std::isfinite(*out);
}

// Segment URIs that stay inside the rendition's directory: one file name.
bool IsLocalName(std::string_view uri) {
  if (uri.empty() || uri.size() > 255 || uri[0] == '.') return false;
  return std::all_of(uri.begin(), uri.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '.' || c == '_' || c == '-';
  });
}

std::string QuotedAttr(std::string_view attrs, std::string_view name) {
  auto pos = attrs.find(std::string(name) + "=\"");
  if (pos == std::string_view::npos) return {};
  pos += name.size() + 2;
  auto end = attrs.find('"', pos);
  if (end == std::string_view::npos) return {};
  return std::string(attrs.substr(pos, end - pos));
}

}  // namespace

double MediaPlaylist::total_duration_s() const {
  double t = 0;
  for (const auto& s : segments) t += s.duration_s;
  return t;
}

Result<MediaPlaylist> ParseMediaPlaylist(std::string_view text) {
  MediaPlaylist pl;
  bool first = true, pending_inf = false;
  double pending_duration = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      if (line != "#EXTM3U") return Bad("it does not start with #EXTM3U");
      first = false;
      continue;
    }
    if (line.empty()) continue;
    if (line[0] != '#') {
      if (!pending_inf) return Bad("the URI '" + std::string(line.substr(0, 64)) + "' has no EXTINF");
      if (!IsLocalName(line)) return Bad("the segment URI '" + std::string(line.substr(0, 64)) + "' leaves its directory");
      if (pl.segments.size() >= kMaxSegments) return Bad("more than 100000 segments");
      pl.segments.push_back({pending_duration, std::string(line)});
      pending_inf = false;
      continue;
    }
    if (!StartsWith(line, "#EXT")) continue;  // a comment
    int64_t n = 0;
    if (StartsWith(line, "#EXTINF:")) {
      std::string_view v = line.substr(8);
      v = v.substr(0, v.find(','));
      if (!ParseDuration(v, &pending_duration)) return Bad("malformed EXTINF '" + std::string(line) + "'");
      pending_inf = true;
    } else if (StartsWith(line, "#EXT-X-VERSION:")) {
      if (!ParseInt(line.substr(15), &n) || n < 1 || n > 100) return Bad("malformed EXT-X-VERSION");
      pl.version = static_cast<int>(n);
    } else if (StartsWith(line, "#EXT-X-TARGETDURATION:")) {
      if (!ParseInt(line.substr(22), &n) || n < 0 || n > 100000) return Bad("malformed EXT-X-TARGETDURATION");
      pl.target_duration_s = static_cast<int>(n);
    } else if (StartsWith(line, "#EXT-X-MEDIA-SEQUENCE:")) {
      if (!ParseInt(line.substr(22), &n) || n < 0) return Bad("malformed EXT-X-MEDIA-SEQUENCE");
      pl.media_sequence = n;
    } else if (StartsWith(line, "#EXT-X-PLAYLIST-TYPE:")) {
      pl.playlist_type = std::string(line.substr(21));
    } else if (line == "#EXT-X-INDEPENDENT-SEGMENTS") {
      pl.independent_segments = true;
    } else if (line == "#EXT-X-ENDLIST") {
      pl.endlist = true;
    } else if (StartsWith(line, "#EXT-X-MAP:")) {
      pl.map_uri = QuotedAttr(line.substr(11), "URI");
      if (!IsLocalName(pl.map_uri)) return Bad("the EXT-X-MAP URI leaves its directory");
    } else if (StartsWith(line, "#EXT-X-STREAM-INF") || StartsWith(line, "#EXT-X-MEDIA:")) {
      return Bad("it is a master playlist, not a media playlist");
    } else if (StartsWith(line, "#EXT-X-BYTERANGE")) {
      return Bad("byte-range segments are not supported");
    }
  }
  if (first) return Bad("it is empty");
  if (pending_inf) return Bad("the last EXTINF has no URI");
  return pl;
}

Result<void> ValidateRendition(const MediaPlaylist& pl, const SizeOf& size_of,
                               double expected_duration_s, const ValidationOptions& o) {
  if (!pl.endlist) return Bad("EXT-X-ENDLIST is missing (the encoder stopped early)");
  if (pl.playlist_type != "VOD") return Bad("it is not a VOD playlist");
  if (pl.segments.empty()) return Bad("it has no segments");
  if (!pl.map_uri.empty()) {
    auto sz = size_of(pl.map_uri);
    if (!sz || *sz == 0) return Bad("the init segment " + pl.map_uri + " is missing or empty");
  }
  for (size_t i = 0; i < pl.segments.size(); ++i) {
    const Segment& s = pl.segments[i];
    auto sz = size_of(s.uri);
    if (!sz || *sz == 0) return Bad("the segment " + s.uri + " is missing or empty");
    if (std::lround(s.duration_s) > pl.target_duration_s) {
      return Bad("the segment " + s.uri + " lasts longer than EXT-X-TARGETDURATION");
    }
    bool last = i + 1 == pl.segments.size();
    if (o.exact_durations) {
      bool in_range = last ? s.duration_s <= o.segment_seconds + o.tolerance_s
                           : std::fabs(s.duration_s - o.segment_seconds) <= o.tolerance_s;
      if (!in_range || s.duration_s <= 0) {
        return Bad("the segment " + s.uri + " lasts " + detail::Decimal(s.duration_s, 3) +
                   " s instead of about " + detail::Decimal(o.segment_seconds, 0) + " s");
      }
    }
  }
  if (expected_duration_s > 0 && std::fabs(pl.total_duration_s() - expected_duration_s) > 1.0) {
    return Bad("its segments last " + detail::Decimal(pl.total_duration_s(), 3) +
               " s but the source lasts " + detail::Decimal(expected_duration_s, 3) + " s");
  }
  return Ok();
}

Result<Bandwidth> MeasureBandwidth(const MediaPlaylist& pl, const SizeOf& size_of) {
  if (pl.segments.empty()) return Bad("it has no segments");
  std::vector<double> bytes(pl.segments.size());
  for (size_t i = 0; i < pl.segments.size(); ++i) {
    auto sz = size_of(pl.segments[i].uri);
    if (!sz) return Bad("the segment " + pl.segments[i].uri + " is missing");
    bytes[i] = static_cast<double>(*sz);
  }
  if (!pl.map_uri.empty()) {
    auto sz = size_of(pl.map_uri);
    if (!sz) return Bad("the init segment " + pl.map_uri + " is missing");
    bytes[0] += static_cast<double>(*sz);
  }
  double total_bytes = 0, total_s = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    total_bytes += bytes[i];
    total_s += pl.segments[i].duration_s;
  }
  // Peak segment bit rate (RFC 8216 4.3.4.2): the largest bit rate of any
  // contiguous run of segments lasting 0.5..1.5 target durations. A short
  // last segment alone does not count; when no run qualifies (a single short
  // segment), the whole playlist is the run.
  const double target = pl.target_duration_s > 0 ? pl.target_duration_s : 1.0;
  double peak = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    double b = 0, d = 0;
    for (size_t j = i; j < bytes.size(); ++j) {
      b += bytes[j];
      d += pl.segments[j].duration_s;
      if (d > 1.5 * target) break;
      if (d >= 0.5 * target && d > 0) peak = std::max(peak, b * 8 / d);
    }
  }
  Bandwidth bw;
  bw.average_bps = total_s > 0 ? static_cast<int64_t>(std::ceil(total_bytes * 8 / total_s)) : 0;
  bw.peak_bps = peak > 0 ? static_cast<int64_t>(std::ceil(peak)) : bw.average_bps;
  bw.peak_bps = std::max(bw.peak_bps, bw.average_bps);
  return bw;
}

std::string MasterPlaylist(const std::vector<VariantStream>& variants, bool fmp4) {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:" + std::string(fmp4 ? "7" : "3") +
                    "\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  for (const auto& v : variants) {
    const Rendition& r = v.rendition;
    out += "#EXT-X-STREAM-INF:BANDWIDTH=" + std::to_string(v.bandwidth.peak_bps) +
           ",AVERAGE-BANDWIDTH=" + std::to_string(v.bandwidth.average_bps);
    if (r.width > 0 && r.height > 0) {
      out += ",RESOLUTION=" + std::to_string(r.width) + "x" + std::to_string(r.height);
    }
    if (!r.codecs.empty()) out += ",CODECS=\"" + r.codecs + "\"";
    if (r.frame_rate > 0) out += ",FRAME-RATE=" + detail::Decimal(r.frame_rate, 3);
    out += "\n" + v.uri + "\n";
  }
  return out;
}

}  // namespace hub::media
