#include "media/ladder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "media/detail/text.h"

namespace hub::media {
namespace {

int RoundEven(double v) {
  int r = static_cast<int>(std::lround(v / 2.0)) * 2;
  return std::max(r, 2);
}

// Scales the displayed size so that its shorter side becomes `p`.
void SizeFor(const MediaInfo& src, int p, int* w, int* h) {
  if (src.width >= src.height) {
    *h = RoundEven(p);
    *w = RoundEven(static_cast<double>(src.width) * p / src.height);
  } else {
    *w = RoundEven(p);
    *h = RoundEven(static_cast<double>(src.height) * p / src.width);
  }
}

std::string Kbps(int64_t bps) { return std::to_string(bps / 1000) + "k"; }

std::string FpsText(double fps) {
  std::string s = detail::Decimal(fps, 3);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

struct Level {
  int idc;
  int64_t max_mbps;   // macroblocks per second
  int64_t max_fs;     // macroblocks per frame
  int64_t max_br;     // kbit/s (Baseline/Main; High allows 1.25x)
};

constexpr Level kLevels[] = {
    {30, 40500, 1620, 10000},     {31, 108000, 3600, 14000},   {32, 216000, 5120, 20000},
    {40, 245760, 8192, 20000},    {41, 245760, 8192, 50000},   {42, 522240, 8704, 50000},
    {50, 589824, 22080, 135000},  {51, 983040, 36864, 240000}, {52, 2073600, 36864, 240000},
};

std::string LevelText(int idc) { return std::to_string(idc / 10) + "." + std::to_string(idc % 10); }

void AddHlsOutput(std::vector<std::string>& a, const Rendition& r, const LadderOptions& o,
                  const std::string& output_dir) {
  const std::string dir = output_dir + "/" + r.name + "/";
  a.insert(a.end(), {"-f", "hls", "-hls_time", std::to_string(o.segment_seconds),
                     "-hls_playlist_type", "vod", "-hls_flags", "independent_segments",
                     "-hls_segment_type", o.segment_type == SegmentType::kFmp4 ? "fmp4" : "mpegts"});
  if (o.segment_type == SegmentType::kFmp4) a.insert(a.end(), {"-hls_fmp4_init_filename", "init.mp4"});
  a.insert(a.end(), {"-hls_segment_filename", dir + SegmentPattern(o.segment_type),
                     "-protocol_whitelist", "file", dir + kMediaPlaylistName});
}

std::vector<std::string> CommonHead(const std::string& ffmpeg, const std::string& input_path) {
  return {ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats",
          "-progress", "pipe:1", "-protocol_whitelist", "file", "-i", "file:" + input_path};
}

}  // namespace

std::vector<Rung> DefaultRungs() {
  return {{1080, 5000, 128, "high"},
          {720, 2800, 128, "high"},
          {480, 1400, 96, "main"},
          {360, 800, 96, "main"},
          {240, 400, 64, "baseline"}};
}

std::vector<std::string> RenditionDirs(const std::vector<Rendition>& plan, const std::string& output_dir) {
  std::vector<std::string> dirs;
  for (const auto& r : plan) dirs.push_back(output_dir + "/" + r.name);
  return dirs;
}

std::string SegmentPattern(SegmentType type) {
  return type == SegmentType::kFmp4 ? "seg_%05d.m4s" : "seg_%05d.ts";
}

int H264Level(int width, int height, double fps, int64_t maxrate_bps, const std::string& profile) {
  int64_t mbs = ((width + 15) / 16) * static_cast<int64_t>((height + 15) / 16);
  double mbps = mbs * std::max(fps, 1.0);
  bool high = profile == "high" || profile == "High";
  for (const Level& l : kLevels) {
    int64_t max_br = high ? l.max_br * 5 / 4 : l.max_br;
    if (mbs <= l.max_fs && mbps <= static_cast<double>(l.max_mbps) &&
        maxrate_bps <= max_br * 1000) {
      return l.idc;
    }
  }
  return 52;
}

std::string AvcCodecString(const std::string& profile, int level_idc) {
  // profile_idc and constraint flags as x264 writes them (checked against
  // its SPS): baseline 42c0, main 4d40, high 6400.
  const char* pc = "6400";
  if (profile == "baseline" || profile == "Constrained Baseline") pc = "42c0";
  else if (profile == "Baseline") pc = "4200";
  else if (profile == "main" || profile == "Main") pc = "4d40";
  char buf[32];
  std::snprintf(buf, sizeof buf, "avc1.%s%02x", pc, std::clamp(level_idc, 0, 255));
  return buf;
}

std::vector<Rendition> PlanLadder(const MediaInfo& src, const LadderOptions& o) {
  std::vector<Rung> rungs = o.rungs;
  std::sort(rungs.begin(), rungs.end(), [](const Rung& a, const Rung& b) { return a.height > b.height; });
  rungs.erase(std::unique(rungs.begin(), rungs.end(),
                          [](const Rung& a, const Rung& b) { return a.height == b.height; }),
              rungs.end());
  std::vector<Rendition> out;
  const int p = src.short_side();
  if (rungs.empty() || p <= 0) return out;

  double fps = src.frame_rate.value() > 0 ? src.frame_rate.value() : 30.0;
  fps = std::min(fps, o.max_frame_rate);
  const double fps_factor = fps > 30.5 ? o.high_fps_factor : 1.0;

  auto make = [&](int rung_p, int64_t video_kbps, int64_t audio_kbps, const std::string& profile) {
    Rendition r;
    SizeFor(src, rung_p, &r.width, &r.height);
    r.name = std::to_string(std::min(r.width, r.height)) + "p";
    r.frame_rate = fps;
    r.video_bitrate = static_cast<int64_t>(std::llround(video_kbps * fps_factor)) * 1000;
    r.maxrate = static_cast<int64_t>(std::llround(r.video_bitrate * o.maxrate_factor / 1000.0)) * 1000;
    r.bufsize = static_cast<int64_t>(std::llround(r.video_bitrate * o.bufsize_factor / 1000.0)) * 1000;
    r.has_audio = src.has_audio;
    r.audio_bitrate = src.has_audio ? audio_kbps * 1000 : 0;
    r.profile = profile;
    r.level = H264Level(r.width, r.height, fps, r.maxrate, profile);
    r.codecs = AvcCodecString(profile, r.level) + (r.has_audio ? ",mp4a.40.2" : "");
    return r;
  };

  // Source between two rungs (or below the lowest): its own size on top,
  // bitrate interpolated by pixel count between the neighbouring rungs.
  auto above = std::find_if(rungs.rbegin(), rungs.rend(), [&](const Rung& r) { return r.height > p; });
  auto at_or_below = std::find_if(rungs.begin(), rungs.end(), [&](const Rung& r) { return r.height <= p; });
  const int own = p & ~1;  // never round up past the source
  bool exact = at_or_below != rungs.end() && at_or_below->height == own;
  if (above != rungs.rend() && !exact) {
    const Rung& hi = *above;
    double kbps;
    int64_t akbps = hi.audio_kbps;
    if (at_or_below == rungs.end()) {
      kbps = hi.video_kbps * (static_cast<double>(p) * p) / (static_cast<double>(hi.height) * hi.height);
      kbps = std::max(kbps, 100.0);
    } else {
      const Rung& lo = *at_or_below;
      double t = (static_cast<double>(p) * p - static_cast<double>(lo.height) * lo.height) /
                 (static_cast<double>(hi.height) * hi.height - static_cast<double>(lo.height) * lo.height);
      kbps = lo.video_kbps + t * (hi.video_kbps - lo.video_kbps);
      akbps = t >= 0.5 ? hi.audio_kbps : lo.audio_kbps;
    }
    out.push_back(make(own, std::llround(kbps), akbps, hi.profile));
  }
  for (auto it = at_or_below; it != rungs.end(); ++it) {
    out.push_back(make(it->height, it->video_kbps, it->audio_kbps, it->profile));
  }
  return out;
}

Rendition PlanCopy(const MediaInfo& src) {
  Rendition r;
  r.name = "source";
  r.copy = true;
  r.width = src.width;
  r.height = src.height;
  r.frame_rate = src.frame_rate.value();
  r.has_audio = src.has_audio;
  r.profile = src.video_profile;
  r.level = src.video_level > 0 ? src.video_level
                                : H264Level(src.width, src.height, r.frame_rate, 0, src.video_profile);
  r.codecs = AvcCodecString(src.video_profile, r.level) + (src.has_audio ? ",mp4a.40.2" : "");
  return r;
}

std::vector<std::string> FfmpegLadderArgs(const std::string& ffmpeg, const std::string& input_path,
                                          const std::vector<Rendition>& plan,
                                          const LadderOptions& o, const std::string& output_dir) {
  std::vector<const Rendition*> enc;
  for (const auto& r : plan) {
    if (!r.copy) enc.push_back(&r);
  }
  std::vector<std::string> a = CommonHead(ffmpeg, input_path);
  if (enc.empty()) return a;

  // Decode once: [0:v:0] -> (fps cap) -> split=N -> scale per rendition.
  std::string graph = "[0:v:0]";
  if (!enc.empty() && enc.front()->frame_rate > 0) {
    graph += "fps=" + FpsText(enc.front()->frame_rate) + ",";
  }
  graph += "split=" + std::to_string(enc.size());
  for (size_t i = 0; i < enc.size(); ++i) graph += "[s" + std::to_string(i) + "]";
  for (size_t i = 0; i < enc.size(); ++i) {
    graph += ";[s" + std::to_string(i) + "]scale=w=" + std::to_string(enc[i]->width) +
             ":h=" + std::to_string(enc[i]->height) + ",setsar=1[v" + std::to_string(i) + "]";
  }
  a.insert(a.end(), {"-filter_complex", graph});

  const std::string keyframes = "expr:gte(t,n_forced*" + std::to_string(o.segment_seconds) + ")";
  for (size_t i = 0; i < enc.size(); ++i) {
    const Rendition& r = *enc[i];
    // GOP ceiling above the forced interval, so that only the forced,
    // timestamp-aligned keyframes start GOPs in every rendition.
    int gop = static_cast<int>(std::ceil(std::max(r.frame_rate, 1.0) * o.segment_seconds)) * 2;
    a.insert(a.end(), {"-map", "[v" + std::to_string(i) + "]"});
    if (r.has_audio) a.insert(a.end(), {"-map", "0:a:0?"});
    a.insert(a.end(), {"-c:v", "libx264", "-preset", o.x264_preset, "-profile:v", r.profile,
                       "-level:v", LevelText(r.level), "-pix_fmt", "yuv420p",
                       "-b:v", Kbps(r.video_bitrate), "-maxrate", Kbps(r.maxrate),
                       "-bufsize", Kbps(r.bufsize), "-g", std::to_string(gop),
                       "-force_key_frames", keyframes, "-sc_threshold", "0"});
    if (r.has_audio) {
      a.insert(a.end(), {"-c:a", "aac", "-b:a", Kbps(r.audio_bitrate), "-ac", "2", "-ar", "48000"});
    }
    AddHlsOutput(a, r, o, output_dir);
  }
  return a;
}

std::vector<std::string> FfmpegCopyArgs(const std::string& ffmpeg, const std::string& input_path,
                                        const Rendition& copy, const LadderOptions& o,
                                        const std::string& output_dir) {
  std::vector<std::string> a = CommonHead(ffmpeg, input_path);
  a.insert(a.end(), {"-map", "0:v:0"});
  if (copy.has_audio) a.insert(a.end(), {"-map", "0:a:0?"});
  a.insert(a.end(), {"-c", "copy"});
  AddHlsOutput(a, copy, o, output_dir);
  return a;
}

}  // namespace hub::media
