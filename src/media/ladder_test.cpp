#include "media/ladder.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "media/detail/test_util.h"
#include "media/playlist.h"
#include "media/progress.h"
#include "media/runner.h"
#include "media/thumbnails.h"

namespace hub::media {
namespace {

MediaInfo Source(int w, int h, Rational fps = {30, 1}, bool audio = true) {
  MediaInfo m;
  m.has_video = true;
  m.video_codec = "h264";
  m.width = m.coded_width = w;
  m.height = m.coded_height = h;
  m.frame_rate = fps;
  m.duration_s = 60;
  m.has_audio = audio;
  m.audio_codec = "aac";
  return m;
}

std::vector<std::string> Names(const std::vector<Rendition>& rs) {
  std::vector<std::string> n;
  for (const auto& r : rs) n.push_back(r.name + " " + std::to_string(r.width) + "x" + std::to_string(r.height));
  return n;
}

TEST(LadderTest, DefaultLadderFor1080p) {
  auto plan = PlanLadder(Source(1920, 1080), LadderOptions{});
  EXPECT_EQ(Names(plan), (std::vector<std::string>{"1080p 1920x1080", "720p 1280x720", "480p 854x480",
                                                   "360p 640x360", "240p 426x240"}));
  EXPECT_EQ(plan[0].video_bitrate, 5'000'000);
  EXPECT_EQ(plan[0].maxrate, 5'350'000);
  EXPECT_EQ(plan[0].bufsize, 7'500'000);
  EXPECT_EQ(plan[0].audio_bitrate, 128'000);
  EXPECT_EQ(plan[2].audio_bitrate, 96'000);
  EXPECT_EQ(plan[4].audio_bitrate, 64'000);
  EXPECT_EQ(plan[0].codecs, "avc1.640028,mp4a.40.2");  // High 4.0
  EXPECT_EQ(plan[1].codecs, "avc1.64001f,mp4a.40.2");  // High 3.1
  EXPECT_EQ(plan[2].codecs, "avc1.4d401f,mp4a.40.2");  // Main 3.1 (854x480x30 > 3.0's MB rate)
  EXPECT_EQ(plan[3].codecs, "avc1.4d401e,mp4a.40.2");  // Main 3.0
  EXPECT_EQ(plan[4].codecs, "avc1.42c01e,mp4a.40.2");  // Constrained Baseline 3.0
  for (const auto& r : plan) {
    EXPECT_EQ(r.width % 2, 0);
    EXPECT_EQ(r.height % 2, 0);
    EXPECT_DOUBLE_EQ(r.frame_rate, 30);
  }
}

TEST(LadderTest, NeverAboveTheSource) {
  EXPECT_EQ(Names(PlanLadder(Source(1280, 720), LadderOptions{})),
            (std::vector<std::string>{"720p 1280x720", "480p 854x480", "360p 640x360", "240p 426x240"}));
  // 4K: the ladder tops out at its highest rung.
  EXPECT_EQ(PlanLadder(Source(3840, 2160), LadderOptions{}).front().name, "1080p");
}

TEST(LadderTest, SourceBetweenRungsGetsItsOwnTopRung) {
  auto plan = PlanLadder(Source(1600, 900), LadderOptions{});
  EXPECT_EQ(Names(plan), (std::vector<std::string>{"900p 1600x900", "720p 1280x720", "480p 854x480",
                                                   "360p 640x360", "240p 426x240"}));
  // Interpolated by pixel count between 720p (2800k) and 1080p (5000k).
  EXPECT_EQ(plan[0].video_bitrate, 3'790'000);
  // Odd sizes are never rounded up past the source.
  auto odd = PlanLadder(Source(1921, 1081), LadderOptions{});
  EXPECT_EQ(odd.front().name, "1080p");
  // Below the lowest rung: one rendition at the source's size.
  auto tiny = PlanLadder(Source(320, 180), LadderOptions{});
  ASSERT_EQ(tiny.size(), 1u);
  EXPECT_EQ(tiny[0].name, "180p");
  EXPECT_EQ(tiny[0].width, 320);
  EXPECT_EQ(tiny[0].video_bitrate, 225'000);
}

TEST(LadderTest, PortraitVideosKeepTheirOrientation) {
  auto plan = PlanLadder(Source(1080, 1920), LadderOptions{});
  EXPECT_EQ(Names(plan), (std::vector<std::string>{"1080p 1080x1920", "720p 720x1280", "480p 480x854",
                                                   "360p 360x640", "240p 240x426"}));
}

TEST(LadderTest, FrameRateCapAndHighFrameRateBitrate) {
  auto p60 = PlanLadder(Source(1920, 1080, {60, 1}), LadderOptions{});
  EXPECT_EQ(p60[0].video_bitrate, 7'500'000);
  EXPECT_EQ(p60[0].level, 42);
  auto p120 = PlanLadder(Source(1920, 1080, {120, 1}), LadderOptions{});
  EXPECT_DOUBLE_EQ(p120[0].frame_rate, 60);
  auto ntsc = PlanLadder(Source(1280, 720, {30000, 1001}), LadderOptions{});
  EXPECT_EQ(ntsc[0].video_bitrate, 2'800'000);
}

TEST(LadderTest, ConfigurableRungsAndSilentSources) {
  LadderOptions o;
  o.rungs = {{360, 700, 96, "main"}, {720, 2500, 128, "high"}};
  auto plan = PlanLadder(Source(1920, 1080, {25, 1}, /*audio=*/false), o);
  EXPECT_EQ(Names(plan), (std::vector<std::string>{"720p 1280x720", "360p 640x360"}));
  EXPECT_EQ(plan[0].codecs, "avc1.64001f");
  EXPECT_EQ(plan[0].audio_bitrate, 0);
  auto args = FfmpegLadderArgs("ffmpeg", "/in", plan, o, "/out");
  EXPECT_EQ(std::find(args.begin(), args.end(), "-c:a"), args.end());
}

TEST(LadderTest, CodecStrings) {
  EXPECT_EQ(AvcCodecString("high", 40), "avc1.640028");
  EXPECT_EQ(AvcCodecString("High", 51), "avc1.640033");
  EXPECT_EQ(AvcCodecString("Main", 31), "avc1.4d401f");
  EXPECT_EQ(AvcCodecString("Constrained Baseline", 30), "avc1.42c01e");
  EXPECT_EQ(AvcCodecString("Baseline", 13), "avc1.42000d");
  EXPECT_EQ(H264Level(3840, 2160, 30, 20'000'000, "high"), 51);
  EXPECT_EQ(H264Level(1920, 1080, 60, 8'000'000, "high"), 42);
  EXPECT_EQ(H264Level(640, 360, 30, 1'000'000, "main"), 30);
}

size_t Count(const std::vector<std::string>& a, const std::string& s) {
  return static_cast<size_t>(std::count(a.begin(), a.end(), s));
}

std::string After(const std::vector<std::string>& a, const std::string& flag) {
  auto it = std::find(a.begin(), a.end(), flag);
  return it == a.end() || it + 1 == a.end() ? "" : *(it + 1);
}

TEST(LadderTest, OneCommandDecodesOnceAndWritesEveryRendition) {
  LadderOptions o;
  auto plan = PlanLadder(Source(1920, 1080), o);
  auto a = FfmpegLadderArgs("/usr/bin/ffmpeg", "/data/v/original", plan, o, "/data/streams/v/.work-hls-1");
  EXPECT_EQ(a.front(), "/usr/bin/ffmpeg");
  EXPECT_EQ(Count(a, "-i"), 1u);
  EXPECT_EQ(After(a, "-i"), "file:/data/v/original");
  EXPECT_EQ(After(a, "-progress"), "pipe:1");
  EXPECT_EQ(Count(a, "-nostats"), 1u);
  EXPECT_EQ(Count(a, "-nostdin"), 1u);
  EXPECT_EQ(After(a, "-protocol_whitelist"), "file");
  const std::string graph = After(a, "-filter_complex");
  EXPECT_EQ(graph,
            "[0:v:0]fps=30,split=5[s0][s1][s2][s3][s4];"
            "[s0]scale=w=1920:h=1080,setsar=1[v0];[s1]scale=w=1280:h=720,setsar=1[v1];"
            "[s2]scale=w=854:h=480,setsar=1[v2];[s3]scale=w=640:h=360,setsar=1[v3];"
            "[s4]scale=w=426:h=240,setsar=1[v4]");
  EXPECT_EQ(Count(a, "hls"), 5u);
  EXPECT_EQ(Count(a, "libx264"), 5u);
  EXPECT_EQ(Count(a, "expr:gte(t,n_forced*4)"), 5u);
  EXPECT_EQ(Count(a, "-sc_threshold"), 5u);
  EXPECT_EQ(Count(a, "mpegts"), 5u);
  EXPECT_EQ(Count(a, "vod"), 5u);
  EXPECT_EQ(After(a, "-hls_time"), "4");
  EXPECT_EQ(Count(a, "/data/streams/v/.work-hls-1/720p/index.m3u8"), 1u);
  EXPECT_EQ(Count(a, "/data/streams/v/.work-hls-1/720p/seg_%05d.ts"), 1u);
  EXPECT_EQ(After(a, "-b:v"), "5000k");
  EXPECT_EQ(After(a, "-maxrate"), "5350k");
  EXPECT_EQ(After(a, "-bufsize"), "7500k");
  EXPECT_EQ(After(a, "-level:v"), "4.0");
}

TEST(LadderTest, CopyRendition) {
  MediaInfo src = Source(1920, 1080);
  src.video_profile = "High";
  src.video_level = 40;
  src.pix_fmt = "yuv420p";
  src.audio_profile = "LC";
  ASSERT_TRUE(CanStreamCopy(src));
  Rendition copy = PlanCopy(src);
  EXPECT_TRUE(copy.copy);
  EXPECT_EQ(copy.name, "source");
  EXPECT_EQ(copy.codecs, "avc1.640028,mp4a.40.2");
  auto a = FfmpegCopyArgs("ffmpeg", "/in", copy, LadderOptions{}, "/out");
  EXPECT_EQ(After(a, "-c"), "copy");
  EXPECT_EQ(Count(a, "libx264"), 0u);
  EXPECT_EQ(a.back(), "/out/source/index.m3u8");
}

TEST(ThumbnailTest, SizesAndArgs) {
  EXPECT_EQ(FitInBox(1920, 1080, 1280).width, 1280);
  EXPECT_EQ(FitInBox(1920, 1080, 1280).height, 720);
  EXPECT_EQ(FitInBox(1080, 1920, 320).height, 320);
  EXPECT_EQ(FitInBox(1080, 1920, 320).width, 180);
  EXPECT_EQ(FitInBox(640, 360, 1280).width, 640);  // never enlarged
  MediaInfo src = Source(1920, 1080);
  auto a = PosterArgs("ffmpeg", "/in", src, PosterOptions{}, "/out/poster.jpg", "/out/poster-small.jpg");
  EXPECT_EQ(After(a, "-t"), "30.000");
  EXPECT_NE(After(a, "-filter_complex").find("thumbnail=n=30"), std::string::npos);
  EXPECT_NE(After(a, "-filter_complex").find("lavfi.signalstats.YAVG:value=24:function=greater"), std::string::npos);
  auto b = PosterArgs("ffmpeg", "/in", src, PosterOptions{}, "/a.jpg", "/b.jpg", /*skip_dark=*/false);
  EXPECT_EQ(After(b, "-filter_complex").find("signalstats"), std::string::npos);
  EXPECT_EQ(std::find(b.begin(), b.end(), "-skip_frame"), b.end());
  auto k = PosterArgs("ffmpeg", "/in", src, PosterOptions{}, "/a.jpg", "/b.jpg", true, /*keyframes_only=*/true);
  EXPECT_EQ(After(k, "-skip_frame"), "nokey");
  EXPECT_LT(std::find(k.begin(), k.end(), "-skip_frame"), std::find(k.begin(), k.end(), "-i"));
}

TEST(ThumbnailTest, SpritePlanAndWebVtt) {
  MediaInfo src = Source(1920, 1080);
  src.duration_s = 12.5;
  SpriteOptions o;
  o.interval_s = 5;
  o.columns = 2;
  o.rows = 1;
  SpritePlan p = PlanSprite(src, o);
  EXPECT_EQ(p.count, 3);
  EXPECT_EQ(p.sheets, 2);
  EXPECT_EQ(p.thumb_width, 160);
  EXPECT_EQ(p.thumb_height, 90);
  EXPECT_EQ(WebVttSprite(p, src.duration_s),
            "WEBVTT\n\n"
            "00:00:00.000 --> 00:00:05.000\nsprite_000.jpg#xywh=0,0,160,90\n\n"
            "00:00:05.000 --> 00:00:10.000\nsprite_000.jpg#xywh=160,0,160,90\n\n"
            "00:00:10.000 --> 00:00:12.500\nsprite_001.jpg#xywh=0,0,160,90\n");
  // A long video widens the interval to stay within max_thumbnails.
  src.duration_s = 4 * 3600;
  EXPECT_EQ(PlanSprite(src, SpriteOptions{}).interval_s, 36);
  auto a = SpriteArgs("ffmpeg", "/in", PlanSprite(src, SpriteOptions{}), "/out/sprite_%03d.jpg");
  EXPECT_EQ(After(a, "-filter_complex"), "[0:v:0]fps=1/36.000,scale=w=160:h=90,setsar=1,tile=10x10[sheet]");
  EXPECT_EQ(After(a, "-start_number"), "0");
  EXPECT_EQ(std::find(a.begin(), a.end(), "-skip_frame"), a.end());
  auto k = SpriteArgs("ffmpeg", "/in", PlanSprite(src, SpriteOptions{}), "/out/sprite_%03d.jpg", true);
  EXPECT_EQ(After(k, "-skip_frame"), "nokey");  // an input option: before -i
  EXPECT_LT(std::find(k.begin(), k.end(), "-skip_frame"), std::find(k.begin(), k.end(), "-i"));
}

// ---- the real ffmpeg, on small generated clips ----

class RealFfmpegTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::HaveProgram("ffmpeg") || !testing::HaveProgram("ffprobe")) GTEST_SKIP() << "no ffmpeg";
  }
  ProcessResult Run(std::vector<std::string> argv, std::function<void(std::string_view)> on_line = {}) {
    ProcessSpec spec;
    spec.argv = std::move(argv);
    spec.limits.timeout = std::chrono::seconds(60);
    spec.on_stdout_line = std::move(on_line);
    auto r = runner_->Run(spec);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : ProcessResult{};
  }
  std::string Stdout(std::vector<std::string> argv) {
    std::string out;
    auto r = Run(std::move(argv), [&](std::string_view l) { out += std::string(l) + "\n"; });
    EXPECT_TRUE(r.success()) << r.Describe();
    return out;
  }
  MediaInfo Probe(const std::string& path) {
    auto m = ParseProbe(Stdout(ProbeArgs("ffprobe", path)));
    EXPECT_TRUE(m.ok());
    return m.ok() ? *m : MediaInfo{};
  }
  // Generates `seconds` of testsrc2 + sine as H.264/AAC MP4.
  std::string MakeClip(const std::string& name, const std::string& size, double seconds,
                       const std::string& extra_video = "testsrc2") {
    std::string path = dir_ / name;
    auto r = Run({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", extra_video + "=size=" + size + ":rate=25",
                  "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", std::to_string(seconds),
                  "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
                  "-c:a", "aac", "-shortest", path});
    EXPECT_TRUE(r.success()) << r.Describe();
    return path;
  }
  static SizeOf SizesIn(const std::string& dir) {
    return [dir](const std::string& uri) -> std::optional<uint64_t> {
      struct stat st;
      if (::stat((dir + "/" + uri).c_str(), &st) != 0) return std::nullopt;
      return static_cast<uint64_t>(st.st_size);
    };
  }
  testing::TempDir dir_;
  std::unique_ptr<ProcessRunner> runner_ = NewProcessRunner();
};

TEST_F(RealFfmpegTest, LadderEncodesAlignedValidRenditionsWithProgress) {
  const std::string src = MakeClip("src.mp4", "480x270", 9);
  MediaInfo info = Probe(src);
  LadderOptions o;
  o.x264_preset = "ultrafast";
  auto plan = PlanLadder(info, o);
  ASSERT_EQ(Names(plan), (std::vector<std::string>{"270p 480x270", "240p 426x240"}));
  const std::string out = dir_ / "hls";
  for (const auto& d : RenditionDirs(plan, out)) std::filesystem::create_directories(d);
  ProgressParser progress(info.duration_s);
  std::vector<ProgressUpdate> updates;
  auto r = Run(FfmpegLadderArgs("ffmpeg", src, plan, o, out), [&](std::string_view line) {
    if (auto u = progress.Feed(line)) updates.push_back(*u);
  });
  ASSERT_TRUE(r.success()) << r.Describe();
  ASSERT_FALSE(updates.empty());
  EXPECT_TRUE(updates.back().end);
  EXPECT_EQ(updates.back().percent, 100);
  EXPECT_GT(updates.back().out_time_us, 8'000'000);

  std::vector<VariantStream> variants;
  for (const auto& rendition : plan) {
    SCOPED_TRACE(rendition.name);
    const std::string rdir = out + "/" + rendition.name;
    auto pl = ParseMediaPlaylist(testing::ReadFile(rdir + "/index.m3u8"));
    ASSERT_TRUE(pl.ok()) << pl.error().message;
    EXPECT_EQ(pl->segments.size(), 3u);  // 4 + 4 + 1 s
    EXPECT_EQ(pl->target_duration_s, 4);
    EXPECT_TRUE(pl->independent_segments);
    auto valid = ValidateRendition(*pl, SizesIn(rdir), info.duration_s, ValidationOptions{});
    EXPECT_TRUE(valid.ok()) << valid.error().message;
    auto bw = MeasureBandwidth(*pl, SizesIn(rdir));
    ASSERT_TRUE(bw.ok());
    EXPECT_GE(bw->peak_bps, bw->average_bps);
    variants.push_back({rendition, *bw, rendition.name + "/index.m3u8"});
    // The second segment of every rendition starts with a keyframe at 4 s.
    std::string frames = Stdout({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                 "frame=key_frame,pts_time", "-read_intervals", "%+#1", "-of", "csv",
                                 rdir + "/seg_00001.ts"});
    EXPECT_EQ(frames.rfind("frame,1,", 0), 0u) << frames;
    MediaInfo seg = Probe(rdir + "/seg_00000.ts");
    EXPECT_EQ(seg.width, rendition.width);
    EXPECT_EQ(seg.height, rendition.height);
    EXPECT_EQ(seg.video_codec, "h264");
    EXPECT_EQ(seg.audio_codec, "aac");
    EXPECT_EQ(seg.video_level, rendition.level);
  }
  std::string master = MasterPlaylist(variants);
  EXPECT_EQ(master.rfind("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n", 0), 0u);
  EXPECT_NE(master.find("RESOLUTION=480x270,CODECS=\"avc1.4d401e,mp4a.40.2\",FRAME-RATE=25.000\n270p/index.m3u8\n"),
            std::string::npos) << master;
}

TEST_F(RealFfmpegTest, CopyRenditionIsValidHls) {
  const std::string src = MakeClip("src.mp4", "320x180", 9);  // keyframes every 2 s
  MediaInfo info = Probe(src);
  ASSERT_TRUE(CanStreamCopy(info));
  Rendition copy = PlanCopy(info);
  const std::string out = dir_ / "hls";
  std::filesystem::create_directories(RenditionDirs({copy}, out).front());
  auto r = Run(FfmpegCopyArgs("ffmpeg", src, copy, LadderOptions{}, out));
  ASSERT_TRUE(r.success()) << r.Describe();
  const std::string rdir = out + "/source";
  auto pl = ParseMediaPlaylist(testing::ReadFile(rdir + "/index.m3u8"));
  ASSERT_TRUE(pl.ok());
  ValidationOptions v;
  v.exact_durations = false;
  auto valid = ValidateRendition(*pl, SizesIn(rdir), info.duration_s, v);
  EXPECT_TRUE(valid.ok()) << valid.error().message;
  // ultrafast writes Constrained Baseline; the level is the source's own.
  EXPECT_EQ(copy.codecs.substr(0, 9), "avc1.42c0");
  EXPECT_EQ(copy.level, info.video_level);
  EXPECT_TRUE(copy.codecs.ends_with(",mp4a.40.2"));
}

TEST_F(RealFfmpegTest, PosterSkipsABlackOpeningAndComesInTwoSizes) {
  // 2 s of black, then 4 s of picture.
  const std::string src = dir_ / "blackstart.mp4";
  auto made = Run({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=black:size=640x360:rate=25:duration=2",
                   "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4", "-filter_complex",
                   "[0:v][1:v]concat=n=2:v=1:a=0", "-c:v", "libx264", "-preset", "ultrafast", src});
  ASSERT_TRUE(made.success()) << made.Describe();
  MediaInfo info = Probe(src);
  PosterOptions o;
  o.large_box = 320;
  o.small_box = 160;
  auto r = Run(PosterArgs("ffmpeg", src, info, o, dir_ / "poster.jpg", dir_ / "poster-small.jpg"));
  ASSERT_TRUE(r.success()) << r.Describe();
  MediaInfo big = Probe(dir_ / "poster.jpg");
  MediaInfo small = Probe(dir_ / "poster-small.jpg");
  EXPECT_EQ(big.width, 320);
  EXPECT_EQ(big.height, 180);
  EXPECT_EQ(small.width, 160);
  EXPECT_EQ(small.height, 90);
  // Its average luma is far from black.
  std::string stats = Stdout({"ffprobe", "-v", "error", "-f", "lavfi", "-i",
                              "movie=" + (dir_ / "poster.jpg") + ",signalstats", "-show_entries",
                              "frame_tags=lavfi.signalstats.YAVG", "-of", "csv=p=0"});
  EXPECT_GT(std::stod(stats), 40.0) << stats;

  // An all-black video: nothing passes the dark filter, ffmpeg exits 0
  // without writing; the fallback without it writes the poster.
  const std::string black = dir_ / "black.mp4";
  ASSERT_TRUE(Run({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=black:size=320x180:rate=25:duration=2",
                   "-c:v", "libx264", "-preset", "ultrafast", black}).success());
  MediaInfo binfo = Probe(black);
  auto none = Run(PosterArgs("ffmpeg", black, binfo, o, dir_ / "b.jpg", dir_ / "bs.jpg"));
  EXPECT_TRUE(none.success());
  struct stat st;
  EXPECT_NE(::stat((dir_ / "b.jpg").c_str(), &st), 0);
  auto fallback = Run(PosterArgs("ffmpeg", black, binfo, o, dir_ / "b.jpg", dir_ / "bs.jpg", false));
  EXPECT_TRUE(fallback.success());
  EXPECT_EQ(::stat((dir_ / "b.jpg").c_str(), &st), 0);
}

TEST_F(RealFfmpegTest, SpriteSheetMatchesItsWebVtt) {
  const std::string src = MakeClip("src.mp4", "320x180", 6);
  MediaInfo info = Probe(src);
  SpriteOptions o;
  o.interval_s = 2;
  o.columns = 2;
  o.rows = 2;
  o.thumb_width = 80;
  SpritePlan plan = PlanSprite(info, o);
  EXPECT_EQ(plan.count, 3);
  EXPECT_EQ(plan.sheets, 1);
  auto r = Run(SpriteArgs("ffmpeg", src, plan, dir_ / "sprite_%03d.jpg"));
  ASSERT_TRUE(r.success()) << r.Describe();
  MediaInfo sheet = Probe(dir_ / "sprite_000.jpg");
  EXPECT_EQ(sheet.width, 2 * 80);
  EXPECT_EQ(sheet.height, 2 * 46);
  struct stat st;
  EXPECT_NE(::stat((dir_ / "sprite_001.jpg").c_str(), &st), 0);
  std::string vtt = WebVttSprite(plan, info.duration_s);
  EXPECT_NE(vtt.find("00:00:04.000 --> 00:00:06.000\nsprite_000.jpg#xywh=0,46,80,46\n"), std::string::npos) << vtt;
}

}  // namespace
}  // namespace hub::media
