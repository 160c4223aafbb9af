// Tests for video/: probing, decoding, encoding, image folders and synthetic videos.
// Every input is made here with libav (or the ffmpeg CLI where noted).

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"
#include "util/strings.h"
#include "video/av_util.h"
#include "video/decoder.h"
#include "video/encoder.h"
#include "video/probe.h"
#include "video/remux.h"
#include "video/sampler.h"
#include "video/synthetic.h"
#include "video/tone_map.h"

namespace reel {
namespace {

using testing::TempDir;

// Decodes every frame of `path`; fails the test on error.
std::vector<Frame> DecodeAll(const std::string& path, const DecodeOptions& options = {}) {
  auto source = OpenFrameSource(path, options);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  std::vector<Frame> frames;
  if (!source.ok()) return frames;
  while (true) {
    Frame f;
    Result<bool> more = (*source)->Next(&f);
    EXPECT_TRUE(more.ok()) << more.status().ToString();
    if (!more.ok() || !*more) break;
    frames.push_back(std::move(f));
  }
  return frames;
}

// Frame split vertically: left half `left`, right half `right`.
Frame TwoColourFrame(int w, int h, Rgb left, Rgb right) {
  Frame f;
  f.Allocate(w, h, PixelFormat::kRgb24);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const Rgb& c = x < w / 2 ? left : right;
      for (int k = 0; k < 3; ++k) f.row(y)[3 * x + k] = c[k];
    }
  }
  return f;
}

Status WriteFrames(const std::string& path, const Frame& frame, int count, EncodeOptions o) {
  o.width = frame.width;
  o.height = frame.height;
  REEL_ASSIGN_OR_RETURN(auto enc, VideoEncoder::Open(path, o));
  for (int i = 0; i < count; ++i) REEL_RETURN_IF_ERROR(enc->Write(frame));
  return enc->Finish();
}

// Mean colour of a small square around (x, y).
std::array<double, 3> MeanColour(const Frame& f, int x, int y, int r = 2) {
  std::array<double, 3> sum{};
  int n = 0;
  for (int yy = y - r; yy <= y + r; ++yy) {
    for (int xx = x - r; xx <= x + r; ++xx) {
      for (int k = 0; k < 3; ++k) sum[k] += f.row(yy)[3 * xx + k];
      ++n;
    }
  }
  for (auto& s : sum) s /= n;
  return sum;
}

void ExpectColourNear(const std::array<double, 3>& got, Rgb want, double tol, const char* what) {
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(got[k], want[k], tol) << what << " channel " << k;
  }
}

// ---------------------------------------------------------------- containers and codecs

struct Flavour {
  const char* file;
  const char* codec;
  const char* want_codec;
  const char* want_container;  // substring of the demuxer name
};

class RoundTripTest : public ::testing::TestWithParam<Flavour> {};

TEST_P(RoundTripTest, ProbeAndDecodeAgreeWithWhatWasWritten) {
  const Flavour& fl = GetParam();
  TempDir dir;
  const std::string path = dir.File(fl.file);
  const int64_t n = 37;
  EncodeOptions enc;
  enc.codec = fl.codec;
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(n, 64, 48), enc).ok());

  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->codec, fl.want_codec);
  EXPECT_NE(info->container.find(fl.want_container), std::string::npos) << info->container;
  EXPECT_EQ(info->width, 64);
  EXPECT_EQ(info->height, 48);
  EXPECT_EQ(info->frame_count, n);
  EXPECT_EQ(info->frame_rate, Rational(25, 1));
  EXPECT_EQ(info->duration, Rational(n, 25));
  EXPECT_FALSE(info->variable_frame_rate);
  EXPECT_FALSE(info->has_audio);
  EXPECT_EQ(info->rotation, 0);
  EXPECT_EQ(info->sample_aspect_ratio, Rational(1, 1));

  const std::vector<Frame> frames = DecodeAll(path);
  ASSERT_EQ(static_cast<int64_t>(frames.size()), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(frames[i].index, i);
    EXPECT_EQ(frames[i].time, Rational(i, 25)) << "frame " << i;
    EXPECT_EQ(frames[i].width, 64);
    EXPECT_EQ(frames[i].height, 48);
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, RoundTripTest,
                         ::testing::Values(Flavour{"a.mp4", "libx264", "h264", "mp4"},
                                           Flavour{"b.mkv", "libx264", "h264", "matroska"},
                                           Flavour{"c.webm", "libvpx-vp9", "vp9", "webm"},
                                           Flavour{"d.avi", "mpeg4", "mpeg4", "avi"},
                                           Flavour{"e.mov", "mpeg4", "mpeg4", "mov"},
                                           Flavour{"f.mkv", "ffv1", "ffv1", "matroska"},
                                           Flavour{"g.mp4", "libx265", "hevc", "mp4"}),
                         [](const ::testing::TestParamInfo<Flavour>& p) {
                           std::string name = std::string(p.param.codec) + "_" + p.param.file;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ProbeTest, NtscFrameRateIsExact) {
  TempDir dir;
  const std::string path = dir.File("ntsc.mp4");
  const int64_t n = 31;
  const Rational fps(30000, 1001);
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(n, 64, 48, fps)).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_rate, fps);
  EXPECT_EQ(info->duration, Rational(n * 1001, 30000));
  EXPECT_FALSE(info->variable_frame_rate);
  const std::vector<Frame> frames = DecodeAll(path);
  ASSERT_EQ(frames.size(), static_cast<size_t>(n));
  EXPECT_EQ(frames[30].time, Rational(30 * 1001, 30000));
}

TEST(ProbeTest, OddSizes) {
  TempDir dir;
  struct Case {
    const char* file;
    const char* codec;
    const char* pix;
  };
  for (const Case& c : {Case{"odd.mkv", "libx264", "yuv444p"}, Case{"odd.avi", "mpeg4", ""},
                        Case{"odd2.mkv", "ffv1", ""}}) {
    const std::string path = dir.File(c.file);
    EncodeOptions enc;
    enc.codec = c.codec;
    enc.pixel_format = c.pix;
    Status s = WriteSyntheticVideo(path, testing::SimpleVideo(9, 67, 45), enc);
    ASSERT_TRUE(s.ok()) << c.file << ": " << s.ToString();
    Result<VideoInfo> info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->width, 67) << c.file;
    EXPECT_EQ(info->height, 45) << c.file;
    EXPECT_EQ(info->frame_count, 9) << c.file;
    const std::vector<Frame> frames = DecodeAll(path);
    ASSERT_EQ(frames.size(), 9u) << c.file;
    EXPECT_EQ(frames[0].width, 67);
    EXPECT_EQ(frames[0].height, 45);
  }
}

TEST(ProbeTest, VariableFrameRate) {
  TempDir dir;
  const std::string path = dir.File("vfr.mp4");
  // Millisecond timestamps with irregular gaps, as phone cameras write them.
  const std::vector<int64_t> pts = {0, 33, 66, 100, 180, 220, 300, 333, 500, 533, 566, 700};
  EncodeOptions o;
  o.width = 64;
  o.height = 48;
  o.frame_rate = Rational(30, 1);
  o.time_base = Rational(1, 1000);
  {
    auto enc = VideoEncoder::Open(path, o);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    const SyntheticVideo v = testing::SimpleVideo(static_cast<int64_t>(pts.size()));
    Frame f;
    for (size_t i = 0; i < pts.size(); ++i) {
      v.Render(static_cast<int64_t>(i), &f);
      ASSERT_TRUE((*enc)->Write(f, pts[i]).ok());
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->variable_frame_rate);
  EXPECT_EQ(info->frame_count, static_cast<int64_t>(pts.size()));
  EXPECT_GT(info->duration, Rational(700, 1000));
  EXPECT_LE(info->duration, Rational(800, 1000));
  const std::vector<Frame> frames = DecodeAll(path);
  ASSERT_EQ(frames.size(), pts.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    EXPECT_EQ(frames[i].time, Rational(pts[i], 1000)) << "frame " << i;
  }
}

TEST(ProbeTest, ConstantRateIsNotFlaggedVariable) {
  // 29.97 fps in a 1/1000 time base alternates 33 and 34 ms: rounding, not VFR.
  TempDir dir;
  const std::string path = dir.File("cfr_ms.mkv");
  EncodeOptions enc;
  ASSERT_TRUE(
      WriteSyntheticVideo(path, testing::SimpleVideo(40, 64, 48, Rational(30000, 1001)), enc).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->time_base, Rational(1, 1000));  // Matroska's millisecond time base
  EXPECT_FALSE(info->variable_frame_rate);
  EXPECT_EQ(info->frame_count, 40);
}

TEST(ProbeTest, RotationFromDisplayMatrix) {
  TempDir dir;
  const Frame frame = TwoColourFrame(64, 48, {220, 30, 30}, {30, 30, 220});
  for (int rotation : {90, 180, 270}) {
    const std::string path = dir.File("rot" + std::to_string(rotation) + ".mp4");
    EncodeOptions o;
    o.rotation = rotation;
    ASSERT_TRUE(WriteFrames(path, frame, 5, o).ok());
    Result<VideoInfo> info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->rotation, rotation);
    EXPECT_EQ(info->width, 64);
    const bool turned = rotation != 180;
    EXPECT_EQ(info->display_width(), turned ? 48 : 64);
    EXPECT_EQ(info->display_height(), turned ? 64 : 48);

    const std::vector<Frame> frames = DecodeAll(path);
    ASSERT_EQ(frames.size(), 5u);
    const Frame& f = frames[0];
    ASSERT_EQ(f.width, turned ? 48 : 64);
    ASSERT_EQ(f.height, turned ? 64 : 48);
    // Turning clockwise by 90 puts the left (red) half on top; 180 puts it right;
    // 270 puts it at the bottom.
    const Rgb red{220, 30, 30}, blue{30, 30, 220};
    if (rotation == 90) {
      ExpectColourNear(MeanColour(f, 24, 10), red, 12, "top");
      ExpectColourNear(MeanColour(f, 24, 53), blue, 12, "bottom");
    } else if (rotation == 180) {
      ExpectColourNear(MeanColour(f, 10, 24), blue, 12, "left");
      ExpectColourNear(MeanColour(f, 53, 24), red, 12, "right");
    } else {
      ExpectColourNear(MeanColour(f, 24, 10), blue, 12, "top");
      ExpectColourNear(MeanColour(f, 24, 53), red, 12, "bottom");
    }

    if (testing::HaveFfmpegCli()) {
      // ffmpeg's own autorotate must give the same picture.
      auto r = testing::RunProcess({"ffmpeg", "-v", "error", "-i", path, "-frames:v", "1", "-f",
                                    "rawvideo", "-pix_fmt", "rgb24", "-"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ASSERT_EQ(r.out.size(), f.data.size()) << "ffmpeg's rotated size differs";
      double diff = 0;
      for (size_t i = 0; i < f.data.size(); ++i) {
        diff += std::abs(static_cast<int>(static_cast<uint8_t>(r.out[i])) - f.data[i]);
      }
      EXPECT_LT(diff / f.data.size(), 8.0) << "rotation " << rotation << " differs from ffmpeg";
    }

    DecodeOptions raw;
    raw.autorotate = false;
    const std::vector<Frame> unturned = DecodeAll(path, raw);
    ASSERT_FALSE(unturned.empty());
    EXPECT_EQ(unturned[0].width, 64);
    ExpectColourNear(MeanColour(unturned[0], 10, 24), red, 12, "unrotated left");
  }
}

TEST(ProbeTest, NonSquarePixels) {
  TempDir dir;
  const std::string path = dir.File("anamorphic.mkv");
  EncodeOptions o;
  o.sample_aspect_ratio = Rational(2, 1);
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(6, 64, 48), o).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->sample_aspect_ratio, Rational(2, 1));
  EXPECT_EQ(info->display_width(), 128);
  EXPECT_EQ(info->display_height(), 48);
  const std::vector<Frame> square = DecodeAll(path);
  ASSERT_EQ(square.size(), 6u);
  EXPECT_EQ(square[0].width, 128);
  EXPECT_EQ(square[0].height, 48);
  DecodeOptions stored;
  stored.square_pixels = false;
  const std::vector<Frame> raw = DecodeAll(path, stored);
  ASSERT_FALSE(raw.empty());
  EXPECT_EQ(raw[0].width, 64);
}

TEST(ProbeTest, NonZeroStartTime) {
  TempDir dir;
  // A Matroska file whose first frame is at 2 s, and an MPEG-TS file (whose muxer starts
  // the clock after the B-frame delay). Frame times are relative to the stream start.
  const std::string mkv = dir.File("offset.mkv");
  {
    EncodeOptions o;
    o.width = 64;
    o.height = 48;
    auto enc = VideoEncoder::Open(mkv, o);
    ASSERT_TRUE(enc.ok());
    const SyntheticVideo v = testing::SimpleVideo(20, 64, 48);
    Frame f;
    for (int64_t i = 0; i < 20; ++i) {
      v.Render(i, &f);
      ASSERT_TRUE((*enc)->Write(f, 50 + i).ok());  // 50 frames = 2 s at 25 fps
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  const std::string ts = dir.File("broadcast.ts");
  ASSERT_TRUE(WriteSyntheticVideo(ts, testing::SimpleVideo(20, 64, 48)).ok());

  for (const std::string& path : {mkv, ts}) {
    Result<VideoInfo> info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_GT(info->start_time, Rational(0, 1)) << path;
    EXPECT_EQ(info->frame_count, 20);
    EXPECT_EQ(info->duration, Rational(20, 25)) << path;
    const std::vector<Frame> frames = DecodeAll(path);
    ASSERT_EQ(frames.size(), 20u);
    for (size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(frames[i].time, Rational(static_cast<int64_t>(i), 25)) << path << " frame " << i;
    }
    // The absolute timestamp carries the offset.
    EXPECT_EQ(TicksToSeconds(frames[0].pts, info->time_base), info->start_time) << path;
  }
  EXPECT_EQ(ProbeVideo(mkv)->start_time, Rational(2, 1));
  EXPECT_EQ(ProbeVideo(ts)->time_base, Rational(1, 90000));
}

TEST(ProbeTest, AudioTrackIsReported) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string silent = dir.File("silent.mp4");
  const std::string with_audio = dir.File("audio.mp4");
  ASSERT_TRUE(WriteSyntheticVideo(silent, testing::SimpleVideo(25, 64, 48)).ok());
  auto r = testing::RunProcess({"ffmpeg", "-v", "error", "-i", silent, "-f", "lavfi", "-i",
                                "sine=frequency=440:duration=1", "-c:v", "copy", "-c:a", "aac",
                                "-shortest", with_audio});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<VideoInfo> info = ProbeVideo(with_audio);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->has_audio);
  EXPECT_EQ(info->frame_count, 25);
  EXPECT_EQ(DecodeAll(with_audio).size(), 25u);

  // Audio alone is not a video.
  const std::string tone = dir.File("tone.m4a");
  r = testing::RunProcess({"ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                           "sine=frequency=440:duration=1", "-c:a", "aac", tone});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Result<VideoInfo> audio_only = ProbeVideo(tone);
  ASSERT_FALSE(audio_only.ok());
  EXPECT_EQ(audio_only.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(audio_only.status().message().find("no video stream"), std::string::npos);
}

// `ffmpeg -ss 1.3 -i in.mp4 -c copy out.mp4`, the usual way to trim without re-encoding,
// keeps the frames from the keyframe before 1.3 s and writes an edit list that hides them:
// players show 42 of the 75 frames, the first being frame 33 (1.32 s) of the original.
TEST(ProbeTest, EditListTrimmedMp4ShowsTheFramesAfterTheCut) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string source = dir.File("source.mp4");
  const std::string trimmed = dir.File("trimmed.mp4");
  SyntheticVideo v = testing::SimpleVideo(75, 96, 64);  // one keyframe, at frame 0
  ASSERT_TRUE(WriteSyntheticVideo(source, v).ok());
  auto r = testing::RunProcess(
      {"ffmpeg", "-v", "error", "-ss", "1.3", "-i", source, "-c", "copy", trimmed});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  Result<VideoInfo> info = ProbeVideo(trimmed);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 42);
  EXPECT_EQ(info->duration, Rational(42, 25));
  EXPECT_EQ(info->frame_rate, Rational(25, 1));

  const std::vector<Frame> all = DecodeAll(source);
  const std::vector<Frame> shown = DecodeAll(trimmed);
  ASSERT_EQ(all.size(), 75u);
  ASSERT_EQ(shown.size(), 42u);
  for (size_t i = 0; i < shown.size(); ++i) {
    EXPECT_EQ(shown[i].time, Rational(static_cast<int64_t>(i), 25)) << "frame " << i;
    EXPECT_TRUE(shown[i].data == all[33 + i].data)
        << "frame " << i << " is not source frame " << 33 + i;
  }
}

TEST(ProbeTest, ContainerTagsAreRead) {
  TempDir dir;
  const std::string path = dir.File("tagged.mkv");
  EncodeOptions o;
  o.metadata["title"] = "Harbour at dusk";
  o.metadata["description"] = "boats";
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(5, 64, 48), o).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->metadata["title"], "Harbour at dusk");
  EXPECT_EQ(info->metadata["description"], "boats");
}

// ---------------------------------------------------------------- failures

TEST(ProbeFailureTest, EachBadInputGetsACauseNamingTheFile) {
  TempDir dir;
  const std::string good = dir.File("good.mp4");
  ASSERT_TRUE(WriteSyntheticVideo(good, testing::SimpleVideo(50, 64, 48)).ok());
  const std::string good_bytes = *ReadFile(good);

  struct Case {
    std::string name;
    std::string contents;
    StatusCode code;
    std::string cause;  // substring of the message
  };
  std::vector<Case> cases = {
      {"text.mp4", "this is not a video\n", StatusCode::kCorruption, "Invalid data"},
      {"empty.mp4", "", StatusCode::kCorruption, "empty file"},
      {"cut.mp4", good_bytes.substr(0, good_bytes.size() / 2), StatusCode::kCorruption,
       "moov atom not found"},
      {"noise.mkv", std::string(5000, '\x5a'), StatusCode::kCorruption, "Invalid data"},
  };
  for (const Case& c : cases) {
    const std::string path = dir.File(c.name);
    testing::WriteFile(path, c.contents);
    Result<VideoInfo> info = ProbeVideo(path);
    ASSERT_FALSE(info.ok()) << c.name << " probed as a video";
    EXPECT_EQ(info.status().code(), c.code) << c.name << ": " << info.status().ToString();
    EXPECT_NE(info.status().message().find(path), std::string::npos) << info.status().message();
    EXPECT_NE(info.status().message().find(c.cause), std::string::npos)
        << c.name << ": " << info.status().message();
  }

  Result<VideoInfo> missing = ProbeVideo(dir.File("absent.mp4"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  Result<VideoInfo> folder = ProbeVideo(dir.path());
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
}

TEST(ProbeFailureTest, TruncatedFastStartMp4) {
  // With the index at the front the file opens, but its frames lie past the end.
  TempDir dir;
  const std::string good = dir.File("fast.mp4");
  EncodeOptions o;
  o.muxer_options["movflags"] = "+faststart";
  ASSERT_TRUE(WriteSyntheticVideo(good, testing::SimpleVideo(60, 64, 48), o).ok());
  ASSERT_TRUE(ProbeVideo(good).ok());
  const std::string bytes = *ReadFile(good);
  const std::string cut = dir.File("fast_cut.mp4");
  testing::WriteFile(cut, bytes.substr(0, bytes.size() * 2 / 3));
  Result<VideoInfo> info = ProbeVideo(cut);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kCorruption);
  EXPECT_NE(info.status().message().find("truncated"), std::string::npos)
      << info.status().message();
}

TEST(ProbeFailureTest, TruncatedMatroska) {
  TempDir dir;
  const std::string good = dir.File("long.mkv");
  ASSERT_TRUE(WriteSyntheticVideo(good, testing::SimpleVideo(100, 64, 48)).ok());
  const std::string bytes = *ReadFile(good);
  const std::string cut = dir.File("long_cut.mkv");
  testing::WriteFile(cut, bytes.substr(0, bytes.size() / 2));
  Result<VideoInfo> info = ProbeVideo(cut);
  ASSERT_FALSE(info.ok()) << "frames: " << info->frame_count;
  EXPECT_NE(info.status().message().find("truncated"), std::string::npos)
      << info.status().message();
}

// MPEG-TS packets `b` appended to `a`, with b's continuity counters carried on from a's so
// the demuxer sees one unbroken transport stream (a plain `cat` breaks them, and the
// packet at the join then reads as corrupt).
std::string JoinTransportStreams(const std::string& a, const std::string& b) {
  constexpr size_t kPacket = 188;
  std::string out = a + b;
  std::map<int, int> last_cc;  // PID -> continuity counter of its last packet with payload
  for (size_t at = 0; at + kPacket <= out.size(); at += kPacket) {
    auto* p = reinterpret_cast<unsigned char*>(&out[at]);
    if (p[0] != 0x47) ADD_FAILURE() << "not a 188-byte transport stream packet at " << at;
    const int pid = ((p[1] & 0x1f) << 8) | p[2];
    if (!(p[3] & 0x10)) continue;  // no payload: the counter does not advance
    if (at >= a.size() && last_cc.count(pid) != 0) {
      p[3] = static_cast<unsigned char>((p[3] & 0xf0) | ((last_cc[pid] + 1) & 0x0f));
    }
    last_cc[pid] = p[3] & 0x0f;
  }
  return out;
}

// Two streams joined end to end: the second's clock starts again, so time falls back
// 1.16 s at frame 30 of the joined file. Frame times would place b's frames over a's; the
// probe refuses the file and says how to re-time it. B-frame reordering is not such a
// fall: 16 B-frames in a pyramid, the most x264 makes, pass.
TEST(ProbeFailureTest, StreamsJoinedEndToEndAreRefused) {
  TempDir dir;
  const std::string a = dir.File("a.ts"), b = dir.File("b.ts"), joined = dir.File("joined.ts");
  ASSERT_TRUE(WriteSyntheticVideo(a, testing::SimpleVideo(30, 64, 48)).ok());
  SyntheticVideo other = testing::SimpleVideo(30, 64, 48);
  other.seed = 99;
  ASSERT_TRUE(WriteSyntheticVideo(b, other).ok());
  testing::WriteFile(joined, JoinTransportStreams(testing::ReadFile(a), testing::ReadFile(b)));
  ASSERT_EQ(ProbeVideo(a)->frame_count, 30);
  Result<VideoInfo> info = ProbeVideo(joined);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(info.status().message().find(joined + ": video time runs backwards by 1.160 s at "
                                                  "frame 30"),
            std::string::npos)
      << info.status().ToString();
  EXPECT_NE(info.status().message().find("setpts"), std::string::npos);

  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  const std::string pyramid = dir.File("pyramid.mp4");
  auto r = testing::RunProcess({"ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                                "testsrc2=s=64x48:r=25:d=4", "-c:v", "libx264", "-bf", "16",
                                "-b_strategy", "0", "-b-pyramid", "normal", pyramid});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  info = ProbeVideo(pyramid);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 100);
}

// Probing `path` fails with `code`, the message holding `cause`.
void ExpectProbeRefuses(const std::string& path, StatusCode code, const std::string& cause) {
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_FALSE(info.ok()) << path << ": read as " << info->frame_count << " frames";
  EXPECT_EQ(info.status().code(), code);
  EXPECT_NE(info.status().message().find(cause), std::string::npos) << info.status().ToString();
}

// A PAL DV file of `seconds` at `path` (ffmpeg CLI), read back into *bytes: 144,000 bytes
// a frame, 25 frames a second.
void MakePalDv(const std::string& path, int seconds, std::string* bytes) {
  auto made =
      testing::RunProcess({"ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                           "testsrc2=size=160x120:rate=25:duration=" + std::to_string(seconds),
                           "-vf", "scale=720:576", "-c:v", "dvvideo", "-pix_fmt", "yuv420p", path});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  *bytes = testing::ReadFile(path);
  ASSERT_EQ(bytes->size(), static_cast<size_t>(seconds) * 25 * 144000);
}

// A DV file with 6747 bytes gone from its third frame: the demuxer reads fixed-size
// frames, and after a few out of step returns a bare -1 ("not a DV frame"), which
// libav's error text calls EPERM. The probe said "read error after 11 video packets:
// Operation not permitted", as if the file's permissions were wrong.
TEST(ProbeTest, ABareLibavFailureIsNotCalledAPermissionError) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string cut = dir.File("cut.dv");
  std::string bytes;
  ASSERT_NO_FATAL_FAILURE(MakePalDv(dir.File("whole.dv"), 3, &bytes));
  testing::WriteFile(cut, bytes.substr(0, 336410) + bytes.substr(336410 + 6747));
  ExpectProbeRefuses(cut, StatusCode::kCorruption, "invalid data (libav error -1)");
  EXPECT_EQ(ProbeVideo(cut).status().message().find("not permitted"), std::string::npos);
}

// A DV file with 1000 bytes gone from its middle: the demuxer places the last frame past
// the end. The probe said "truncated", as for a file cut short; it now names both causes.
TEST(ProbeTest, ADvFileMissingBytesIsNotOnlyCalledCutShort) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const std::string cut = dir.File("cut.dv");
  std::string bytes;
  ASSERT_NO_FATAL_FAILURE(MakePalDv(dir.File("whole.dv"), 1, &bytes));
  const size_t middle = bytes.size() / 2;
  testing::WriteFile(cut, bytes.substr(0, middle) + bytes.substr(middle + 1000));
  ExpectProbeRefuses(cut, StatusCode::kCorruption,
                     "lies past the end of the file (cut short, or bytes missing before it)");
}

// Matroska's demuxer returns EIO for a file that ends inside its first packets. The probe
// said "Input/output error" (kIOError), which reads as a failing disk; the file is cut
// short, and every byte of it reads. Cut inside its first frame, the demuxer gives no
// packet and says why only in its log; the probe said "no decodable video frame".
TEST(ProbeTest, AMatroskaFileCutInItsFirstPacketsIsDamagedNotAnIOError) {
  TempDir dir;
  const std::string whole = dir.File("whole.mkv"), cut = dir.File("cut.mkv");
  ASSERT_TRUE(WriteSyntheticVideo(whole, testing::SimpleVideo(10), EncodeOptions()).ok());
  const std::string bytes = testing::ReadFile(whole);
  for (size_t keep : {size_t{100}, size_t{200}}) {
    ASSERT_GT(bytes.size(), keep);
    testing::WriteFile(cut, bytes.substr(0, keep));
    ExpectProbeRefuses(cut, StatusCode::kCorruption, ": damaged or cut short (");
  }
  // Every cut up to the last frame is refused as damage, never as an I/O failure.
  int no_frame = 0;
  for (size_t keep = 100; keep < bytes.size() - 100; keep += 50) {
    testing::WriteFile(cut, bytes.substr(0, keep));
    Result<VideoInfo> info = ProbeVideo(cut);
    ASSERT_FALSE(info.ok()) << keep << " bytes: read as " << info->frame_count << " frames";
    EXPECT_EQ(info.status().code(), StatusCode::kCorruption) << info.status().ToString();
    const std::string& m = info.status().message();
    if (m.find(": no video frame before the end of the file: empty, cut short or damaged (File "
               "ended prematurely)") != std::string::npos) {
      ++no_frame;
    }
    EXPECT_EQ(m.find("no decodable video frame"), std::string::npos) << m;
  }
  EXPECT_GT(no_frame, 0) << "no cut fell inside the first frame";
}

// The video PES packets of the transport stream `ts` (those of stream id 0xE0), each as
// the offsets of the 188-byte packets that carry it.
// Whether an encoder's set-up failed because libavcodec was built without it (the test
// then skips), not for a fault of reel's.
bool EncoderMissing(const Status& made) {
  return made.code() == StatusCode::kNotFound || made.code() == StatusCode::kNotSupported;
}

// x265 as the HEVC tests use it: GOPs of 25 with 4 B-frames (open GOPs, x265's default).
EncodeOptions X265Options() {
  EncodeOptions o;
  o.codec = "libx265";
  o.gop = 25;
  o.b_frames = 4;
  return o;
}

int64_t LibavcodecFrameCount(const std::string& path);

std::vector<std::vector<size_t>> VideoPesPackets(const std::string& ts) {
  constexpr size_t kPacket = 188;
  int video_pid = -1;
  std::vector<std::vector<size_t>> pes;
  for (size_t i = 0; i + kPacket <= ts.size(); i += kPacket) {
    const auto* p = reinterpret_cast<const unsigned char*>(&ts[i]);
    const int pid = ((p[1] & 0x1f) << 8) | p[2];
    const bool start = (p[1] & 0x40) != 0;
    const size_t payload = (p[3] & 0x20) ? 5 + p[4] : 4;
    if (video_pid < 0 && start && payload + 4 <= kPacket && p[payload] == 0 &&
        p[payload + 1] == 0 && p[payload + 2] == 1 && p[payload + 3] == 0xE0) {
      video_pid = pid;
    }
    if (pid != video_pid) continue;
    if (start) pes.emplace_back();
    if (!pes.empty()) pes.back().push_back(i);
  }
  return pes;
}

// HLS segments are merged with a plain `cat`: each segment's continuity counters start
// again, so the demuxer flags the packet at each join as corrupt though nothing is lost.
// Such a file was refused whole ("truncated or corrupt packet at video frame 28"), where
// ffmpeg decodes every frame. A packet lost mid-stream is read on too, the decoder
// concealing it; a damaged last packet is still refused as truncation.
TEST(ProbeFailureTest, SegmentsJoinedWithCatAreRead) {
  TempDir dir;
  const std::string a = dir.File("seg0.ts"), b = dir.File("seg1.ts");
  EncodeOptions intra;  // every frame a keyframe, so each spans several 188-byte packets
  intra.gop = 1;
  ASSERT_TRUE(WriteSyntheticVideo(a, testing::SimpleVideo(30, 256, 192), intra).ok());
  EncodeOptions later;
  later.muxer_options["output_ts_offset"] = "1.2";  // the second segment's clock goes on
  SyntheticVideo other = testing::SimpleVideo(30, 256, 192);
  other.seed = 99;
  ASSERT_TRUE(WriteSyntheticVideo(b, other, later).ok());
  const std::string joined = dir.File("joined.ts");
  testing::WriteFile(joined, testing::ReadFile(a) + testing::ReadFile(b));
  Result<VideoInfo> info = ProbeVideo(joined);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 60);
  EXPECT_GE(info->damaged_packets, 1);
  EXPECT_EQ(DecodeAll(joined).size(), 60u);

  // A 188-byte packet lost from the middle of a frame's: read, with the loss counted.
  const std::string whole = testing::ReadFile(a);
  const std::vector<std::vector<size_t>> pes = VideoPesPackets(whole);
  ASSERT_EQ(pes.size(), 30u);
  auto without = [&](size_t at) { return whole.substr(0, at) + whole.substr(at + 188); };
  ASSERT_GE(pes[15].size(), 2u);
  const std::string lossy = dir.File("lossy.ts");
  testing::WriteFile(lossy, without(pes[15][1]));
  info = ProbeVideo(lossy);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 30);
  EXPECT_EQ(info->damaged_packets, 1);

  // A file cut inside its last frame (an AVI, whose demuxer reads that frame short and
  // flags it) is refused as truncated.
  EncodeOptions avi;
  avi.codec = "mpeg4";
  avi.gop = 1;
  const std::string full = dir.File("full.avi");
  ASSERT_TRUE(WriteSyntheticVideo(full, testing::SimpleVideo(30, 256, 192), avi).ok());
  const std::string bytes = testing::ReadFile(full);
  const size_t index = bytes.rfind("idx1");  // the index after the frames
  ASSERT_NE(index, std::string::npos);
  const size_t last_frame = bytes.rfind("00dc", index);  // the last frame's chunk header
  ASSERT_NE(last_frame, std::string::npos);
  const std::string cut = dir.File("cut.avi");
  testing::WriteFile(cut, bytes.substr(0, last_frame + 8 + 100));
  ExpectProbeRefuses(cut, StatusCode::kCorruption,
                     "the last video packet (frame 29) is incomplete");
}

// Segments joined with `cat` whose times overlap (the second starts 2 frames before the
// first ends): time runs backwards at the join, by less than the reordering reach the
// probe allowed, so such a file was read; then re-encoding a clip across the join failed
// ("timestamps must increase") and a clip started after it could seek into the first
// segment's copy of those times. Cuts by time cannot be exact there: the probe now
// refuses the file (its decode times fall), as it refuses longer reversals, saying how
// to re-time it. A stream copy across such a join (a catalog from before) moves the
// backward decode times on, as ffmpeg -c copy does, instead of failing in the muxer.
TEST(RemuxTest, SegmentsJoinedWithOverlappingTimes) {
  TempDir dir;
  const std::string a = dir.File("seg0.ts"), b = dir.File("seg1.ts");
  ASSERT_TRUE(WriteSyntheticVideo(a, testing::SimpleVideo(30, 64, 48), {}).ok());
  EncodeOptions overlapping;
  overlapping.muxer_options["output_ts_offset"] = "1.12";  // the first ends at 1.2 s
  ASSERT_TRUE(WriteSyntheticVideo(b, testing::SimpleVideo(30, 64, 48), overlapping).ok());
  const std::string joined = dir.File("joined.ts");
  testing::WriteFile(joined, testing::ReadFile(a) + testing::ReadFile(b));
  ExpectProbeRefuses(joined, StatusCode::kNotSupported,
                     "video time runs backwards by 0.120 s at frame 30");

  const std::string out = dir.File("copy.mp4");
  auto r = CopySegment(joined, out, 0, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->retimed, 0);
  EXPECT_EQ(r->packets, 60);
  Result<VideoInfo> copy = ProbeVideo(out);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ(copy->frame_count, 60);
  EXPECT_EQ(LibavcodecFrameCount(out), 60);
}

// A stream copy into a container that cannot hold the codec, or into a file name no
// container goes by, is the caller's choice gone wrong, not a damaged file: they were
// reported as kCorruption. No partial file is left.
TEST(RemuxTest, CopiesAContainerRefusesAreNotSupportedNotCorrupt) {
  TempDir dir;
  const std::string src = dir.File("src.mkv");
  EncodeOptions o;
  o.codec = "ffv1";
  ASSERT_TRUE(WriteSyntheticVideo(src, testing::SimpleVideo(6, 64, 48), o).ok());
  auto into_mp4 = CopySegment(src, dir.File("copy.mp4"), 0, 1000000);
  EXPECT_EQ(into_mp4.status().code(), StatusCode::kNotSupported) << into_mp4.status().ToString();
  EXPECT_NE(into_mp4.status().message().find("copy.mp4: cannot write header"), std::string::npos)
      << into_mp4.status().ToString();
  auto unknown = CopySegment(src, dir.File("copy.nosuchformat"), 0, 1000000);
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument) << unknown.status().ToString();
  EXPECT_NE(unknown.status().message().find("no container format"), std::string::npos);
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename(), "src.mkv") << "left behind";
  }
}

// Stream copies of two old formats failed. WMV2 (ASF, which counts milliseconds) goes
// into AVI, whose time base is its frame period: a millisecond one wrote 3320 frame slots
// for an 83-frame clip, all but 83 empty, and the copy was refused as "truncated: header
// lists 3320 frames, file holds 83". H.263 in 3GP states square pixels in the container
// and 12:11 in the bitstream, and MOV refused the copy ("Aspect ratio mismatch").
TEST(RemuxTest, CopiesOfWmvAndH263SourcesAreWritten) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  struct Case {
    const char* file;
    const char* codec;
    const char* container;
  };
  for (const Case& c : {Case{"wmv2.wmv", "wmv2", "avi"}, Case{"h263.3gp", "h263", "mov"},
                        Case{"flv1.flv", "flv", "avi"}}) {
    SCOPED_TRACE(c.file);
    const std::string src = dir.File(c.file);
    auto made = testing::RunProcess({"ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                                     "testsrc2=size=176x144:rate=30000/1001:duration=2", "-c:v",
                                     c.codec, src});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    Result<VideoInfo> info = ProbeVideo(src);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    ASSERT_EQ(StreamCopyContainer(info->codec), c.container);
    const std::vector<Frame> frames = DecodeAll(src);
    ASSERT_GE(frames.size(), 50u);
    const std::string out = dir.File(std::string("copy-") + c.codec + "." + c.container);
    auto r = CopySegment(src, out, frames[0].pts, frames[40].pts);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Result<VideoInfo> copy = ProbeVideo(out);
    ASSERT_TRUE(copy.ok()) << copy.status().ToString();
    EXPECT_EQ(copy->frame_count, r->packets);
    EXPECT_EQ(LibavcodecFrameCount(out), copy->frame_count);
    EXPECT_GE(copy->frame_count, 40);
    EXPECT_EQ(copy->frame_rate, Rational(30000, 1001));
    EXPECT_EQ(copy->sample_aspect_ratio, info->sample_aspect_ratio);
  }
}

// MPEG-TS clocks are 33 bits of 90 kHz and wrap every 26.5 hours; a capture that spans
// the wrap is unwrapped by the demuxer into times that start before 0. The probe called
// such a file truncated ("container declares 00:00:02.000 but video ends at
// 00:00:00.782"): its end came before its length.
TEST(ProbeTest, TransportStreamAcrossTheClockWrapIsRead) {
  TempDir dir;
  const std::string path = dir.File("wrap.ts");
  EncodeOptions o;
  o.gop = 10;
  o.muxer_options["output_ts_offset"] = "95442.5";  // the wrap is at 95443.72 s
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(50, 64, 48), o).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 50);
  EXPECT_LT(info->start_time, Rational());
  EXPECT_EQ(info->duration, Rational(2, 1));
  const std::vector<Frame> frames = DecodeAll(path);
  ASSERT_EQ(frames.size(), 50u);
  for (size_t s : {0, 25, 33, 49}) {  // before and after the wrap, read after a seek
    auto read = ReadFramesAtPts(path, {frames[s].pts}, {});
    ASSERT_TRUE(read.ok()) << "frame " << s << ": " << read.status().ToString();
    EXPECT_TRUE((*read)[0].data == frames[s].data) << "frame " << s;
  }
}

// An AVI stands an empty chunk in for each frame its capture dropped; the header counts
// those, the demuxer skips them. Such a file was refused ("truncated: header lists 35
// frames, file holds 30"). A file cut short still is.
TEST(ProbeFailureTest, AviDroppedFramesAreGapsButACutFileIsTruncated) {
  TempDir dir;
  EncodeOptions o;
  o.codec = "mpeg4";
  o.width = 64;
  o.height = 48;
  const std::string gaps = dir.File("gaps.avi");
  {
    auto enc = VideoEncoder::Open(gaps, o);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    const SyntheticVideo video = testing::SimpleVideo(30, 64, 48);
    Frame f;
    for (int64_t i = 0; i < 30; ++i) {  // frames 15 to 19 dropped
      video.Render(i, &f);
      ASSERT_TRUE((*enc)->Write(f, i < 15 ? i : i + 5).ok());
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  Result<VideoInfo> info = ProbeVideo(gaps);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->frame_count, 30);
  EXPECT_TRUE(info->variable_frame_rate);
  EXPECT_EQ(info->duration, Rational(35, 25));
  EXPECT_EQ(DecodeAll(gaps).size(), 30u);

  // Cut at the chunk of frame 12: the index at the end is gone, and the header's 35
  // frames are not there.
  const std::string bytes = testing::ReadFile(gaps);
  size_t at = bytes.find("movi");
  for (int chunk = 0; chunk <= 12 && at != std::string::npos; ++chunk) {
    at = bytes.find("00dc", at + 4);
  }
  ASSERT_NE(at, std::string::npos);
  const std::string cut = dir.File("cut.avi");
  testing::WriteFile(cut, bytes.substr(0, at));
  ExpectProbeRefuses(cut, StatusCode::kCorruption,
                     "truncated: header lists 35 frames, file holds 12");
}

TEST(ProbeFailureTest, StillImageIsNotAVideo) {
  TempDir dir;
  const std::string path = dir.File("still.png");
  EncodeOptions o;
  o.codec = "png";
  o.format = "image2";
  o.muxer_options["update"] = "1";
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(1, 32, 32), o).ok());
  Result<VideoInfo> info = ProbeVideo(path);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(info.status().message().find("still image"), std::string::npos);
}

// ---------------------------------------------------------------- decoder options

TEST(DecoderTest, ColoursSurviveTheRoundTrip) {
  TempDir dir;
  const std::string path = dir.File("colours.mp4");
  const Rgb left{200, 60, 50}, right{50, 140, 210};
  ASSERT_TRUE(WriteFrames(path, TwoColourFrame(64, 48, left, right), 3, {}).ok());
  const std::vector<Frame> rgb = DecodeAll(path);
  ASSERT_EQ(rgb.size(), 3u);
  ExpectColourNear(MeanColour(rgb[1], 12, 24), left, 6, "left");
  ExpectColourNear(MeanColour(rgb[1], 50, 24), right, 6, "right");

  DecodeOptions bgr;
  bgr.format = PixelFormat::kBgr24;
  const std::vector<Frame> b = DecodeAll(path, bgr);
  ASSERT_FALSE(b.empty());
  ExpectColourNear(MeanColour(b[0], 12, 24), Rgb{50, 60, 200}, 6, "bgr left");

  DecodeOptions gray;
  gray.format = PixelFormat::kGray8;
  const std::vector<Frame> g = DecodeAll(path, gray);
  ASSERT_FALSE(g.empty());
  EXPECT_EQ(g[0].channels(), 1);
  // BT.601 luma of (200, 60, 50).
  EXPECT_NEAR(g[0].row(24)[12], 0.299 * 200 + 0.587 * 60 + 0.114 * 50, 6);
}

TEST(DecoderTest, DownscalesInTheSamePass) {
  TempDir dir;
  const std::string path = dir.File("big.mp4");
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(8, 320, 240)).ok());
  DecodeOptions o;
  o.width = 80;  // height follows the aspect ratio
  std::vector<Frame> frames = DecodeAll(path, o);
  ASSERT_EQ(frames.size(), 8u);
  EXPECT_EQ(frames[0].width, 80);
  EXPECT_EQ(frames[0].height, 60);
  o.width = 0;
  o.height = 30;
  frames = DecodeAll(path, o);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0].width, 40);
  o.width = 33;
  o.height = 17;
  o.filter = ResizeFilter::kArea;
  frames = DecodeAll(path, o);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0].width, 33);
  EXPECT_EQ(frames[0].height, 17);
}

TEST(DecoderTest, ThreadsAndSkippedLoopFilterKeepEveryFrame) {
  TempDir dir;
  const std::string path = dir.File("gop.mp4");
  EncodeOptions enc;
  enc.gop = 10;
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(45, 96, 64), enc).ok());
  DecodeOptions fast;
  fast.threads = 2;
  fast.skip_loop_filter = true;
  const std::vector<Frame> frames = DecodeAll(path, fast);
  ASSERT_EQ(frames.size(), 45u);
  for (size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(frames[i].time, Rational(i, 25));
  EXPECT_TRUE(frames[0].key_frame);
  EXPECT_TRUE(frames[10].key_frame);
  EXPECT_FALSE(frames[5].key_frame);

  DecodeOptions keys;
  keys.keyframes_only = true;
  const std::vector<Frame> k = DecodeAll(path, keys);
  ASSERT_EQ(k.size(), 5u);  // frames 0, 10, 20, 30, 40
  EXPECT_EQ(k[2].time, Rational(20, 25));
}

// ---------------------------------------------------------------- encoder

TEST(SamplerTest, ReadsExactFramesByPtsAcrossSeeks) {
  testing::TempDir dir;
  const std::string path = dir.File("indexed.mp4");
  // 300 frames at 25 fps, keyframe every 50: frame i is flat grey at level 10 + (i % 80) * 3.
  EncodeOptions o;
  o.width = 64;
  o.height = 48;
  o.frame_rate = Rational(25, 1);
  o.gop = 50;
  {
    auto enc = VideoEncoder::Open(path, o);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    Frame f;
    f.Allocate(64, 48, PixelFormat::kRgb24);
    for (int i = 0; i < 300; ++i) {
      std::fill(f.data.begin(), f.data.end(), static_cast<uint8_t>(10 + (i % 80) * 3));
      ASSERT_TRUE((*enc)->Write(f).ok());
    }
    ASSERT_TRUE((*enc)->Finish().ok());
  }
  std::vector<Frame> all = DecodeAll(path);
  ASSERT_EQ(all.size(), 300u);
  // Targets inside GOPs, one far ahead (a seek), and past the end (the last frame).
  const std::vector<int> wanted = {7, 8, 61, 260, 299};
  std::vector<int64_t> pts;
  for (int i : wanted) pts.push_back(all[static_cast<size_t>(i)].pts);
  pts.push_back(all.back().pts + 1000);
  auto frames = ReadFramesAtPts(path, pts, {}, /*seek_gap_seconds=*/2.0);
  ASSERT_TRUE(frames.ok()) << frames.status().ToString();
  ASSERT_EQ(frames->size(), pts.size());
  for (size_t k = 0; k < wanted.size(); ++k) {
    EXPECT_EQ((*frames)[k].pts, pts[k]) << "frame " << wanted[k];
    EXPECT_NEAR(MeanColour((*frames)[k], 32, 24)[0], 10 + (wanted[k] % 80) * 3, 3) << wanted[k];
  }
  EXPECT_EQ(frames->back().pts, all.back().pts);
  Frame first;
  auto at = OpenVideoAt(path, {}, all[120].pts, &first);
  ASSERT_TRUE(at.ok());
  EXPECT_LE(first.pts, all[120].pts);
  EXPECT_FALSE(ReadFramesAtPts(path, {5, 3}, {}).ok()) << "targets must ascend";
}

// The input frame each of `frames` output frames at `fps` shows, for input frames at
// `seconds` (reading stops once every output frame is filled, as the callers do).
std::vector<int> RatePicks(const std::vector<Rational>& seconds, Rational fps, int64_t frames) {
  FrameRateConverter rate(fps, frames);
  std::vector<int> picks;
  int held = -1;
  for (size_t i = 0; i < seconds.size() && !rate.done(); ++i) {
    picks.insert(picks.end(), static_cast<size_t>(rate.Add(seconds[i])), held);
    held = static_cast<int>(i);
  }
  picks.insert(picks.end(), static_cast<size_t>(rate.Finish()), held);
  return picks;
}

// ffmpeg's fps filter (round=near): output frame k shows the last input frame whose time
// rounds to slot k or before.
TEST(FrameRateConverterTest, PicksTheFramesFfmpegsFpsFilterPicks) {
  auto at = [](int64_t frames, Rational rate) {
    std::vector<Rational> t;
    for (int64_t i = 0; i < frames; ++i) t.push_back(Rational(i, 1) / rate);
    return t;
  };
  // 16 frames at 25 fps to 10 fps: round(6.4) = 6 frames, the frames ffmpeg 5.1's
  // -vf fps=10 keeps (checked on a file of distinct frames). Not the frame on screen at
  // k/10 s (0 2 5 7 10 12) nor the first at or after it (0 3 5 8 10 13).
  EXPECT_EQ(ConvertedFrameCount(Rational(16, 25), Rational(10, 1)), 6);
  EXPECT_EQ(RatePicks(at(16, Rational(25, 1)), Rational(10, 1), 6),
            (std::vector<int>{1, 3, 6, 8, 11, 13}));
  // 30000/1001 to 8 fps: one frame in about four, the last of each slot (ffmpeg 5.1 keeps
  // these, and this up-conversion's, too).
  EXPECT_EQ(RatePicks(at(40, Rational(30000, 1001)), Rational(8, 1), 9),
            (std::vector<int>{1, 5, 9, 13, 16, 20, 24, 28, 31}));
  // Up from 8 to 20 fps: repeats, with a half slot rounding up (1/8 s is slot 2.5 -> 3).
  EXPECT_EQ(ConvertedFrameCount(Rational(1, 2), Rational(20, 1)), 10);
  EXPECT_EQ(RatePicks(at(4, Rational(8, 1)), Rational(20, 1), 10),
            (std::vector<int>{0, 0, 0, 1, 1, 2, 2, 2, 3, 3}));
  // Variable frame rate: a gap repeats the frame before it; of two frames in one slot the
  // later is shown.
  EXPECT_EQ(RatePicks({Rational(0, 1), Rational(1, 10), Rational(35, 100), Rational(4, 10)},
                      Rational(10, 1), 5),
            (std::vector<int>{0, 1, 1, 1, 3}));
  // Fewer output frames than the input covers: filled, then done.
  FrameRateConverter two(Rational(10, 1), 2);
  EXPECT_EQ(two.Add(Rational(0, 1)), 0);
  EXPECT_FALSE(two.done());
  EXPECT_EQ(two.Add(Rational(1, 2)), 2);
  EXPECT_TRUE(two.done());
  EXPECT_EQ(two.Finish(), 0);
  EXPECT_EQ(FrameRateConverter(Rational(10, 1), 3).Finish(), 0) << "no frame came";
  EXPECT_EQ(ConvertedFrameCount(Rational(1, 100), Rational(10, 1)), 1) << "at least one";
}

TEST(EncoderTest, RejectsBadInputAndLeavesNoPartialFile) {
  TempDir dir;
  const std::string path = dir.File("bad.mp4");
  EncodeOptions o;
  o.width = 32;
  o.height = 32;
  {
    auto enc = VideoEncoder::Open(path, o);
    ASSERT_TRUE(enc.ok());
    const SyntheticVideo v = testing::SimpleVideo(3, 32, 32);
    Frame f;
    v.Render(0, &f);
    ASSERT_TRUE((*enc)->Write(f, 5).ok());
    Status s = (*enc)->Write(f, 5);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);  // timestamps must increase
    Frame wrong;
    wrong.Allocate(16, 16, PixelFormat::kRgb24);
    EXPECT_EQ((*enc)->Write(wrong, 6).code(), StatusCode::kInvalidArgument);
    Frame short_data = f;  // the right size, but fewer bytes than the image needs
    short_data.data.resize(short_data.data.size() - 1);
    Status truncated = (*enc)->Write(short_data, 7);
    EXPECT_EQ(truncated.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(truncated.message().find("frame holds 3071 bytes, not the 32x32 image's 3072"),
              std::string::npos)
        << truncated.message();
    // Destroyed without Finish(): abandoned.
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));

  // Options the encoder or the container refuses are the caller's error.
  EncodeOptions refused = o;
  refused.codec = "ffv1";
  refused.pixel_format = "gbrp";  // FFV1 takes 8-bit RGB as bgr0 only
  auto no_format = VideoEncoder::Open(dir.File("refused.mkv"), refused);
  ASSERT_FALSE(no_format.ok());
  EXPECT_EQ(no_format.status().code(), StatusCode::kInvalidArgument)
      << no_format.status().ToString();
  EXPECT_NE(no_format.status().message().find("gbrp"), std::string::npos);
  refused = o;
  refused.codec = "ffv1";  // MP4 has no tag for FFV1
  auto no_tag = VideoEncoder::Open(dir.File("refused.mp4"), refused);
  ASSERT_FALSE(no_tag.ok());
  EXPECT_EQ(no_tag.status().code(), StatusCode::kInvalidArgument) << no_tag.status().ToString();

  o.codec = "no-such-codec";
  auto missing = VideoEncoder::Open(path, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(missing.status().message().find("no-such-codec"), std::string::npos);
}

// The same frames encode to the same file, however the heap was left by what ran before.
// x264's AVX-512 code broke this on an AVX-512 machine (AMD EPYC): without the encoder's
// cap at AVX2, 5 of these 15 repeats encoded to another file. On a CPU without AVX-512
// this passes either way.
TEST(EncoderTest, SameFramesSameFileWhateverRanBefore) {
  TempDir dir;
  // A dim, noisy field with a soft blue blob moving right, like a clip sampled from a
  // barely trained model (clean, high-contrast frames did not show the difference).
  std::vector<Frame> frames(9);
  uint32_t seed = 12345;
  for (int t = 0; t < 9; ++t) {
    frames[t].Allocate(32, 32, PixelFormat::kRgb24);
    for (int y = 0; y < 32; ++y) {
      uint8_t* row = frames[t].row(y);
      for (int x = 0; x < 32; ++x) {
        const double blob =
            60 * std::exp(-((x - 10 - t) * (x - 10 - t) + (y - 20) * (y - 20)) / 60.0);
        for (int c = 0; c < 3; ++c) {
          seed = (seed * 1103515245u + 12345u) & 0x7fffffffu;
          const int noise = static_cast<int>((seed >> 16) % 41) - 20;
          const double v = 100 + (c == 2 ? blob : 0.3 * blob) +
                           15 * std::sin(0.3 * x + c) * std::cos(0.25 * y) + noise;
          row[3 * x + c] = static_cast<uint8_t>(std::clamp(static_cast<int>(v), 0, 255));
        }
      }
    }
  }
  std::string first;
  int differ = 0;
  for (int run = 0; run < 16; ++run) {
    {  // leave the heap as other work would: blocks of a frame's size, freed
      std::vector<std::vector<uint8_t>> junk;
      for (int j = 0; j < 50; ++j)
        junk.emplace_back(3072 + 64 * j, static_cast<uint8_t>(17 * run + j));
    }
    EncodeOptions o;
    o.width = 32;
    o.height = 32;
    o.frame_rate = Rational(8, 1);
    o.crf = 12;
    const std::string path = dir.File("run" + std::to_string(run) + ".mp4");
    auto enc = VideoEncoder::Open(path, o);
    ASSERT_TRUE(enc.ok()) << enc.status().ToString();
    for (const Frame& f : frames) ASSERT_TRUE((*enc)->Write(f).ok());
    ASSERT_TRUE((*enc)->Finish().ok());
    const std::string bytes = testing::ReadFile(path);
    if (run == 0) first = bytes;
    differ += bytes != first;
  }
  EXPECT_EQ(differ, 0) << "of 15 repeats, " << differ << " encoded to another file";
}

// RGB goes into Y'CbCr with the matrix and range the options state, and the stream says
// so: a saturated red's luma is 71.5 in BT.709's limited range, 87.1 in BT.601's, 64.6 in
// BT.709's full range. reel's decoder and ffmpeg's (which both read the tags) give the red
// back.
TEST(EncoderTest, ConvertsWithTheStatedMatrixAndTagsIt) {
  TempDir dir;
  const Rgb red{230, 20, 20}, grey{128, 128, 128};
  const Frame frame = TwoColourFrame(64, 48, red, grey);
  struct Case {
    const char* space;
    const char* range;
    double luma;
    const char* want_space;
    const char* want_range;
  };
  const Case cases[] = {{"bt709", "", 71.5, "bt709", "tv"},
                        {"smpte170m", "", 87.1, "smpte170m", "tv"},
                        // x264 leaves a limited range unstated when nothing else is
                        {"", "", 87.1, "", ""},
                        {"bt709", "pc", 64.6, "bt709", "pc"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string("space '") + c.space + "' range '" + c.range + "'");
    const std::string path = dir.File(std::string("m") + c.space + c.range + ".mp4");
    EncodeOptions o;
    o.color_space = c.space;
    o.color_range = c.range;
    if (std::string(c.space) == "bt709") {
      o.color_primaries = "bt709";
      o.color_transfer = "bt709";
    }
    ASSERT_TRUE(WriteFrames(path, frame, 3, o).ok());
    auto info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->color_space, c.want_space);
    EXPECT_EQ(info->color_range, c.want_range);
    EXPECT_EQ(info->color_primaries, o.color_primaries);
    EXPECT_EQ(info->color_transfer, o.color_transfer);
    const std::vector<Frame> back = DecodeAll(path);
    ASSERT_EQ(back.size(), 3u);
    ExpectColourNear(MeanColour(back[1], 12, 24), red, 6, "reel's red");
    ExpectColourNear(MeanColour(back[1], 50, 24), grey, 4, "reel's grey");
    if (!testing::HaveFfmpegCli()) continue;
    // The stored samples: the first frame's luma plane, unconverted.
    auto y = testing::RunProcess(
        {"ffmpeg", "-v", "error", "-i", path, "-frames:v", "1", "-f", "rawvideo", "-"});
    ASSERT_EQ(y.exit_code, 0) << y.err;
    ASSERT_GE(y.out.size(), 64u * 48u);
    EXPECT_NEAR(static_cast<uint8_t>(y.out[24 * 64 + 12]), c.luma, 2.0) << "red's luma";
    auto rgb = testing::RunProcess({"ffmpeg", "-v", "error", "-i", path, "-frames:v", "1", "-f",
                                    "rawvideo", "-pix_fmt", "rgb24", "-"});
    ASSERT_EQ(rgb.exit_code, 0) << rgb.err;
    ASSERT_EQ(rgb.out.size(), 64u * 48u * 3u);
    const size_t at = (24 * 64 + 12) * 3;
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(static_cast<uint8_t>(rgb.out[at + k]), red[k], 6)
          << "ffmpeg's red, channel " << k;
    }
  }

  // An RGB stream (lossless FFV1 in packed RGB) states RGB whatever matrix was asked for.
  {
    const std::string path = dir.File("rgb.mkv");
    EncodeOptions o;
    o.codec = "ffv1";
    o.pixel_format = "bgr0";
    o.color_space = "bt709";
    const Status written = WriteFrames(path, frame, 2, o);
    ASSERT_TRUE(written.ok()) << written.ToString();
    auto info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->color_space, "gbr");
    EXPECT_EQ(info->color_range, "");
    const std::vector<Frame> back = DecodeAll(path);
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0].data, frame.data) << "lossless RGB comes back exactly";
  }

  EncodeOptions bad;
  bad.color_space = "bt7o9";
  Status s = WriteFrames(dir.File("bad.mp4"), frame, 1, bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown colour space 'bt7o9'"), std::string::npos) << s.ToString();
  bad.color_space = "ycgco";  // a real matrix, but not one swscale converts RGB into
  EXPECT_EQ(WriteFrames(dir.File("bad.mp4"), frame, 1, bad).code(), StatusCode::kNotSupported);
  bad.color_space = "bt709";
  bad.color_range = "studio";
  EXPECT_EQ(WriteFrames(dir.File("bad.mp4"), frame, 1, bad).code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- swscale's slack

// A libav frame of `format` and size holding random bytes.
av::FramePtr RandomAvFrame(AVPixelFormat format, int width, int height, std::mt19937* rng) {
  av::FramePtr f(av_frame_alloc());
  f->format = format;
  f->width = width;
  f->height = height;
  if (av_frame_get_buffer(f.get(), 0) < 0) return nullptr;
  for (int p = 0; p < AV_NUM_DATA_POINTERS && f->buf[p] != nullptr; ++p) {
    for (size_t i = 0; i < f->buf[p]->size; ++i)
      f->buf[p]->data[i] = static_cast<uint8_t>((*rng)());
  }
  return f;
}

// Converts reel's packed formats to encoders' formats, as VideoEncoder calls swscale,
// with each source's slack ending at a page that cannot be read: exits 0 when no read
// went past the slack, else faults.
[[noreturn]] void EncoderConversionsNextToAnUnreadablePage() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (PixelFormat src : {PixelFormat::kRgb24, PixelFormat::kBgr24, PixelFormat::kGray8}) {
    for (AVPixelFormat dst : {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV444P, AV_PIX_FMT_GBRP}) {
      for (const auto& [w, h] :
           {std::pair<int, int>{2, 2}, {6, 4}, {62, 2}, {66, 44}, {32, 32}, {320, 240}}) {
        const int stride = w * ChannelCount(src);
        const size_t bytes = static_cast<size_t>(stride) * h + av::kSwsSlackBytes;
        const size_t span = (bytes + page - 1) / page * page;
        void* m =
            mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || mprotect(static_cast<uint8_t*>(m) + span, page, PROT_NONE))
          std::_Exit(3);
        uint8_t* image = static_cast<uint8_t*>(m) + span - bytes;
        std::fill(image, image + bytes, uint8_t{77});
        av::FramePtr out(av_frame_alloc());
        out->format = dst;
        out->width = w;
        out->height = h;
        if (av_frame_get_buffer(out.get(), 0) < 0) std::_Exit(4);
        av::SwsPtr ctx(sws_getContext(w, h, av::ToAvPixelFormat(src), w, h, dst, SWS_BICUBIC,
                                      nullptr, nullptr, nullptr));
        const uint8_t* src_data[4] = {image, nullptr, nullptr, nullptr};
        const int src_stride[4] = {stride, 0, 0, 0};
        sws_scale(ctx.get(), src_data, src_stride, 0, h, out->data, out->linesize);
        munmap(m, span + page);
      }
    }
  }
  std::_Exit(0);
}

// libswscale's SIMD writes past the end of a packed destination and reads past the end
// of a packed source; the decoder and the encoder give it kSwsSlackBytes more after
// each such buffer. This checks that bound on this machine's libswscale, for the
// conversions reel asks of it, at sizes where it overshoots (widths 2, 63 and 127 on
// x86-64 with FFmpeg 5.1), scaled and not.
TEST(SwscaleTest, StaysWithinTheSlackReelGivesIt) {
  av_log_set_level(AV_LOG_ERROR);
  std::mt19937 rng(7);
  const std::vector<std::pair<int, int>> sizes = {{2, 2},   {3, 8},   {7, 5},   {63, 2},
                                                  {127, 4}, {67, 45}, {33, 17}, {64, 48}};
  // Decoding: what comes out of decoders, to reel's packed formats, as FrameConverter
  // calls it (an exact-size destination with the slack after it, where canaries are).
  size_t worst_write = 0, conversions = 0;
  for (AVPixelFormat src : {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV422P, AV_PIX_FMT_YUV444P,
                            AV_PIX_FMT_NV12, AV_PIX_FMT_YUV420P10LE, AV_PIX_FMT_YUVA420P,
                            AV_PIX_FMT_GRAY8, AV_PIX_FMT_RGB24, AV_PIX_FMT_BGR0}) {
    for (PixelFormat dst : {PixelFormat::kRgb24, PixelFormat::kBgr24, PixelFormat::kGray8}) {
      for (int flags : {SWS_FAST_BILINEAR, SWS_BILINEAR, SWS_BICUBIC, SWS_AREA}) {
        for (const auto& [w, h] : sizes) {
          av::FramePtr in = RandomAvFrame(src, w, h, &rng);
          ASSERT_NE(in, nullptr);
          for (const auto& [dw, dh] : {std::pair<int, int>{w, h}, {33, 17}, {80, 60}}) {
            av::SwsPtr ctx(sws_getContext(w, h, src, dw, dh, av::ToAvPixelFormat(dst), flags,
                                          nullptr, nullptr, nullptr));
            ASSERT_NE(ctx, nullptr);
            const int stride = dw * ChannelCount(dst);
            const size_t bytes = static_cast<size_t>(stride) * dh;
            for (uint8_t canary : {0xa5, 0x5a}) {
              std::vector<uint8_t> buf(bytes + 4096, canary);  // measures beyond the slack
              uint8_t* dst_data[4] = {buf.data(), nullptr, nullptr, nullptr};
              int dst_stride[4] = {stride, 0, 0, 0};
              sws_scale(ctx.get(), in->data, in->linesize, 0, h, dst_data, dst_stride);
              for (size_t i = buf.size(); i > bytes; --i) {
                if (buf[i - 1] != canary) {
                  worst_write = std::max(worst_write, i - bytes);
                  break;
                }
              }
            }
            ++conversions;
          }
        }
      }
    }
  }
  EXPECT_LE(worst_write, av::kSwsSlackBytes);
  std::printf("%zu conversions: at most %zu bytes written past the image\n", conversions,
              worst_write);

  // Encoding: reel's packed frames to encoders' formats, as VideoEncoder calls it. The
  // source's slack ends at a page that cannot be read, so a read past it faults (in a
  // child process here).
  EXPECT_EXIT(EncoderConversionsNextToAnUnreadablePage(), ::testing::ExitedWithCode(0), "");
}

// ---------------------------------------------------------------- image folders

void WritePpm(const std::string& path, int w, int h, uint8_t value) {
  std::string data = "P6\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n";
  data.append(static_cast<size_t>(w) * h * 3, static_cast<char>(value));
  testing::WriteFile(path, data);
}

TEST(ImageSequenceTest, ReadsNumberedFramesInNaturalOrder) {
  TempDir dir;
  // frame1 .. frame12: lexical order would put frame10 before frame2.
  for (int i = 1; i <= 12; ++i) {
    WritePpm(dir.File("frame" + std::to_string(i) + ".ppm"), 24, 16, static_cast<uint8_t>(i * 20));
  }
  testing::WriteFile(dir.File("notes.txt"), "not an image");
  DecodeOptions o;
  o.image_frame_rate = Rational(8, 1);
  auto seq = ImageSequence::Open(dir.path(), o);
  ASSERT_TRUE(seq.ok()) << seq.status().ToString();
  EXPECT_EQ((*seq)->info().frame_count, 12);
  EXPECT_EQ((*seq)->info().duration, Rational(12, 8));
  const std::vector<Frame> frames = DecodeAll(dir.path(), o);
  ASSERT_EQ(frames.size(), 12u);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(frames[i].row(8)[12 * 3], (i + 1) * 20) << "frame " << i;
    EXPECT_EQ(frames[i].time, Rational(i, 8));
    EXPECT_EQ(frames[i].width, 24);
  }
}

TEST(ImageSequenceTest, BrokenImageIsSkippedAndCountedOrFailsWhenStrict) {
  TempDir dir;
  for (int i = 0; i < 4; ++i) WritePpm(dir.File(std::to_string(i) + ".ppm"), 8, 8, 100);
  testing::WriteFile(dir.File("2.ppm"), "P6\n8 8\n255\nshort");
  auto seq = ImageSequence::Open(dir.path());
  ASSERT_TRUE(seq.ok());
  Frame f;
  std::vector<Rational> times;
  while (*(*seq)->Next(&f)) times.push_back(f.time);
  EXPECT_EQ(times.size(), 3u);
  EXPECT_EQ((*seq)->decode_errors(), 1);
  EXPECT_EQ(times[2], Rational(3, 25));  // the gap is kept

  DecodeOptions strict;
  strict.strict = true;
  auto s2 = ImageSequence::Open(dir.path(), strict);
  ASSERT_TRUE(s2.ok());
  Status failure;
  while (true) {
    Result<bool> more = (*s2)->Next(&f);
    if (!more.ok()) {
      failure = more.status();
      break;
    }
    if (!*more) break;
  }
  EXPECT_FALSE(failure.ok());
  EXPECT_NE(failure.message().find("2.ppm"), std::string::npos) << failure.message();
}

TEST(ImageSequenceTest, EmptyFolderIsAnError) {
  TempDir dir;
  auto seq = OpenFrameSource(dir.path());
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------- synthetic videos

TEST(SyntheticTest, CutsAndDeterminism) {
  SyntheticVideo v;
  v.width = 32;
  v.height = 24;
  v.scenes = {{SceneKind::kSolid, 10}, {SceneKind::kTexture, 7}, {SceneKind::kBars, 5}};
  EXPECT_EQ(v.frame_count(), 22);
  EXPECT_EQ(v.cut_frames(), (std::vector<int64_t>{10, 17}));
  Frame a, b;
  v.Render(12, &a);
  v.Render(12, &b);
  EXPECT_EQ(a.data, b.data);
  v.Render(13, &b);
  EXPECT_NE(a.data, b.data);  // the texture moves
  EXPECT_EQ(SampleVideo(3).frame_count(), SampleVideo(3).frame_count());
}

// ---------------------------------------------------------------- real footage

TEST(RealFootageTest, SharedVideosProbeAsDocumented) {
  const std::string data = testing::SharedDataDir();
  if (data.empty()) GTEST_SKIP() << "../shared/data not present; real-footage checks skipped";
  struct Expect {
    const char* file;
    int width, height;
    Rational fps;
    int64_t frames;
  };
  for (const Expect& e : {Expect{"testvideo.mp4", 1280, 720, Rational(30000, 1001), 720},
                          Expect{"fades.mp4", 480, 320, Rational(25, 1), 250},
                          Expect{"counter.mp4", 1920, 1080, Rational(10, 1), 30}}) {
    const std::string path = data + "/video/" + e.file;
    if (!std::filesystem::exists(path)) continue;
    Result<VideoInfo> info = ProbeVideo(path);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->width, e.width) << e.file;
    EXPECT_EQ(info->height, e.height) << e.file;
    EXPECT_EQ(info->frame_rate, e.fps) << e.file;
    EXPECT_EQ(info->frame_count, e.frames) << e.file;
    EXPECT_FALSE(info->variable_frame_rate) << e.file;
  }
}

// ---------------------------------------------------------------- stream copy

// Files with keyframes every 8 or 12 frames for the seeking tests: H.264 with B-frames in
// MP4, MPEG-2 in MPEG-TS (a packet's dts runs ahead of its pts), MPEG-4 in AVI, and, with
// the ffmpeg CLI, MPEG-2 in MPEG-PS, where ffmpeg's muxer at this size and rate leaves the
// pts off 4 of the 5 keyframes.
std::vector<std::string> SeekTestFiles(const TempDir& dir) {
  std::vector<std::string> files;
  for (const auto& [file, codec] : {std::pair<std::string, std::string>{"h264.mp4", "libx264"},
                                    {"mpeg2.ts", "mpeg2video"},
                                    {"mpeg4.avi", "mpeg4"}}) {
    EncodeOptions o;
    o.codec = codec;
    o.gop = 8;
    if (codec == "mpeg2video") o.bit_rate = 400000;
    EXPECT_TRUE(WriteSyntheticVideo(dir.File(file), testing::SimpleVideo(40), o).ok()) << file;
    files.push_back(dir.File(file));
  }
  if (testing::HaveFfmpegCli()) {
    const std::string mpg = dir.File("mpeg2.mpg");
    auto made = testing::RunProcess({"ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                                     "testsrc2=size=96x64:rate=25", "-frames:v", "60", "-c:v",
                                     "mpeg2video", "-g", "12", "-bf", "2", "-b:v", "100k", mpg});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    files.push_back(mpg);
  } else {
    std::printf("ffmpeg CLI not found: the MPEG-PS case is skipped\n");
  }
  return files;
}

TEST(RemuxTest, CopiesStartAtTheLastKeyframeAtOrBeforeTheStart) {
  // Keyframes every 8 or 12 frames, with B-frames (H.264 in MP4), in MPEG-TS (MPEG-2
  // video, where a packet's dts runs ahead of its pts) and in MPEG-PS (where most
  // keyframes carry no pts at all). A seek to the start's pts lands on the packet whose
  // dts is at or before it; a keyframe displayed after the start (H.264: a start just
  // before a keyframe; MPEG-TS: any start after a GOP's first frame; MPEG-PS: a keyframe
  // taken to show at its dts) was taken as the copy's start, and the first frames of the
  // clip were missing from the file.
  TempDir dir;
  const std::vector<std::string> files = SeekTestFiles(dir);
  for (const std::string& src : files) {
    SCOPED_TRACE(src);
    const std::vector<Frame> frames = DecodeAll(src);
    ASSERT_GE(frames.size(), 40u);
    std::vector<size_t> keys;
    for (size_t i = 0; i < frames.size(); ++i) {
      if (frames[i].key_frame) keys.push_back(i);
    }
    ASSERT_GE(keys.size(), 4u);
    for (size_t s = 0; s + 4 < frames.size(); ++s) {
      size_t key = keys.front();
      for (size_t k : keys) {
        if (frames[k].pts <= frames[s].pts) key = k;
      }
      const std::string out = dir.File("cut_" + std::to_string(s) + ".mkv");
      auto r = CopySegment(src, out, frames[s].pts, frames[s + 3].pts);
      if (!r.ok()) {
        ADD_FAILURE() << "start frame " << s << ": " << r.status().ToString();
        continue;
      }
      EXPECT_EQ(r->first_pts, frames[key].pts) << "start frame " << s;
      EXPECT_EQ(r->hidden, 0) << "start frame " << s;
      // The file holds the clip: frames key through s + 2 decode from it.
      const std::vector<Frame> copied = DecodeAll(out);
      EXPECT_GE(copied.size(), s + 3 - key) << "start frame " << s;
      std::filesystem::remove(out);
    }
  }
}

// Matroska stores no decode times: after a seek, the first HEVC packets come without
// one until the parser works them out. reel passed them on without, the MP4 muxer guessed
// them from the display times, and the next packet's real decode time then fell on a
// guessed one: the copy failed ("non monotonically increasing dts to muxer"), into MP4
// and Matroska alike. Such packets now wait for the first with a decode time and are
// timed back from it. In Matroska (no edit list) the CRA's RASL pictures, which Matroska
// then read back with no time and no decoder shows, are left out of the copy.
TEST(RemuxTest, HevcFromMatroskaCopiesFromEveryKeyframe) {
  TempDir dir;
  const std::string src = dir.File("hevc.mkv");
  Status made = WriteSyntheticVideo(src, testing::SimpleVideo(75, 160, 96), X265Options());
  if (EncoderMissing(made)) GTEST_SKIP() << "no HEVC encoder: " << made.ToString();
  ASSERT_TRUE(made.ok()) << made.ToString();
  const std::vector<Frame> frames = DecodeAll(src);
  ASSERT_EQ(frames.size(), 75u);
  int copies = 0;
  int64_t dropped = 0;
  for (size_t s = 1; s + 10 < frames.size(); ++s) {
    if (!frames[s].key_frame) continue;
    SCOPED_TRACE("from keyframe " + std::to_string(s));
    for (const std::string ext : {"mp4", "mkv"}) {
      const std::string out = dir.File("cut." + ext);
      auto r = CopySegment(src, out, frames[s].pts, frames[s + 10].pts);
      ASSERT_TRUE(r.ok()) << ext << ": " << r.status().ToString();
      EXPECT_EQ(r->first_pts, frames[s].pts) << ext;
      // Every frame the probe counts decodes, and the clip's 10 are there.
      EXPECT_EQ(LibavcodecFrameCount(out), ProbeVideo(out)->frame_count) << ext;
      EXPECT_GE(DecodeAll(out).size(), 10u) << ext;
      if (ext == "mp4") {
        EXPECT_EQ(r->leading_dropped, 0) << "the edit list hides them";
      }
      if (ext == "mkv") dropped += r->leading_dropped;
      std::filesystem::remove(out);
    }
    ++copies;
  }
  EXPECT_GE(copies, 2);
  EXPECT_GT(dropped, 0) << "x265's open GOPs should give the keyframes RASL pictures";
}

// The 33-bit time at `at` in a PES header ('0010'/'0011'/'0001' prefix, marker bits).
int64_t PesTime(const std::string& b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(&b[at]);
  return (static_cast<int64_t>(p[0] & 0x0e) << 29) | (p[1] << 22) | ((p[2] & 0xfe) << 14) |
         (p[3] << 7) | (p[4] >> 1);
}
void SetPesTime(std::string& b, size_t at, int64_t t) {
  b[at] = static_cast<char>((b[at] & 0xf1) | ((t >> 29) & 0x0e));
  b[at + 1] = static_cast<char>((t >> 22) & 0xff);
  b[at + 2] = static_cast<char>(((t >> 14) & 0xfe) | 1);
  b[at + 3] = static_cast<char>((t >> 7) & 0xff);
  b[at + 4] = static_cast<char>(((t << 1) & 0xfe) | 1);
}

// A transport stream with one PES header damaged so that its picture shows before it is
// decoded (pts below dts): the copy failed in the muxer ("pts < dts"). As ffmpeg -c copy
// does, both times become the middle of its pts, its dts and the next free decode time.
// One that lost its times failed too ("non monotonically increasing dts ... >= NOPTS"):
// it takes the next decode time, a frame on, and shows then.
TEST(RemuxTest, APacketShownBeforeItIsDecodedIsRetimed) {
  TempDir dir;
  EncodeOptions o;
  o.gop = 12;
  o.b_frames = 2;
  const std::string good = dir.File("good.ts");
  ASSERT_TRUE(WriteSyntheticVideo(good, testing::SimpleVideo(36, 64, 48), o).ok());
  std::string bytes = testing::ReadFile(good);
  const std::vector<std::vector<size_t>> pes = VideoPesPackets(bytes);
  ASSERT_EQ(pes.size(), 36u);
  int damaged = 0;
  for (size_t k = 18; k < pes.size() && damaged < 2; ++k) {
    const size_t ts = pes[k][0];
    const size_t at =
        ts + ((bytes[ts + 3] & 0x20) ? 5 + static_cast<unsigned char>(bytes[ts + 4]) : 4);
    if ((static_cast<unsigned char>(bytes[at + 7]) >> 6) != 3) continue;  // pts and dts
    if (damaged == 0) {
      const int64_t dts = PesTime(bytes, at + 14);
      SetPesTime(bytes, at + 9, dts - 2 * 3600);  // shown two frames before it is decoded
    } else {
      // The next one loses both times (the flags say none; their bytes are stuffing).
      bytes[at + 7] = static_cast<char>(bytes[at + 7] & 0x3f);
      for (size_t i = 9; i < 19; ++i) bytes[at + i] = static_cast<char>(0xff);
    }
    ++damaged;
  }
  ASSERT_EQ(damaged, 2) << "too few PES headers with both times";
  const std::string bad = dir.File("bad.ts");
  testing::WriteFile(bad, bytes);
  for (const std::string ext : {"mp4", "mkv"}) {
    auto r = CopySegment(bad, dir.File("copy." + ext), 0, std::numeric_limits<int64_t>::max());
    ASSERT_TRUE(r.ok()) << ext << ": " << r.status().ToString();
    EXPECT_GE(r->retimed, 2) << ext;
    EXPECT_EQ(r->packets, 36) << ext;
    EXPECT_EQ(LibavcodecFrameCount(dir.File("copy." + ext)), 36) << ext;
  }

  // A keyframe whose PES header lost both times, where a copy starts: it was written
  // without times ("write failed: Invalid argument"). It is taken to be the start.
  bytes = testing::ReadFile(good);
  const std::vector<Frame> frames = DecodeAll(good);
  size_t key = 12;
  while (key + 9 < frames.size() && !frames[key].key_frame) ++key;
  ASSERT_LT(key + 9, frames.size()) << "no keyframe mid-file";
  bool stripped = false;
  for (const std::vector<size_t>& packets : pes) {
    const size_t ts = packets[0];
    const size_t at =
        ts + ((bytes[ts + 3] & 0x20) ? 5 + static_cast<unsigned char>(bytes[ts + 4]) : 4);
    if ((static_cast<unsigned char>(bytes[at + 7]) >> 6) == 0) continue;
    if (PesTime(bytes, at + 9) != frames[key].pts) continue;
    const int header = static_cast<unsigned char>(bytes[at + 8]);
    bytes[at + 7] = static_cast<char>(bytes[at + 7] & 0x3f);
    for (int i = 0; i < header; ++i) bytes[at + 9 + i] = static_cast<char>(0xff);
    stripped = true;
  }
  ASSERT_TRUE(stripped);
  testing::WriteFile(bad, bytes);
  for (const std::string ext : {"mp4", "mkv"}) {
    const std::string out = dir.File("mid." + ext);
    auto r = CopySegment(bad, out, frames[key].pts, frames[key + 8].pts);
    ASSERT_TRUE(r.ok()) << ext << ": " << r.status().ToString();
    EXPECT_EQ(r->first_pts, frames[key].pts) << ext;
    EXPECT_GE(LibavcodecFrameCount(out), 8) << ext;
  }
}

TEST(RemuxTest, Mp4CopiesShowFromTheStartThroughAnEditList) {
  // A copy begins at a keyframe; in MP4 an edit list hides the frames before the start,
  // so a decoder's first frame is the clip's first frame. Without it, a copy of frames
  // 9..11 from a GOP of 8 showed frames 8..11 (and 0..11 from a GOP of 12).
  TempDir dir;
  for (const std::string& src : SeekTestFiles(dir)) {
    SCOPED_TRACE(src);
    const std::vector<Frame> frames = DecodeAll(src);
    ASSERT_GE(frames.size(), 40u);
    for (size_t s = 0; s + 4 < frames.size(); ++s) {
      const std::string out = dir.File("cut_" + std::to_string(s) + ".mp4");
      auto r = CopySegment(src, out, frames[s].pts, frames[s + 3].pts);
      if (!r.ok()) {
        ADD_FAILURE() << "start frame " << s << ": " << r.status().ToString();
        continue;
      }
      EXPECT_EQ(r->first_pts, frames[s].pts) << "start frame " << s;
      size_t key = 0;
      for (size_t k = 0; k <= s; ++k) {
        if (frames[k].key_frame) key = k;
      }
      // From the keyframe to the start (and, in an open GOP, the frames shown before the
      // keyframe, which need the GOP before it).
      EXPECT_GE(r->hidden, static_cast<int64_t>(s - key)) << "start frame " << s;
      const std::vector<Frame> copied = DecodeAll(out);
      ASSERT_GE(copied.size(), 3u) << "start frame " << s;
      for (size_t i = 0; i < 3; ++i) {
        EXPECT_TRUE(copied[i].data == frames[s + i].data) << "start frame " << s << " + " << i;
      }
      auto probe = ProbeVideo(out);
      ASSERT_TRUE(probe.ok()) << probe.status().ToString();
      EXPECT_EQ(probe->frame_count, static_cast<int64_t>(copied.size())) << "start frame " << s;
      std::filesystem::remove(out);
    }
  }
}

// The times of the frames libavcodec's own decoder returns for `path`, in the order it
// returns them, as ffprobe -count_frames and the loaders built on libavcodec see them (no
// dropping of edit-list-hidden frames or reordering by reel).
std::vector<int64_t> LibavcodecFramePts(const std::string& path) {
  std::vector<int64_t> pts;
  auto in = av::OpenInput(path);
  if (!in.ok()) return pts;
  const int vindex = av::PickVideoStream(in->get());
  auto dec = av::OpenDecoder((*in)->streams[vindex], 1, false, path);
  if (!dec.ok()) return pts;
  av::PacketPtr pkt(av_packet_alloc());
  av::FramePtr frame(av_frame_alloc());
  auto drain = [&] {
    while (avcodec_receive_frame(dec->get(), frame.get()) == 0) {
      pts.push_back(frame->best_effort_timestamp);
      av_frame_unref(frame.get());
    }
  };
  while (av_read_frame(in->get(), pkt.get()) >= 0) {
    if (pkt->stream_index == vindex) avcodec_send_packet(dec->get(), pkt.get());
    av_packet_unref(pkt.get());
    drain();
  }
  avcodec_send_packet(dec->get(), nullptr);
  drain();
  return pts;
}

int64_t LibavcodecFrameCount(const std::string& path) {
  if (!std::filesystem::exists(path)) return -1;
  return static_cast<int64_t>(LibavcodecFramePts(path).size());
}

// The decode-order positions of the video packets flagged keyframes.
std::vector<int> KeyframePackets(const std::string& path) {
  std::vector<int> keys;
  auto in = av::OpenInput(path);
  if (!in.ok()) return keys;
  const int vindex = av::PickVideoStream(in->get());
  av::PacketPtr pkt(av_packet_alloc());
  for (int n = 0; av_read_frame(in->get(), pkt.get()) >= 0; av_packet_unref(pkt.get())) {
    if (pkt->stream_index != vindex) continue;
    if (pkt->flags & AV_PKT_FLAG_KEY) keys.push_back(n);
    ++n;
  }
  return keys;
}

// A transport stream recorded from mid-GOP (a capture started, or a file cut, anywhere)
// starts with frames predicted from pictures it does not hold. Decoders show none of
// them, and ffprobe -count_frames does not count them, but the probe counted packets:
// such a capture was 212 frames long where 200 decode, and its last clip ended 0.48 s
// after its last frame. For each codec, the probe now counts the frames libavcodec's
// decoder returns, and the video starts at the first of them.
TEST(ProbeTest, CaptureStartingMidGopCountsTheFramesThatDecode) {
  TempDir dir;
  struct Case {
    const char* codec;
    int cut_at;  // the decode-order packet the capture starts with; -1: the second keyframe
    bool gap;    // the frames shown leave out some in the middle
  };
  // H.264 with B-frames; MPEG-2 cut at an I-frame of its open GOPs (the B-frames after
  // it in decode order predict from the GOP before); HEVC (x265's open GOPs: the first
  // CRA's RASL pictures do not decode, though the frames before them are concealed).
  for (const Case& c :
       {Case{"libx264", 37, false}, Case{"mpeg2video", -1, false}, Case{"libx265", 37, true}}) {
    SCOPED_TRACE(c.codec);
    EncodeOptions o;
    o.codec = c.codec;
    if (c.codec == std::string("mpeg2video")) {
      o.gop = 12;
      o.b_frames = 2;
    } else {
      o.gop = 25;
    }
    const std::string full = dir.File(std::string(c.codec) + ".ts");
    Status made = WriteSyntheticVideo(full, testing::SimpleVideo(100, 96, 64), o);
    if (EncoderMissing(made)) {
      std::printf("skipping %s: %s\n", c.codec, made.ToString().c_str());
      continue;
    }
    ASSERT_TRUE(made.ok()) << made.ToString();
    const std::string bytes = testing::ReadFile(full);
    const std::vector<std::vector<size_t>> pes = VideoPesPackets(bytes);
    ASSERT_EQ(pes.size(), 100u);
    const int cut_at = c.cut_at >= 0 ? c.cut_at : KeyframePackets(full).at(1);
    const std::string capture = dir.File(std::string("capture-") + c.codec + ".ts");
    testing::WriteFile(capture, bytes.substr(pes[static_cast<size_t>(cut_at)][0]));

    Result<VideoInfo> info = ProbeVideo(capture);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    const std::vector<Frame> frames = DecodeAll(capture);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(info->frame_count, LibavcodecFrameCount(capture));
    EXPECT_EQ(info->frame_count, static_cast<int64_t>(frames.size()));
    EXPECT_GT(info->undecodable_lead, 0);
    EXPECT_LT(info->frame_count, 100 - cut_at);  // fewer than the packets it holds
    EXPECT_EQ(info->start_time, TicksToSeconds(frames.front().pts, info->time_base));
    if (c.gap) {
      EXPECT_GT(info->duration, Rational(info->frame_count, 25));
    } else {
      EXPECT_EQ(info->duration, Rational(info->frame_count, 25));
    }
    // Cut after the last keyframe (75 of the 25-frame GOPs): no sequence header, nothing
    // decodes, and the error says why.
    if (o.gop == 25) {
      const std::string tail = dir.File(std::string("tail-") + c.codec + ".ts");
      testing::WriteFile(tail, bytes.substr(pes[92][0]));
      ExpectProbeRefuses(tail, StatusCode::kCorruption, "no sequence header");
    }
  }
}

// FFmpeg 5.1's HEVC decoder, given some cuts of an x265 transport stream (those starting
// with B-frames whose picture order count, read without the pictures before the cut,
// lands above every later one's), holds the first frames to the end, and with its
// reordering budget spent on them returns every other frame in decode order. reel's scan
// then saw motion jump back and forth at every B-frame: 0 clips at the default minimum
// length. VideoDecoder now returns every cut's frames in display order (ties kept: the
// decoder gives two of the concealed frames one time), as many as the probe counts.
TEST(DecoderTest, HevcCutsComeOutInDisplayOrder) {
  TempDir dir;
  const std::string full = dir.File("full.ts");
  Status made = WriteSyntheticVideo(full, testing::SimpleVideo(160, 96, 64), X265Options());
  if (EncoderMissing(made)) GTEST_SKIP() << "no HEVC encoder: " << made.ToString();
  ASSERT_TRUE(made.ok()) << made.ToString();
  const std::string bytes = testing::ReadFile(full);
  const std::vector<std::vector<size_t>> pes = VideoPesPackets(bytes);
  ASSERT_EQ(pes.size(), 160u);
  const std::vector<int> keys = KeyframePackets(full);
  ASSERT_GE(keys.size(), 6u);
  int read = 0, out_of_order = 0;
  // Each cut up to the last keyframe (after it there is no sequence header).
  for (size_t cut = 1; cut <= static_cast<size_t>(keys.back()); ++cut) {
    SCOPED_TRACE("cut at packet " + std::to_string(cut));
    const std::string capture = dir.File("cut" + std::to_string(cut) + ".ts");
    testing::WriteFile(capture, bytes.substr(pes[cut][0]));
    const std::vector<int64_t> raw = LibavcodecFramePts(capture);
    if (!std::is_sorted(raw.begin(), raw.end())) ++out_of_order;
    Result<VideoInfo> info = ProbeVideo(capture);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    const std::vector<Frame> frames = DecodeAll(capture);
    ASSERT_EQ(static_cast<int64_t>(frames.size()), info->frame_count);
    for (size_t i = 1; i < frames.size(); ++i) {
      ASSERT_GE(frames[i].pts, frames[i - 1].pts) << "frame " << i;
    }
    EXPECT_EQ(info->start_time, TicksToSeconds(frames.front().pts, info->time_base));
    std::filesystem::remove(capture);
    ++read;
  }
  EXPECT_EQ(read, keys.back());
  // The fixture must still provoke the decoder, or this test checks nothing.
  EXPECT_GT(out_of_order, 0);
}

// FFmpeg 5.1's AV1 decoder (libdav1d) returns the frames an MP4 edit list hides, so an
// AV1 copy with one decoded to more frames than recorded (40 against 20 for a 20-frame
// clip from mid-GOP). A copy must decode, with libavcodec's own decoder, to the frames
// recorded, from the frame recorded as its first: where the decoder ignores the list,
// the copy is written without one and shows from the keyframe.
TEST(RemuxTest, CopiesDecodeToTheFramesRecordedWhateverTheDecoderDoesWithEditLists) {
  TempDir dir;
  EncodeOptions o;
  o.codec = "libaom-av1";
  o.gop = 12;
  const std::string src = dir.File("av1.mp4");
  Status made = WriteSyntheticVideo(src, testing::SimpleVideo(24, 64, 48), o);
  if (EncoderMissing(made)) GTEST_SKIP() << "no AV1 encoder: " << made.ToString();
  ASSERT_TRUE(made.ok()) << made.ToString();
  const std::vector<Frame> frames = DecodeAll(src);
  ASSERT_EQ(frames.size(), 24u);
  ASSERT_FALSE(frames[5].key_frame);
  for (int round = 0; round < 2; ++round) {  // the decoder's test, then what was learnt
    SCOPED_TRACE(round);
    const std::string out = dir.File("cut" + std::to_string(round) + ".mp4");
    auto r = CopySegment(src, out, frames[5].pts, frames[9].pts);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto probe = ProbeVideo(out);
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    EXPECT_EQ(LibavcodecFrameCount(out), probe->frame_count);
    size_t first = 0;  // the source frame recorded as the copy's first
    while (first < frames.size() && frames[first].pts != r->first_pts) ++first;
    ASSERT_LT(first, frames.size()) << "first_pts " << r->first_pts << " is no frame's";
    EXPECT_EQ(r->hidden, static_cast<int64_t>(first));  // from keyframe 0 to the first shown
    const std::vector<Frame> copied = DecodeAll(out);
    EXPECT_EQ(static_cast<int64_t>(copied.size()), probe->frame_count);
    ASSERT_GE(copied.size(), 9 - first);
    EXPECT_TRUE(copied[0].data == frames[first].data);
    EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
  }

  // A source with such an edit list (trimmed with `ffmpeg -ss 0.28 -c copy`): reel's
  // decoder drops the hidden frames itself, so it shows the 17 frames the probe counts
  // (it showed all 24, the first 7 before the start, and a scan cut clips from them).
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg CLI not found: no trimmed source";
  const std::string trimmed = dir.File("trimmed.mp4");
  auto trim = testing::RunProcess(
      {"ffmpeg", "-loglevel", "error", "-ss", "0.28", "-i", src, "-c", "copy", trimmed});
  ASSERT_EQ(trim.exit_code, 0) << trim.err;
  auto probe = ProbeVideo(trimmed);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ(probe->frame_count, 17);
  const std::vector<Frame> shown = DecodeAll(trimmed);
  ASSERT_EQ(shown.size(), 17u);
  for (size_t i = 0; i < shown.size(); ++i) {
    EXPECT_TRUE(shown[i].data == frames[7 + i].data) << "frame " << i;
  }
}

// Readers that keep some frames only (a frame rate converted) take them unconverted and
// convert the ones they keep, even after later frames were decoded; rotated and scaled,
// a converted frame equals the frame Next() gives, and its times are those Next() gives.
TEST(DecoderTest, FramesTakenUnconvertedConvertLaterToTheSamePixels) {
  TempDir dir;
  const std::string path = dir.File("v.mp4");
  EncodeOptions enc;
  enc.rotation = 90;
  ASSERT_TRUE(WriteSyntheticVideo(path, testing::SimpleVideo(12, 64, 48), enc).ok());
  DecodeOptions options;
  options.height = 40;
  options.filter = ResizeFilter::kArea;
  const std::vector<Frame> want = DecodeAll(path, options);
  ASSERT_EQ(want.size(), 12u);
  auto decoder = VideoDecoder::Open(path, options);
  ASSERT_TRUE(decoder.ok()) << decoder.status().ToString();
  std::vector<Frame> got;
  Frame f;
  while (*(*decoder)->NextUnconverted(&f)) {
    EXPECT_NE(f.unconverted, nullptr);
    got.push_back(f);
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i += 2) {  // every other frame, after all were read
    ASSERT_TRUE((*decoder)->Convert(&got[i]).ok());
    EXPECT_EQ(got[i].unconverted, nullptr);
    ASSERT_TRUE((*decoder)->Convert(&got[i]).ok()) << "converting twice does nothing";
    EXPECT_EQ(got[i].width, want[i].width);
    EXPECT_EQ(got[i].height, want[i].height);
    EXPECT_TRUE(got[i].data == want[i].data) << "frame " << i;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].pts, want[i].pts);
    EXPECT_EQ(got[i].index, want[i].index);
    EXPECT_EQ(got[i].time, want[i].time);
    EXPECT_EQ(got[i].width, want[i].width) << "the output size, before converting too";
  }
}

TEST(SamplerTest, FramesReadAfterASeekAreTheFramesDecodedFromTheStart) {
  // The stream copy test's files: after OpenVideoAt's seek, frame s must be bit-identical
  // to frame s of a decode from the start (a seek past the GOP's keyframe would give frames
  // decoded without their references, or none).
  TempDir dir;
  for (const std::string& src : SeekTestFiles(dir)) {
    SCOPED_TRACE(src);
    const std::vector<Frame> frames = DecodeAll(src);
    ASSERT_GE(frames.size(), 40u);
    for (size_t s = 0; s < frames.size(); ++s) {
      auto read = ReadFramesAtPts(src, {frames[s].pts}, {});
      if (!read.ok()) {
        ADD_FAILURE() << "frame " << s << ": " << read.status().ToString();
        continue;
      }
      ASSERT_EQ(read->size(), 1u);
      EXPECT_EQ((*read)[0].pts, frames[s].pts) << "frame " << s;
      EXPECT_TRUE((*read)[0].data == frames[s].data) << "frame " << s;
    }
  }
}

TEST(SamplerTest, RawStreamsAreReadFromTheStartAndNotCutByCopy) {
  // A raw H.265 stream cannot seek ("seek failed: Operation not permitted" ended every
  // clip's frame-exact export) and its packets carry no timestamps; a .y4m is raw video,
  // which Matroska takes only with its codec tag (I420).
  TempDir dir;
  EXPECT_TRUE(HasVideoExtension("a/b.m2v"));
  EXPECT_TRUE(HasVideoExtension("a/b.H265"));
  EncodeOptions o;
  o.gop = 8;
  // A raw H.264 stream seeks through a generic index, but its times are guesses.
  o.codec = "libx264";
  const std::string h264 = dir.File("es.h264");
  ASSERT_TRUE(WriteSyntheticVideo(h264, testing::SimpleVideo(24), o).ok());
  o.codec = "libx265";
  const std::string hevc = dir.File("es.hevc");
  ASSERT_TRUE(WriteSyntheticVideo(hevc, testing::SimpleVideo(24), o).ok());
  std::vector<Frame> frames;
  for (const std::string& path : {h264, hevc}) {
    frames = DecodeAll(path);
    ASSERT_EQ(frames.size(), 24u) << path;
    for (size_t s : {0, 9, 23}) {
      auto read = ReadFramesAtPts(path, {frames[s].pts}, {});
      ASSERT_TRUE(read.ok()) << path << " frame " << s << ": " << read.status().ToString();
      EXPECT_EQ((*read)[0].pts, frames[s].pts) << path << " frame " << s;
      EXPECT_TRUE((*read)[0].data == frames[s].data) << path << " frame " << s;
    }
  }
  auto copy = CopySegment(hevc, dir.File("cut.mp4"), frames[9].pts, frames[12].pts);
  ASSERT_FALSE(copy.ok());
  EXPECT_EQ(copy.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(copy.status().message().find("carry no timestamps"), std::string::npos)
      << copy.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.File("cut.mp4")));

  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg CLI not found: the .y4m case is skipped";
  const std::string y4m = dir.File("raw.y4m");
  auto made = testing::RunProcess({"ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                                   "testsrc2=size=64x48:rate=25", "-frames:v", "12", "-pix_fmt",
                                   "yuv420p", y4m});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::vector<Frame> raw_frames = DecodeAll(y4m);
  ASSERT_EQ(raw_frames.size(), 12u);
  ASSERT_EQ(StreamCopyContainer("rawvideo"), "mkv");
  auto cut = CopySegment(y4m, dir.File("cut.mkv"), raw_frames[3].pts, raw_frames[7].pts);
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();
  const std::vector<Frame> copied = DecodeAll(dir.File("cut.mkv"));
  ASSERT_EQ(copied.size(), 4u);
  EXPECT_TRUE(copied[0].data == raw_frames[3].data);
}

}  // namespace
}  // namespace reel

namespace reel {
namespace {

// A mid grey (8-bit 128, coded 504 of 10 bits in limited range), as ffmpeg's
// zscale=t=linear:npl=100,...,tonemap=hable,zscale=t=bt709 chain maps it: 154 for PQ
// (0.944 linear; hable(0.944)/hable(10) = 0.299, to the power 1/2.4 = 0.604) and 125 for
// HLG; and a red whose R' lies above 1 (zimg keeps it in floating point).
TEST(ToneMapTest, KnownValuesOfFfmpegsChain) {
  const uint16_t grey_y = 504 << 6, mid = 512 << 6;
  const uint16_t red_y = 324 << 6, red_cb = 360 << 6, red_cr = 960 << 6;
  struct Case {
    HdrTransfer transfer;
    uint8_t grey;
    uint8_t red[3];
  };
  for (const Case& c : {Case{HdrTransfer::kPq, 154, {255, 255, 255}},
                        Case{HdrTransfer::kHlg, 125, {255, 115, 130}}}) {
    ToneMapper mapper(c.transfer);
    uint8_t rgb[6], bgr[6], gray[2];
    const uint16_t y[2] = {grey_y, red_y}, cb[2] = {mid, red_cb}, cr[2] = {mid, red_cr};
    const double peak = ToneMapper::SignalPeak(0, 0);
    mapper.Map(y, cb, cr, 2, {}, peak, PixelFormat::kRgb24, rgb);
    mapper.Map(y, cb, cr, 2, {}, peak, PixelFormat::kBgr24, bgr);
    mapper.Map(y, cb, cr, 2, {}, peak, PixelFormat::kGray8, gray);
    EXPECT_EQ(rgb[0], c.grey);
    EXPECT_EQ(rgb[1], c.grey);
    EXPECT_EQ(rgb[2], c.grey);
    EXPECT_EQ(gray[0], c.grey);
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(rgb[3 + k], c.red[k]) << k;
      EXPECT_EQ(bgr[3 + k], c.red[2 - k]) << k;
    }
  }
  EXPECT_EQ(ToneMapper::SignalPeak(0, 0), 10.0);
  EXPECT_EQ(ToneMapper::SignalPeak(0, 4000), 40.0);     // mastering display, cd/m²
  EXPECT_EQ(ToneMapper::SignalPeak(1500, 4000), 15.0);  // MaxCLL first
}

// PQ and HLG sources (HDR10; what phones record) came out of the decoder unmapped: their
// R'G'B' read as SDR, washed out (8.0-8.4 dB and 13.8-14.0 dB against the tone-mapped
// frames). They are now tone-mapped as the ffmpeg chain ingest names does it; against that
// chain's RGB output the frames measured 63.5 dB (PQ) and 76.3 dB (HLG) or more.
TEST(ToneMapTest, HdrFramesMatchFfmpegsTonemapChain) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  const int w = 96, h = 64;
  const size_t frame_bytes = static_cast<size_t>(w * h * 3);
  for (const std::string trc : {"smpte2084", "arib-std-b67"}) {
    SCOPED_TRACE(trc);
    const std::string src = dir.File(trc + ".mp4");
    auto made = testing::RunProcess(
        {"ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=0.2",
         "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params",
         "log-level=none:lossless=1:colorprim=bt2020:colormatrix=bt2020nc:transfer=" + trc, src});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const std::string ref = dir.File(trc + ".rgb");
    made = testing::RunProcess(
        {"ffmpeg", "-v", "error", "-i", src, "-vf",
         "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable,zscale=t=bt709,"
         "format=gbrp,format=rgb24",
         "-f", "rawvideo", ref});
    if (made.exit_code != 0 && made.err.find("zscale") != std::string::npos) {
      GTEST_SKIP() << "this ffmpeg has no zscale filter: " << made.err;
    }
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const std::string want = testing::ReadFile(ref);
    const std::vector<Frame> frames = DecodeAll(src);
    ASSERT_EQ(frames.size(), 5u);
    ASSERT_EQ(want.size(), 5 * frame_bytes);
    DecodeOptions unmapped_options;
    unmapped_options.tone_map_hdr = false;
    const std::vector<Frame> unmapped = DecodeAll(src, unmapped_options);
    ASSERT_EQ(unmapped.size(), 5u);
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto* ref_frame = reinterpret_cast<const uint8_t*>(want.data()) + i * frame_bytes;
      ASSERT_EQ(frames[i].data.size(), frame_bytes);
      EXPECT_GT(testing::Psnr8(frames[i].data.data(), ref_frame, frame_bytes), 55.0)
          << "frame " << i;
      EXPECT_LT(testing::Psnr8(unmapped[i].data.data(), ref_frame, frame_bytes), 20.0)
          << "frame " << i;
    }
    // Scaled in the same pass, and in the other formats.
    DecodeOptions small;
    small.width = 48;
    small.format = PixelFormat::kGray8;
    const std::vector<Frame> gray = DecodeAll(src, small);
    ASSERT_EQ(gray.size(), 5u);
    EXPECT_EQ(gray[0].width, 48);
    EXPECT_EQ(gray[0].height, 32);
    double mean_gray = 0, mean_ref = 0;
    for (uint8_t v : gray[0].data) mean_gray += v;
    for (size_t p = 0; p < frame_bytes; p += 3) {
      mean_ref += 0.2126 * static_cast<uint8_t>(want[p]) +
                  0.7152 * static_cast<uint8_t>(want[p + 1]) +
                  0.0722 * static_cast<uint8_t>(want[p + 2]);
    }
    EXPECT_NEAR(mean_gray / (48 * 32), mean_ref / (w * h), 4.0);
    // Scaled, the frames are mapped first, as the chain followed by ffmpeg's scale makes
    // them: 64.5 dB (PQ), 75.7 dB (HLG) against it. Scaled first (the mapping is not
    // linear), edges between bright colours were off: 22.2 and 23.9 dB.
    const std::string scaled_ref = dir.File(trc + "-small.rgb");
    made = testing::RunProcess(
        {"ffmpeg", "-v", "error", "-i", src, "-vf",
         "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable,zscale=t=bt709,"
         "format=gbrp,format=rgb24,scale=48:32:flags=area",
         "-f", "rawvideo", scaled_ref});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const std::string want_small = testing::ReadFile(scaled_ref);
    const size_t small_bytes = 48 * 32 * 3;
    ASSERT_EQ(want_small.size(), 5 * small_bytes);
    small.format = PixelFormat::kRgb24;
    small.filter = ResizeFilter::kArea;
    for (bool full_size : {true, false}) {
      small.tone_map_full_size = full_size;
      const std::vector<Frame> scaled = DecodeAll(src, small);
      ASSERT_EQ(scaled.size(), 5u);
      const double psnr = testing::Psnr8(
          scaled[0].data.data(), reinterpret_cast<const uint8_t*>(want_small.data()), small_bytes);
      if (full_size) {
        EXPECT_GT(psnr, 50.0);
      } else {
        EXPECT_LT(psnr, 35.0) << "scaled before mapping: the fast path scan's fast resize takes";
      }
    }
  }
}

}  // namespace
}  // namespace reel

namespace reel {
namespace {

// Interlaced video (broadcast captures, DVDs, DV) was read as coded: two fields woven
// together, so every moving edge combed. Interlaced frames now come out deinterlaced as
// ffmpeg's yadif makes them: decoded through reel, top- and bottom-field-first sources
// (H.264 8- and 10-bit, MPEG-2, DV 4:1:1) equal ffmpeg's `yadif=deint=interlaced` output
// (stored losslessly, read back through the same conversion) frame for frame; without
// deinterlacing they do not.
TEST(DeinterlaceTest, FramesEqualFfmpegsYadif) {
  if (!testing::HaveFfmpegCli()) GTEST_SKIP() << "ffmpeg command-line tool not installed";
  TempDir dir;
  struct Case {
    const char* name;
    const char* size;
    const char* weave;  // tinterlace mode that weaves pairs of frames into fields
    const char* order;  // fieldorder
    const char* codec;
    std::vector<std::string> flags;
    const char* field_order;  // what the probe says
  };
  const std::vector<Case> cases = {
      {"tff-h264.mp4",
       "96x64",
       "interleave_top",
       "tff",
       "libx264",
       {"-x264-params", "tff=1"},
       "tt"},
      {"bff-mpeg2.mpg",
       "96x64",
       "interleave_bottom",
       "bff",
       "mpeg2video",
       {"-top", "0", "-q:v", "2"},
       "bb"},
      {"tff-h264-10bit.mkv",
       "96x64",
       "interleave_top",
       "tff",
       "libx264",
       {"-x264-params", "tff=1", "-pix_fmt", "yuv420p10le"},
       "tb"},  // as Matroska stores it
      // DV (4:1:1, bottom field first): the stream does not state its field order, but
      // each frame says it is interlaced.
      {"bff.dv", "720x480", "interleave_bottom", "bff", "dvvideo", {"-pix_fmt", "yuv411p"}, ""}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string src = dir.File(c.name);
    std::vector<std::string> argv = {
        "ffmpeg",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        std::string("testsrc2=size=") + c.size + ":rate=60000/1001:duration=0.334",
        "-vf",
        std::string("tinterlace=") + c.weave + ",fieldorder=" + c.order,
        "-c:v",
        c.codec,
        "-flags",
        "+ilme+ildct"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    argv.push_back(src);
    auto made = testing::RunProcess(argv);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto info = ProbeVideo(src);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->field_order, c.field_order);
    const std::string ref = dir.File(std::string(c.name) + ".yadif.mkv");
    made = testing::RunProcess(
        {"ffmpeg", "-v", "error", "-i", src, "-vf", "yadif=deint=interlaced", "-c:v", "ffv1", ref});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const std::vector<Frame> want = DecodeAll(ref);
    const std::vector<Frame> got = DecodeAll(src);
    DecodeOptions woven;
    woven.deinterlace = false;
    const std::vector<Frame> raw = DecodeAll(src, woven);
    ASSERT_EQ(got.size(), 10u);
    ASSERT_EQ(want.size(), got.size());
    ASSERT_EQ(raw.size(), got.size());
    int equal = 0, raw_equal = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].pts, raw[i].pts);
      if (got[i].data == want[i].data) ++equal;
      if (raw[i].data == want[i].data) ++raw_equal;
    }
    EXPECT_EQ(equal, 10);
    EXPECT_EQ(raw_equal, 0);
  }
}

}  // namespace
}  // namespace reel
