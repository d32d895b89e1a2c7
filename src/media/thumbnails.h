#pragma once
// Poster images and seek-preview sprites: ffmpeg argv builders and the
// WebVTT index of a sprite sheet. Pure; no I/O.

#include <string>
#include <vector>

#include "media/probe.h"

namespace hub::media {

struct PosterOptions {
  double scan_seconds = 30;  // look for a representative frame in the first 30 s
  int large_box = 1280;      // large poster fits in 1280x1280 (1280 wide for landscape)
  int small_box = 320;       // small poster fits in 320x320
  int jpeg_qscale = 3;       // ffmpeg -q:v, 2 (best) .. 31
  int min_luma = 24;         // frames whose average luma is at or below this are skipped (black)
};

struct ImageSize {
  int width = 0;
  int height = 0;
};

// `src` scaled to fit in box x box, never enlarged, even sizes.
ImageSize FitInBox(int width, int height, int box);

// One ffmpeg run writing both poster JPEGs from the most representative
// frame (ffmpeg's `thumbnail` filter over one frame per second of the first
// scan_seconds, dark frames dropped first when `skip_dark`). When every
// sampled frame is dark, ffmpeg exits 0 without writing the files: the
// caller then runs it again with skip_dark = false. `keyframes_only`
// samples keyframes alone (-skip_frame nokey, a fraction of the decoding);
// a source whose keyframes in the window are all dark then needs a full run.
std::vector<std::string> PosterArgs(const std::string& ffmpeg, const std::string& input_path,
                                    const MediaInfo& src, const PosterOptions& options,
                                    const std::string& large_path, const std::string& small_path,
                                    bool skip_dark = true, bool keyframes_only = false);

struct SpriteOptions {
  double interval_s = 5;      // one preview every 5 s ...
  int max_thumbnails = 400;   // ... widened so that a long video has at most 400
  int thumb_width = 160;      // landscape previews are 160 wide; portrait ones 160 tall
  int columns = 10;           // a sheet is 10 x 10 previews
  int rows = 10;
};

struct SpritePlan {
  double interval_s = 0;
  int thumb_width = 0, thumb_height = 0;
  int columns = 0, rows = 0;
  int count = 0;   // previews: ceil(duration / interval)
  int sheets = 0;  // ceil(count / (columns * rows))
};

SpritePlan PlanSprite(const MediaInfo& src, const SpriteOptions& options);

// ffmpeg writing the sheets as `pattern` (e.g. ".../sprite_%03d.jpg",
// numbered from 0) with fps=1/interval, scale, tile. `keyframes_only`
// decodes only keyframes (-skip_frame nokey): ~13x cheaper, a preview shows
// the keyframe at or before its time; a source with too few keyframes may
// give fewer sheets than planned (then run it again without).
std::vector<std::string> SpriteArgs(const std::string& ffmpeg, const std::string& input_path,
                                    const SpritePlan& plan, const std::string& pattern,
                                    bool keyframes_only = false);

// The WebVTT index: one cue per preview, its payload the sheet's URL with a
// media fragment, e.g. "sprite_000.jpg#xywh=160,0,160,90". `sheet_url` maps
// a sheet number to its URL (relative to the .vtt file).
std::string WebVttSprite(const SpritePlan& plan, double duration_s,
                         const std::string& sheet_url_pattern = "sprite_%03d.jpg");

}  // namespace hub::media
