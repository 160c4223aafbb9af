// reel samples: synthetic sample videos to try reel on (used by `make demo`).

#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "util/rational.h"
#include "video/encoder.h"
#include "video/synthetic.h"

namespace reel::cli {
namespace {

class SamplesCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    o.add_options()  //
        ("out,o", po::value<std::string>(&out_)->value_name("DIR")->required(),
         "folder to write the videos into")                                                       //
        ("count", po::value<int>(&count_)->value_name("N")->default_value(8), "how many videos")  //
        ("width", po::value<int>(&width_)->value_name("W")->default_value(320), "frame width")    //
        ("height", po::value<int>(&height_)->value_name("H")->default_value(240),
         "frame height")  //
        ("fps", po::value<std::string>(&fps_)->value_name("RATE")->default_value("25"),
         "frame rate as a rational (\"30000/1001\")");
  }

  Status Setup(const po::variables_map&) override {
    if (count_ < 1 || count_ > 10000) return Status::InvalidArgument("--count must be 1..10000");
    if (width_ < 16 || height_ < 16 || width_ % 2 || height_ % 2) {
      return Status::InvalidArgument("--width and --height must be even and at least 16");
    }
    REEL_ASSIGN_OR_RETURN(frame_rate_, Rational::Parse(fps_));
    if (frame_rate_ <= Rational()) return Status::InvalidArgument("--fps must be positive");
    return Status::OK();
  }

  int Run() override {
    std::error_code ec;
    std::filesystem::create_directories(out_, ec);
    if (ec) return Fail(Status::IOError(out_ + ": " + ec.message()));
    // Alternate containers and codecs so an ingest sees some variety.
    struct Flavour {
      const char* ext;
      const char* codec;
    };
    const Flavour flavours[] = {{"mp4", ""}, {"mkv", ""}, {"webm", "libvpx-vp9"}, {"avi", "mpeg4"}};
    int written = 0;
    for (int i = 0; i < count_; ++i) {
      const Flavour& f = flavours[i % 4];
      char name[64];
      std::snprintf(name, sizeof(name), "sample_%03d.%s", i, f.ext);
      const std::string path = (std::filesystem::path(out_) / name).string();
      if (std::filesystem::exists(path, ec)) continue;  // resumable: keep finished files
      SyntheticVideo video = SampleVideo(i, width_, height_, frame_rate_);
      EncodeOptions enc;
      enc.codec = f.codec;
      Status s = WriteSyntheticVideo(path, video, enc);
      if (!s.ok()) return Fail(s);
      ++written;
      if (!common().quiet) {
        std::printf("%s  %lld frames, %zu scenes\n", path.c_str(),
                    static_cast<long long>(video.frame_count()), video.scenes.size());
      }
    }
    if (!common().quiet && written < count_) {
      std::printf("%d sample videos already present in %s\n", count_ - written, out_.c_str());
    }
    return kExitOk;
  }

 private:
  std::string out_;
  std::string fps_;
  int count_ = 8;
  int width_ = 320;
  int height_ = 240;
  Rational frame_rate_{25, 1};
};

}  // namespace

void RegisterMiscCommands(std::vector<CommandInfo>* out) {
  out->push_back({"samples", "write synthetic sample videos with known scene cuts",
                  "samples --out DIR [--count N] [--width W] [--height H] [--fps RATE]",
                  "Each sample has 2-4 scenes (moving boxes, textures, colour bars) separated by\n"
                  "hard cuts; the same --count always gives the same videos. Existing files are\n"
                  "kept, so the command can be rerun.",
                  [] { return std::make_unique<SamplesCommand>(); }});
}

}  // namespace reel::cli
