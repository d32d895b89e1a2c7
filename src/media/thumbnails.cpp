#include "media/thumbnails.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "media/detail/text.h"

namespace hub::media {
namespace {

int Even(double v) { return std::max(2, static_cast<int>(std::lround(v / 2.0)) * 2); }

std::string Timestamp(double t) {
  long ms = std::lround(std::max(t, 0.0) * 1000);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02ld:%02ld:%02ld.%03ld", ms / 3'600'000, (ms / 60'000) % 60,
                (ms / 1000) % 60, ms % 1000);
  return buf;
}

// Expands the one "%0Nd" (or "%d") of an ffmpeg image pattern; no printf on
// a caller's string.
std::string SheetName(const std::string& pattern, int n) {
  auto pct = pattern.find('%');
  if (pct == std::string::npos) return pattern;
  size_t i = pct + 1;
  int width = 0;
  while (i < pattern.size() && pattern[i] >= '0' && pattern[i] <= '9') width = width * 10 + (pattern[i++] - '0');
  if (i >= pattern.size() || pattern[i] != 'd') return pattern;
  std::string digits = std::to_string(n);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, width - digits.size(), '0');
  return pattern.substr(0, pct) + digits + pattern.substr(i + 1);
}

}  // namespace

ImageSize FitInBox(int width, int height, int box) {
  if (width <= 0 || height <= 0) return {};
  double scale = std::min(1.0, static_cast<double>(box) / std::max(width, height));
  return {Even(width * scale), Even(height * scale)};
}

std::vector<std::string> PosterArgs(const std::string& ffmpeg, const std::string& input_path,
                                    const MediaInfo& src, const PosterOptions& o,
                                    const std::string& large_path, const std::string& small_path,
                                    bool skip_dark, bool keyframes_only) {
  ImageSize big = FitInBox(src.width, src.height, o.large_box);
  ImageSize small = FitInBox(src.width, src.height, o.small_box);
  // One frame per second keeps the thumbnail filter's batch (which it holds
  // in memory) at scan_seconds frames, each already scaled down.
  int batch = std::max(1, static_cast<int>(std::ceil(o.scan_seconds)));
  std::string graph = "[0:v:0]fps=1,scale=w=" + std::to_string(big.width) + ":h=" +
                      std::to_string(big.height) + ",setsar=1,";
  if (skip_dark) {
    graph += "signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG:value=" +
             std::to_string(o.min_luma) + ":function=greater,";
  }
  graph += "thumbnail=n=" + std::to_string(batch) + ",split=2[big][s];[s]scale=w=" +
           std::to_string(small.width) + ":h=" + std::to_string(small.height) + "[small]";
  const std::string q = std::to_string(o.jpeg_qscale);
  std::vector<std::string> a = {ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                                "-nostats", "-protocol_whitelist", "file",
                                "-t", detail::Decimal(o.scan_seconds, 3)};
  if (keyframes_only) {
    a.push_back("-skip_frame");
    a.push_back("nokey");
  }
  for (const std::string& x :
       {std::string("-i"), "file:" + input_path, std::string("-filter_complex"), graph,
        std::string("-map"), std::string("[big]"), std::string("-frames:v"), std::string("1"),
        std::string("-update"), std::string("1"), std::string("-q:v"), q, large_path,
        std::string("-map"), std::string("[small]"), std::string("-frames:v"), std::string("1"),
        std::string("-update"), std::string("1"), std::string("-q:v"), q, small_path}) {
    a.push_back(x);
  }
  return a;
}

SpritePlan PlanSprite(const MediaInfo& src, const SpriteOptions& o) {
  SpritePlan p;
  double duration = std::max(src.duration_s, 0.0);
  p.interval_s = std::max(o.interval_s, 0.1);
  if (o.max_thumbnails > 0 && duration / p.interval_s > o.max_thumbnails) {
    p.interval_s = std::ceil(duration / o.max_thumbnails);
  }
  if (src.width >= src.height) {
    p.thumb_width = Even(o.thumb_width);
    p.thumb_height = src.width > 0 ? Even(static_cast<double>(o.thumb_width) * src.height / src.width) : 0;
  } else {
    p.thumb_height = Even(o.thumb_width);
    p.thumb_width = Even(static_cast<double>(o.thumb_width) * src.width / src.height);
  }
  p.columns = std::max(1, o.columns);
  p.rows = std::max(1, o.rows);
  p.count = std::max(1, static_cast<int>(std::ceil(duration / p.interval_s - 1e-9)));
  int per_sheet = p.columns * p.rows;
  p.sheets = (p.count + per_sheet - 1) / per_sheet;
  return p;
}

std::vector<std::string> SpriteArgs(const std::string& ffmpeg, const std::string& input_path,
                                    const SpritePlan& p, const std::string& pattern,
                                    bool keyframes_only) {
  std::string graph = "[0:v:0]fps=1/" + detail::Decimal(p.interval_s, 3) +
                      ",scale=w=" + std::to_string(p.thumb_width) + ":h=" +
                      std::to_string(p.thumb_height) + ",setsar=1,tile=" +
                      std::to_string(p.columns) + "x" + std::to_string(p.rows) + "[sheet]";
  std::vector<std::string> a = {ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                                "-nostats", "-progress", "pipe:1", "-protocol_whitelist", "file"};
  if (keyframes_only) {
    a.push_back("-skip_frame");
    a.push_back("nokey");
  }
  for (const std::string& x : {std::string("-i"), "file:" + input_path, std::string("-filter_complex"),
                               graph, std::string("-map"), std::string("[sheet]"), std::string("-q:v"),
                               std::string("5"), std::string("-start_number"), std::string("0"), pattern}) {
    a.push_back(x);
  }
  return a;
}

std::string WebVttSprite(const SpritePlan& p, double duration_s, const std::string& pattern) {
  std::string out = "WEBVTT\n";
  int per_sheet = p.columns * p.rows;
  for (int i = 0; i < p.count; ++i) {
    double start = i * p.interval_s;
    double end = std::min((i + 1) * p.interval_s, std::max(duration_s, start + 0.001));
    int sheet = i / per_sheet, cell = i % per_sheet;
    std::string url = SheetName(pattern, sheet);
    out += "\n" + Timestamp(start) + " --> " + Timestamp(end) + "\n" + url + "#xywh=" +
           std::to_string((cell % p.columns) * p.thumb_width) + "," +
           std::to_string((cell / p.columns) * p.thumb_height) + "," +
           std::to_string(p.thumb_width) + "," + std::to_string(p.thumb_height) + "\n";
  }
  return out;
}

}  // namespace hub::media
