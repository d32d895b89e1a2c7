#pragma once
// The rendition ladder and the ffmpeg commands that produce it.
//
// One ffmpeg process decodes the source once and encodes every rendition
// (split -> scale per rung -> libx264 + AAC -> one HLS muxer per rendition),
// with keyframes forced on the same timestamps in every rendition so that
// segments are aligned and players switch cleanly. Pure: builds plans and
// argv vectors; running them is runner.h's job.
//
// Output layout in `output_dir` (a fresh temp directory, renamed into place
// by the job queue when complete):
//   <name>/index.m3u8          media playlist (VOD, EXT-X-ENDLIST)
//   <name>/seg_00000.ts ...    4 s MPEG-TS segments (or init.mp4 + .m4s with kFmp4)

#include <cstdint>
#include <string>
#include <vector>

#include "media/probe.h"

namespace hub::media {

// MPEG-TS by default: every segment is self-contained (no init segment to
// keep in step), playlists stay at EXT-X-VERSION 3, and every HLS client
// plays it (hls.js transmuxes it to fMP4 for MSE; Safari, iOS, Android and
// smart TVs play it natively). fMP4 saves ~5-10% of overhead at low bitrates
// and is required for HEVC/AV1, which this ladder does not produce.
enum class SegmentType { kMpegTs, kFmp4 };

// One step of the ladder, named by its "p" number (the shorter displayed
// side, so a portrait video gets the same steps as a landscape one).
struct Rung {
  int height = 0;            // e.g. 720
  int64_t video_kbps = 0;    // target average bitrate at <= 30 fps
  int64_t audio_kbps = 0;
  std::string profile;       // "high", "main" or "baseline"
};

// 1080p 5000k/128k high, 720p 2800k/128k high, 480p 1400k/96k main,
// 360p 800k/96k main, 240p 400k/64k baseline.
std::vector<Rung> DefaultRungs();

struct LadderOptions {
  std::vector<Rung> rungs = DefaultRungs();  // any order; sorted high to low
  int segment_seconds = 4;                   // target segment duration
  SegmentType segment_type = SegmentType::kMpegTs;
  double max_frame_rate = 60;      // faster sources are reduced to this
  double high_fps_factor = 1.5;    // bitrate multiplier above 30 fps
  double maxrate_factor = 1.07;    // VBV maxrate = factor * bitrate (capped VBR)
  double bufsize_factor = 1.5;     // VBV buffer = factor * bitrate
  std::string x264_preset = "veryfast";
};

struct Rendition {
  std::string name;          // directory and label: "720p"; "source" for the copy
  int width = 0;             // displayed size, both even
  int height = 0;
  double frame_rate = 0;     // of the output
  int64_t video_bitrate = 0; // bits/s (target average; 0 for the copy)
  int64_t maxrate = 0;
  int64_t bufsize = 0;
  int64_t audio_bitrate = 0;
  bool has_audio = false;
  std::string profile;       // "high" | "main" | "baseline" (x264 names)
  int level = 0;             // level_idc: 31 = 3.1
  bool copy = false;         // packaged by stream copy
  std::string codecs;        // RFC 6381 CODECS, e.g. "avc1.64001f,mp4a.40.2"
};

// The renditions for `src`, highest first: every rung at or below the
// source's short side; when the source lies between rungs (or below the
// lowest), its own size becomes the top rendition, bitrate interpolated by
// pixel count. Never upscales. Aspect ratio kept, sizes rounded to even.
std::vector<Rendition> PlanLadder(const MediaInfo& src, const LadderOptions& options);

// The rendition packaged by stream copy (precondition: CanStreamCopy(src)).
Rendition PlanCopy(const MediaInfo& src);

// RFC 6381 "avc1.PPCCLL" for an x264 profile name and level_idc, e.g.
// ("high", 31) -> "avc1.64001f"; ffprobe profile names are accepted too
// ("Constrained Baseline" -> 42c0.., "Main" -> 4d40.., "High" -> 6400..).
std::string AvcCodecString(const std::string& profile, int level_idc);

// The lowest H.264 level (>= 3.0) whose limits (frame size, macroblock rate,
// bitrate) admit the given stream (Table A-1 of ITU-T H.264).
int H264Level(int width, int height, double fps, int64_t maxrate_bps, const std::string& profile);

// ONE ffmpeg command for all (non-copy) renditions of `plan`, reading
// `input_path` (file protocol only) and writing `output_dir`/<name>/...,
// progress as key=value lines on stdout (-progress pipe:1).
std::vector<std::string> FfmpegLadderArgs(const std::string& ffmpeg, const std::string& input_path,
                                          const std::vector<Rendition>& plan,
                                          const LadderOptions& options,
                                          const std::string& output_dir);

// The stream-copy rendition into `output_dir`/<copy.name>/: seconds of work
// for an H.264/AAC source of any length (segments cut at the source's own
// keyframes, so they may exceed segment_seconds).
std::vector<std::string> FfmpegCopyArgs(const std::string& ffmpeg, const std::string& input_path,
                                        const Rendition& copy, const LadderOptions& options,
                                        const std::string& output_dir);

// The directories ffmpeg writes into (`output_dir`/<name> per rendition):
// the caller creates them before running, since ffmpeg's hls muxer does not.
std::vector<std::string> RenditionDirs(const std::vector<Rendition>& plan, const std::string& output_dir);

// File names inside a rendition directory.
inline constexpr const char* kMediaPlaylistName = "index.m3u8";
std::string SegmentPattern(SegmentType type);  // "seg_%05d.ts" / "seg_%05d.m4s"

}  // namespace hub::media
