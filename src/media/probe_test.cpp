#include "media/probe.h"

#include <gtest/gtest.h>

#include "media/detail/test_util.h"
#include "media/runner.h"

namespace hub::media {
namespace {

using testing::TestData;

MediaInfo Parse(const std::string& file) {
  auto r = ParseProbe(TestData(file));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : MediaInfo{};
}

TEST(ProbeTest, H264AacClipFromRealFfprobe) {
  MediaInfo m = Parse("h264_aac.ffprobe.json");
  EXPECT_NEAR(m.duration_s, 2.0, 0.05);
  EXPECT_EQ(m.container, "mov,mp4,m4a,3gp,3g2,mj2");
  EXPECT_TRUE(m.has_video);
  EXPECT_EQ(m.video_codec, "h264");
  EXPECT_EQ(m.video_profile, "High");
  EXPECT_GT(m.video_level, 0);
  EXPECT_EQ(m.pix_fmt, "yuv420p");
  EXPECT_EQ(m.width, 320);
  EXPECT_EQ(m.height, 240);
  EXPECT_EQ(m.rotation, 0);
  EXPECT_EQ(m.frame_rate, (Rational{25, 1}));
  EXPECT_GT(m.video_bit_rate, 0);
  EXPECT_GT(m.bit_rate, 0);
  EXPECT_TRUE(m.has_audio);
  EXPECT_EQ(m.audio_codec, "aac");
  EXPECT_EQ(m.audio_profile, "LC");
  EXPECT_EQ(m.sample_rate, 44100);
  EXPECT_EQ(m.channels, 1);
  EXPECT_TRUE(CheckPlayable(m, MediaLimits{}).ok());
  EXPECT_TRUE(CanStreamCopy(m));
}

TEST(ProbeTest, RotatedPhoneVideoReportsPortraitDisplaySize) {
  // 320x180 coded, display matrix rotation 90 (ffmpeg -metadata:s:v:0 rotate=90).
  MediaInfo m = Parse("rotated.ffprobe.json");
  EXPECT_EQ(m.coded_width, 320);
  EXPECT_EQ(m.coded_height, 180);
  EXPECT_EQ(m.rotation, 90);
  EXPECT_EQ(m.width, 180);
  EXPECT_EQ(m.height, 320);
  EXPECT_EQ(m.short_side(), 180);
  EXPECT_EQ(m.frame_rate, (Rational{30000, 1001}));
  EXPECT_NEAR(m.frame_rate.value(), 29.97, 0.01);
  // MPEG-TS cannot carry the rotation: the copy would play sideways.
  EXPECT_FALSE(CanStreamCopy(m));
}

TEST(ProbeTest, LegacyRotateTagAndNegativeSideData) {
  std::string tag = R"({"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
    "tags":{"rotate":"270"},"avg_frame_rate":"30/1"}],"format":{"duration":"3.0"}})";
  auto m = ParseProbe(tag);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rotation, 270);
  EXPECT_EQ(m->width, 1080);
  EXPECT_EQ(m->height, 1920);
  std::string neg = R"({"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
    "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]}],"format":{"duration":"3.0"}})";
  m = ParseProbe(neg);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rotation, 270);
  EXPECT_EQ(m->height, 1920);
  std::string upside = R"({"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,
    "side_data_list":[{"rotation":180}]}],"format":{"duration":"3.0"}})";
  m = ParseProbe(upside);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rotation, 180);
  EXPECT_EQ(m->width, 1920);
}

TEST(ProbeTest, AudioOnlyIsRefusedInPlainWords) {
  MediaInfo m = Parse("audio_only.ffprobe.json");
  EXPECT_FALSE(m.has_video);
  EXPECT_TRUE(m.has_audio);
  EXPECT_EQ(m.sample_rate, 48000);
  auto r = CheckPlayable(m, MediaLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::unplayable);
  EXPECT_EQ(r.error().message, "The file has no video track; audio-only files are not supported.");
}

TEST(ProbeTest, CoverArtIsNotAVideoTrack) {
  std::string mp3 = R"({"streams":[{"codec_type":"audio","codec_name":"mp3"},
    {"codec_type":"video","codec_name":"mjpeg","width":500,"height":500,"disposition":{"attached_pic":1}}],
    "format":{"duration":"180.0","format_name":"mp3"}})";
  auto m = ParseProbe(mp3);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_video);
}

// What ffprobe prints for files it cannot open (captured, see testdata/README.md):
// "{\n\n}" on stdout, exit status 1, "Invalid data found when processing input".
TEST(ProbeTest, TextRenamedMp4EmptyAndTruncatedFilesAreUnreadable) {
  for (const char* name : {"text", "empty", "trunc"}) {
    SCOPED_TRACE(name);
    auto r = ParseProbe(TestData(std::string(name) + ".ffprobe.json"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), errc::unplayable);
    EXPECT_NE(r.error().message.find("could not be read as a video"), std::string::npos);
    EXPECT_NE(TestData(std::string(name) + ".ffprobe.stderr").find("Invalid data found"), std::string::npos);
  }
  EXPECT_EQ(UnreadableFileError("moov atom not found").code, errc::unplayable);
}

TEST(ProbeTest, NotJsonIsBadOutput) {
  auto r = ParseProbe("ffprobe: command not found");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::bad_output);
}

TEST(ProbeTest, OtherCodecsAndTheCodecList) {
  MediaInfo vp9 = Parse("vp9.ffprobe.json");
  EXPECT_EQ(vp9.video_codec, "vp9");
  EXPECT_EQ(vp9.audio_codec, "opus");
  EXPECT_EQ(vp9.container, "matroska,webm");
  EXPECT_NEAR(vp9.duration_s, 2.008, 0.001);
  EXPECT_TRUE(CheckPlayable(vp9, MediaLimits{}).ok());
  EXPECT_FALSE(CanStreamCopy(vp9));
  MediaLimits only_h264;
  only_h264.video_codecs = {"h264"};
  auto r = CheckPlayable(vp9, only_h264);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "The video is encoded with the vp9 codec, which this hub cannot convert. Export it as "
            "H.264 (MP4) and upload it again.");
  MediaInfo mpeg4 = Parse("mpeg4.ffprobe.json");
  EXPECT_EQ(mpeg4.container, "avi");
  EXPECT_FALSE(mpeg4.has_audio);
  EXPECT_TRUE(CheckPlayable(mpeg4, MediaLimits{}).ok());
  EXPECT_FALSE(CanStreamCopy(mpeg4));
}

MediaInfo Video(int w, int h, double duration) {
  MediaInfo m;
  m.has_video = true;
  m.video_codec = "h264";
  m.width = m.coded_width = w;
  m.height = m.coded_height = h;
  m.duration_s = duration;
  return m;
}

TEST(ProbeTest, LimitsOnHeightAndDuration) {
  MediaLimits limits;
  limits.max_height = 1080;
  limits.max_duration_s = 4 * 3600;
  auto r = CheckPlayable(Video(3840, 2160, 60), limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "The video is 2160p (3840x2160); this hub accepts videos up to 1080p. Export a smaller "
            "version and upload it again.");
  // A portrait 1080p phone video is 1080p, not 1920p.
  EXPECT_TRUE(CheckPlayable(Video(1080, 1920, 60), limits).ok());
  EXPECT_TRUE(CheckPlayable(Video(1920, 1080, 4 * 3600), limits).ok());
  r = CheckPlayable(Video(1920, 1080, 5 * 3600 + 600), limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "The video is 5 h 10 min long; this hub accepts videos up to 4 h. Split it into parts "
            "and upload them separately.");
}

TEST(ProbeTest, ZeroDurationOrSizeIsUndecodable) {
  auto r = CheckPlayable(Video(1920, 1080, 0), MediaLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no playable frames"), std::string::npos);
  r = CheckPlayable(Video(0, 0, 10), MediaLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("damaged or incomplete"), std::string::npos);
}

TEST(ProbeTest, ArgsAllowOnlyTheFileProtocol) {
  auto a = ProbeArgs("ffprobe", "/data/v/original");
  ASSERT_GE(a.size(), 3u);
  EXPECT_EQ(a.front(), "ffprobe");
  EXPECT_EQ(a.back(), "file:/data/v/original");
  auto it = std::find(a.begin(), a.end(), "-protocol_whitelist");
  ASSERT_NE(it, a.end());
  EXPECT_EQ(*(it + 1), "file");
  for (const char* flag : {"-show_format", "-show_streams", "json"}) {
    EXPECT_NE(std::find(a.begin(), a.end(), flag), a.end()) << flag;
  }
}

// The real ffprobe through the real runner, on clips made here.
class RealProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::HaveProgram("ffmpeg") || !testing::HaveProgram("ffprobe")) GTEST_SKIP() << "no ffmpeg";
  }
  ProcessResult RunOk(std::vector<std::string> argv, std::string* out = nullptr) {
    ProcessSpec spec;
    spec.argv = std::move(argv);
    spec.limits.timeout = std::chrono::seconds(60);
    spec.on_stdout_line = [&](std::string_view l) {
      if (out) *out += std::string(l) + "\n";
    };
    auto r = runner_->Run(spec);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : ProcessResult{};
  }
  testing::TempDir dir_;
  std::unique_ptr<ProcessRunner> runner_ = NewProcessRunner();
};

TEST_F(RealProbeTest, ProbesAGeneratedClipAndATextFile) {
  const std::string clip = dir_ / "clip.mp4";
  auto made = RunOk({"ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=192x108:rate=24",
                     "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1", "-c:v", "libx264",
                     "-preset", "ultrafast", "-c:a", "aac", "-shortest", clip});
  ASSERT_TRUE(made.success()) << made.Describe();
  std::string json;
  auto probed = RunOk(ProbeArgs("ffprobe", clip), &json);
  ASSERT_TRUE(probed.success()) << probed.Describe();
  auto m = ParseProbe(json);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->width, 192);
  EXPECT_EQ(m->height, 108);
  EXPECT_EQ(m->frame_rate, (Rational{24, 1}));
  EXPECT_EQ(m->sample_rate, 48000);
  EXPECT_NEAR(m->duration_s, 1.0, 0.1);
  EXPECT_TRUE(CheckPlayable(*m, MediaLimits{}).ok());

  const std::string text = dir_ / "notes.mp4";
  std::ofstream(text) << "this is not a video\n";
  json.clear();
  auto bad = RunOk(ProbeArgs("ffprobe", text), &json);
  EXPECT_EQ(bad.end, ProcessEnd::kExited);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.stderr_tail.find("Invalid data found"), std::string::npos) << bad.stderr_tail;
  auto parsed = ParseProbe(json);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.code(), errc::unplayable);
}

// Captured from the real ffprobe (TailArgs) on an 8 s +faststart MP4 of
// 810,800 bytes and on its first 405,400 bytes.
TEST(ProbeTest, FileCutAfterItsIndexIsIncomplete) {
  MediaInfo info = Video(320, 240, 8);
  const char* whole = "7.960000,806190,4228\n7.964444,810418,185\n7.987664,810603,197\n";
  EXPECT_TRUE(CheckComplete(info, whole, "", 810800).ok());
  const char* cut = "3.970612,402899,198\n3.993832,403097,200\n4.000000,403297,2103\n";
  const char* err =
      "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5567d35078c0] stream 1, offset 0x63647: partial file\n";
  auto r = CheckComplete(info, cut, err, 405400);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::unplayable);
  EXPECT_NE(r.error().message.find("incomplete: it stops at 4 s of 8 s"), std::string::npos)
      << r.error().message;
  // Either sign alone is enough: a packet past the end, or ffprobe's words.
  EXPECT_FALSE(CheckComplete(info, "4.0,405000,2103\n", "", 405400).ok());
  EXPECT_FALSE(CheckComplete(info, "", err, 405400).ok());
  // Unknown positions and sizes prove nothing.
  EXPECT_TRUE(CheckComplete(info, "N/A,N/A,N/A\n7.9,N/A,100\n", "", 405400).ok());
}

TEST(ProbeTest, TailArgsSeekToTheLastSecond) {
  auto a = TailArgs("ffprobe", "/in.mp4", 8.5);
  EXPECT_NE(std::find(a.begin(), a.end(), "7.500%"), a.end());
  EXPECT_EQ(a.back(), "file:/in.mp4");  // a path with ":" stays a path
  EXPECT_NE(std::find(a.begin(), a.end(), "file"), a.end());
  auto b = TailArgs("ffprobe", "/in.mp4", 0.4);
  EXPECT_NE(std::find(b.begin(), b.end(), "0.000%"), b.end());
}

}  // namespace
}  // namespace hub::media
