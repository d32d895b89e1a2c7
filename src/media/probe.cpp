#include "media/probe.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "media/detail/text.h"

namespace hub::media {
namespace {

using json = nlohmann::json;

class Category : public std::error_category {
 public:
  const char* name() const noexcept override { return "media"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::unplayable: return "the file is not a playable video";
      case errc::bad_output: return "unexpected output from ffmpeg";
      case errc::spawn_failed: return "could not start the program";
      case errc::process_failed: return "the program failed";
      case errc::cancelled: return "cancelled";
      case errc::storage: return "storage error";
      case errc::lost: return "the job moved to another node";
    }
    return "unknown";
  }
};

// ffprobe prints most numbers as strings ("2.002000", "44100") and a few as
// numbers (width, level, channels); accept both.
double Number(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return 0;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || !std::isfinite(v)) return 0;
    return v;
  }
  return 0;
}

int64_t Integer(const json& obj, const char* key) {
  double v = Number(obj, key);
  if (v <= -9e18 || v >= 9e18) return 0;
  return static_cast<int64_t>(v);
}

std::string String(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

Rational ParseRational(const std::string& s) {
  Rational r;
  auto slash = s.find('/');
  if (slash == std::string::npos) return r;
  const char* b = s.data();
  auto [p1, e1] = std::from_chars(b, b + slash, r.num);
  auto [p2, e2] = std::from_chars(b + slash + 1, b + s.size(), r.den);
  if (e1 != std::errc() || e2 != std::errc() || r.num <= 0 || r.den <= 0) return {};
  return r;
}

// Clockwise degrees in {0, 90, 180, 270}. ffprobe reports rotation in a
// display-matrix side data entry (current) or a "rotate" tag (older builds);
// both are congruent to the legacy tag modulo 360. Only 90/270 change the
// displayed size, which is what matters here.
int Rotation(const json& stream) {
  double deg = 0;
  bool found = false;
  if (auto sd = stream.find("side_data_list"); sd != stream.end() && sd->is_array()) {
    for (const auto& e : *sd) {
      if (e.is_object() && e.contains("rotation")) {
        deg = Number(e, "rotation");
        found = true;
        break;
      }
    }
  }
  if (!found) {
    if (auto tags = stream.find("tags"); tags != stream.end() && tags->is_object()) {
      deg = Number(*tags, "rotate");
    }
  }
  long quarter = std::lround(deg / 90.0);
  return static_cast<int>(((quarter % 4) + 4) % 4) * 90;
}

bool IsAttachedPicture(const json& stream) {
  auto d = stream.find("disposition");
  return d != stream.end() && d->is_object() && Integer(*d, "attached_pic") == 1;
}

constexpr const char* kUnreadable =
    "The file could not be read as a video: it is damaged, incomplete (an interrupted "
    "recording or copy) or not a video at all. Check that it plays on your device and upload "
    "it again.";

}  // namespace

const std::error_category& category() {
  static Category c;
  return c;
}

Result<MediaInfo> ParseProbe(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return MakeError(errc::bad_output, "ffprobe printed something that is not JSON");
  }
  auto fmt = doc.find("format");
  if (fmt == doc.end() || !fmt->is_object()) {
    // What ffprobe prints ("{\n\n}") for a file it cannot open at all.
    return MakeError(errc::unplayable, kUnreadable);
  }
  MediaInfo info;
  info.container = String(*fmt, "format_name");
  info.duration_s = Number(*fmt, "duration");
  info.bit_rate = Integer(*fmt, "bit_rate");
  info.size_bytes = Integer(*fmt, "size");

  double longest_stream = 0;
  if (auto streams = doc.find("streams"); streams != doc.end() && streams->is_array()) {
    for (const auto& s : *streams) {
      if (!s.is_object()) continue;
      std::string type = String(s, "codec_type");
      longest_stream = std::max(longest_stream, Number(s, "duration"));
      if (type == "video" && !info.has_video && !IsAttachedPicture(s)) {
        info.has_video = true;
        info.video_codec = String(s, "codec_name");
        info.video_profile = String(s, "profile");
        info.video_level = static_cast<int>(Integer(s, "level"));
        info.pix_fmt = String(s, "pix_fmt");
        info.coded_width = static_cast<int>(std::clamp<int64_t>(Integer(s, "width"), 0, 1 << 20));
        info.coded_height = static_cast<int>(std::clamp<int64_t>(Integer(s, "height"), 0, 1 << 20));
        info.rotation = Rotation(s);
        bool swap = info.rotation == 90 || info.rotation == 270;
        info.width = swap ? info.coded_height : info.coded_width;
        info.height = swap ? info.coded_width : info.coded_height;
        info.frame_rate = ParseRational(String(s, "avg_frame_rate"));
        if (info.frame_rate.den == 0) info.frame_rate = ParseRational(String(s, "r_frame_rate"));
        info.video_bit_rate = Integer(s, "bit_rate");
      } else if (type == "audio" && !info.has_audio) {
        info.has_audio = true;
        info.audio_codec = String(s, "codec_name");
        info.audio_profile = String(s, "profile");
        info.sample_rate = static_cast<int>(std::clamp<int64_t>(Integer(s, "sample_rate"), 0, 1 << 24));
        info.channels = static_cast<int>(std::clamp<int64_t>(Integer(s, "channels"), 0, 1024));
        info.audio_bit_rate = Integer(s, "bit_rate");
      }
    }
  }
  if (info.duration_s <= 0) info.duration_s = longest_stream;
  if (info.duration_s < 0) info.duration_s = 0;
  return info;
}

std::vector<std::string> ProbeArgs(const std::string& ffprobe, const std::string& input_path) {
  return {ffprobe,          "-hide_banner",   "-v",           "error",
          "-protocol_whitelist", "file",      "-print_format", "json",
          "-show_format",   "-show_streams",  "file:" + input_path};
}

Result<void> CheckPlayable(const MediaInfo& info, const MediaLimits& limits) {
  if (!info.has_video) {
    return MakeError(errc::unplayable,
                     "The file has no video track; audio-only files are not supported.");
  }
  if (info.duration_s <= 0 || info.width <= 0 || info.height <= 0) {
    return MakeError(errc::unplayable,
                     "The video has no playable frames (no duration or no picture size); the "
                     "file is probably damaged or incomplete. Export it again and upload it.");
  }
  const auto& codecs = limits.video_codecs;
  if (std::find(codecs.begin(), codecs.end(), info.video_codec) == codecs.end()) {
    std::string name = info.video_codec.empty() ? "an unknown codec" : "the " + info.video_codec + " codec";
    return MakeError(errc::unplayable,
                     "The video is encoded with " + name +
                         ", which this hub cannot convert. Export it as H.264 (MP4) and upload "
                         "it again.");
  }
  if (limits.max_height > 0 && info.short_side() > limits.max_height) {
    return MakeError(errc::unplayable,
                     "The video is " + std::to_string(info.short_side()) + "p (" +
                         std::to_string(info.width) + "x" + std::to_string(info.height) +
                         "); this hub accepts videos up to " + std::to_string(limits.max_height) +
                         "p. Export a smaller version and upload it again.");
  }
  if (limits.max_duration_s > 0 && info.duration_s > limits.max_duration_s) {
    return MakeError(errc::unplayable,
                     "The video is " + detail::SpokenDuration(info.duration_s) +
                         " long; this hub accepts videos up to " +
                         detail::SpokenDuration(limits.max_duration_s) +
                         ". Split it into parts and upload them separately.");
  }
  return Ok();
}

std::vector<std::string> TailArgs(const std::string& ffprobe, const std::string& input_path,
                                  double duration_s) {
  char start[32];
  std::snprintf(start, sizeof start, "%.3f%%", duration_s > 1 ? duration_s - 1 : 0.0);
  return {ffprobe, "-v", "error", "-protocol_whitelist", "file", "-read_intervals", start,
          "-show_entries", "packet=pts_time,pos,size", "-of", "csv=p=0", "file:" + input_path};
}

Result<void> CheckComplete(const MediaInfo& info, std::string_view tail_csv,
                           std::string_view tail_stderr, int64_t file_size) {
  bool cut = tail_stderr.find("partial file") != std::string_view::npos;
  double reached = 0;
  size_t at = 0;
  while (at < tail_csv.size()) {
    size_t end = tail_csv.find('\n', at);
    if (end == std::string_view::npos) end = tail_csv.size();
    std::string line(tail_csv.substr(at, end - at));
    at = end + 1;
    double pts = 0;
    long long pos = -1, size = 0;
    // Fields may be "N/A" (no pts, no position): such lines say nothing.
    if (std::sscanf(line.c_str(), "%lf,%lld,%lld", &pts, &pos, &size) != 3) continue;
    if (pos >= 0 && size >= 0 && file_size > 0 && pos + size > file_size) cut = true;
    else reached = std::max(reached, pts);
  }
  if (!cut) return Ok();
  std::string where = reached > 0 ? "it stops at " + detail::SpokenDuration(reached) + " of " +
                                        detail::SpokenDuration(info.duration_s)
                                  : "its end is missing";
  return MakeError(errc::unplayable,
                   "The file is incomplete: " + where +
                       ", probably because it was cut short while being copied or uploaded. "
                       "Upload the whole file again.");
}

Error UnreadableFileError(std::string_view /*ffprobe_stderr*/) {
  // ffprobe says "moov atom not found" / "Invalid data found when processing
  // input" alike for text renamed .mp4, an empty file and a truncated MP4 (see
  // testdata/README.md): one sentence covers them all.
  return MakeError(errc::unplayable, kUnreadable);
}

bool CanStreamCopy(const MediaInfo& info) {
  static const char* const kProfiles[] = {"Constrained Baseline", "Baseline", "Main", "High"};
  if (!info.has_video || info.video_codec != "h264" || info.rotation != 0) return false;
  if (std::none_of(std::begin(kProfiles), std::end(kProfiles),
                   [&](const char* p) { return info.video_profile == p; })) {
    return false;
  }
  if (info.pix_fmt != "yuv420p" && info.pix_fmt != "yuvj420p") return false;
  if (info.has_audio && (info.audio_codec != "aac" ||
                         !(info.audio_profile.empty() || info.audio_profile == "LC"))) {
    return false;
  }
  return true;
}

}  // namespace hub::media
