// Tests for the generator's jobs: training clips from a catalog, VAE training, latent
// caches, sampling to files as a generation run, the `reel generate` commands, and that
// the trained model's text conditioning works (four captioned clips overfit, each caption
// brings back its own).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "curate/filter.h"
#include "curate/scan.h"
#include "db/catalog.h"
#include "generate/pipeline.h"
#include "generate/shape_clips.h"
#include "generate/text.h"
#include "generate/trainer.h"
#include "generate/vae.h"
#include "tests/support/test_support.h"
#include "util/json.h"
#include "video/decoder.h"
#include "video/synthetic.h"

namespace reel::gen {
namespace {

namespace fs = std::filesystem;
using reel::testing::TempDir;

// A coloured box moving over a dark background: (dx, dy) pixels per frame.
SyntheticVideo Box(int size, Rgb fg, Rgb bg, double dx, double dy, int64_t frames, Rational fps) {
  SyntheticVideo v;
  v.width = size;
  v.height = size;
  v.frame_rate = fps;
  SceneSpec s;
  s.kind = SceneKind::kMovingBox;
  s.frames = frames;
  s.foreground = fg;
  s.background = bg;
  s.dx = dx;
  s.dy = dy;
  v.scenes = {s};
  return v;
}

torch::Tensor Render(const SyntheticVideo& v, int64_t frames) {
  torch::Tensor out = torch::empty({3, frames, v.height, v.width});
  for (int64_t i = 0; i < frames; ++i) {
    Frame f;
    v.Render(i, &f);
    out.select(1, i).copy_(torch::from_blob(f.data.data(), {v.height, v.width, 3}, torch::kByte)
                               .permute({2, 0, 1})
                               .to(torch::kFloat));
  }
  return out / 127.5 - 1;
}

TEST(TrainingClipsTest, FromASubsetFrameExactAtTheConfigsRate) {
  TempDir dir;
  fs::create_directories(dir.File("raw"));
  // 3 s at 8 fps, already 32x32: what is read is what was rendered (up to the codec).
  const SyntheticVideo v = Box(32, {230, 40, 40}, {20, 20, 20}, 2, 0, 24, Rational(8, 1));
  EncodeOptions eo;
  eo.crf = 0;
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("raw/box.mp4"), v, eo).ok());
  // Exactly 1 s: 9 frames at 8 fps need a little more than that.
  const SyntheticVideo s = Box(32, {40, 40, 230}, {110, 110, 110}, 0, 1, 8, Rational(8, 1));
  ASSERT_TRUE(WriteSyntheticVideo(dir.File("raw/short.mp4"), s, eo).ok());
  auto cat = Catalog::Open(dir.File("c.db"));
  ASSERT_TRUE(cat.ok());
  ScanOptions so;
  so.split.min_seconds = Rational(1, 2);
  auto scanned = Scan(**cat, {dir.File("raw")}, so);
  ASSERT_TRUE(scanned.ok());
  ASSERT_EQ(scanned->failed, 0);
  ASSERT_TRUE(ApplyFilter(**cat, "duration > 0", "all").ok());
  ClipShape shape;  // 9 frames, 32x32, 8 fps
  ClipSetStats stats;
  auto clips = LoadTrainingClips(**cat, "all", DefaultCaptionPreference(), shape, &stats);
  ASSERT_TRUE(clips.ok()) << clips.status().ToString();
  EXPECT_EQ(stats.listed, 2);
  EXPECT_EQ(stats.loaded, 1);
  EXPECT_EQ(stats.skipped["shorter than 9 frames at 8 fps"], 1);
  ASSERT_EQ(clips->size(), 1u);
  // 4:2:0 chroma costs some dB on the red edges; a frame late costs far more.
  const torch::Tensor want = Render(v, 10);
  const double exact = VideoPsnr((*clips)[0].video, want.narrow(1, 0, 9));
  EXPECT_GT(exact, 30.0);
  EXPECT_LT(VideoPsnr((*clips)[0].video, want.narrow(1, 1, 9)), exact - 5.0);
  EXPECT_EQ((*clips)[0].caption, "") << "no caption yet";

  EXPECT_EQ(
      LoadTrainingClips(**cat, "nope", DefaultCaptionPreference(), shape, nullptr).status().code(),
      StatusCode::kNotFound);
  ASSERT_TRUE(ApplyFilter(**cat, "duration > 100", "empty").ok());
  auto empty = LoadTrainingClips(**cat, "empty", DefaultCaptionPreference(), shape, nullptr);
  EXPECT_EQ(empty.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(empty.status().message().find("no passing clips"), std::string::npos);
}

std::string ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The whole loop through the command line, with a few steps of each job.
TEST(GenerateCliTest, TrainVaePrepareTrainResumeSampleAndEvaluate) {
  TempDir dir;
  fs::create_directories(dir.File("raw"));
  for (int i = 0; i < 3; ++i) {
    const SyntheticVideo v = Box(48, {static_cast<uint8_t>(60 * i + 80), 40, 40}, {100, 100, 100},
                                 1 + i, 0, 40, Rational(10, 1));
    ASSERT_TRUE(WriteSyntheticVideo(dir.File("raw/v" + std::to_string(i) + ".mp4"), v).ok());
  }
  const std::string db = dir.File("c.db");
  auto run = [&](std::vector<std::string> args) { return reel::testing::RunReel(args); };
  ASSERT_EQ(run({"curate", "scan", "--db", db, dir.File("raw"), "-q"}).exit_code, 0);
  ASSERT_EQ(run({"caption", "--db", db, "--backend", "signals", "-q"}).exit_code, 0);
  ASSERT_EQ(
      run({"curate", "filter", "--db", db, "--where", "duration >= 1", "--subset", "train", "-q"})
          .exit_code,
      0);
  ASSERT_EQ(
      run({"curate", "filter", "--db", db, "--where", "duration > 1000", "--subset", "none", "-q"})
          .exit_code,
      0);

  auto vae = run({"generate", "train-vae", "--db", db, "--subset", "train", "--out",
                  dir.File("vae"), "--steps", "3", "--batch", "2", "-q"});
  ASSERT_EQ(vae.exit_code, 0) << vae.err;
  EXPECT_NE(vae.out.find("PSNR"), std::string::npos);
  auto empty =
      run({"generate", "train-vae", "--db", db, "--subset", "none", "--out", dir.File("x"), "-q"});
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("no passing clips"), std::string::npos) << empty.err;
  auto prep = run({"generate", "prepare", "--db", db, "--subset", "train", "--vae", dir.File("vae"),
                   "--out", dir.File("latents.pt"), "-q"});
  ASSERT_EQ(prep.exit_code, 0) << prep.err;

  auto train = [&](const std::string& steps, bool resume) {
    std::vector<std::string> a = {
        "generate",      "train",   "--db", db,        "--latents", dir.File("latents.pt"), "--out",
        dir.File("dit"), "--steps", steps,  "--batch", "2",         "--save-every",         "2",
        "--name",        "tiny",    "-q"};
    if (resume) a.push_back("--resume");
    return run(a);
  };
  auto t1 = train("4", false);
  ASSERT_EQ(t1.exit_code, 0) << t1.err;
  EXPECT_EQ(train("8", false).exit_code, 1) << "an existing checkpoint needs --resume";
  auto t2 = train("8", true);
  ASSERT_EQ(t2.exit_code, 0) << t2.err;
  EXPECT_NE(t2.out.find("4 steps"), std::string::npos) << t2.out;
  {
    Catalog::Options ro;
    ro.read_only = true;
    auto cat = Catalog::Open(db, ro);
    auto runs = (*cat)->ListRuns("train");
    ASSERT_EQ(runs->size(), 2u);
    auto metrics = (*cat)->ListMetrics(runs->back().id);
    ASSERT_EQ(metrics->size(), 1u);
    EXPECT_EQ((*metrics)[0].name, "loss_curve");
    EXPECT_EQ((*metrics)[0].details.Find("step")->size(), 8u)
        << "the curve continues across the resume";
  }

  auto sample = [&](const std::string& out, const std::string& seed) {
    return run({"generate", "sample", "--db", db, "--subset", "train", "--ckpt", dir.File("dit"),
                "--vae", dir.File("vae"), "--out", dir.File(out), "--steps", "3", "--seed", seed,
                "--name", "tiny@8", "-q"});
  };
  auto s1 = sample("a", "1");
  ASSERT_EQ(s1.exit_code, 0) << s1.err;
  ASSERT_EQ(sample("b", "1").exit_code, 0);
  ASSERT_EQ(sample("c", "2").exit_code, 0);
  EXPECT_EQ(ReadBytes(dir.File("a/000000.mp4")), ReadBytes(dir.File("b/000000.mp4")))
      << "same seed, same clip";
  EXPECT_NE(ReadBytes(dir.File("a/000000.mp4")), ReadBytes(dir.File("c/000000.mp4")));
  EXPECT_EQ(run({"generate", "sample", "--ckpt", dir.File("nope"), "--vae", dir.File("vae"),
                 "--prompt", "x", "--out", dir.File("d")})
                .exit_code,
            1);
  EXPECT_EQ(run({"generate", "sample", "--ckpt", dir.File("dit"), "--vae", dir.File("vae"), "--out",
                 dir.File("d")})
                .exit_code,
            2)
      << "no prompts given";
  // The generation run is a source for reel eval.
  auto ev = run({"eval", "run", "--db", db, "--name", "tiny@8", "--fake", "run:" + db + "#tiny@8",
                 "--frames", "9", "--metrics", "flicker", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  auto j = Json::Parse(ev.out);
  ASSERT_TRUE(j.ok());
  EXPECT_GT(j->Find("metrics")->at(0).Find("details")->Find("used")->as_int(), 0);
}

// Four clips with distinct captions: the CPU-size model overfits them, and then each caption
// brings back its own clip and not the others.
TEST(ConditioningTest, EachCaptionSamplesItsOwnClip) {
  TempDir dir;
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  const int frames = config.clip.frames, size = config.clip.width;
  std::vector<TrainingClip> clips;
  auto add = [&](const std::string& caption, torch::Tensor video) {
    TrainingClip c;
    c.clip_id = static_cast<int64_t>(clips.size() + 1);
    c.caption = caption;
    c.video = std::move(video);
    clips.push_back(std::move(c));
  };
  auto spec = [](Shape shape, std::array<uint8_t, 3> colour, std::array<uint8_t, 3> background,
                 double x0, double y0, double vx, double vy) {
    ShapeClipSpec s;
    s.shape = shape;
    s.colour = colour;
    s.background = background;
    s.x0 = x0;
    s.y0 = y0;
    s.vx = vx;
    s.vy = vy;
    return s;
  };
  const std::array<uint8_t, 3> dark{20, 20, 20};
  for (const auto& [caption, s] : std::vector<std::pair<std::string, ShapeClipSpec>>{
           {"a red square moving right", spec(Shape::kSquare, {230, 30, 30}, dark, 8, 16, 2, 0)},
           {"a blue circle moving down", spec(Shape::kDisc, {30, 30, 230}, dark, 16, 8, 0, 2)},
           {"a green square moving left", spec(Shape::kSquare, {30, 220, 30}, dark, 24, 16, -2, 0)},
           {"a white circle on grey",
            spec(Shape::kDisc, {240, 240, 240}, {110, 110, 110}, 10, 10, 1.5, 1.5)}}) {
    add(caption, RenderShapeClip(s, frames, size));
  }

  VaeTrainOptions vo;
  vo.steps = 800;
  vo.batch = 4;
  vo.lr = 1e-3;
  auto vae_result = TrainVae(config, clips, vo, dir.File("vae"), nullptr, nullptr);
  ASSERT_TRUE(vae_result.ok()) << vae_result.status().ToString();
  std::printf("VAE reconstruction: %.2f dB\n", vae_result->psnr);
  RecordProperty("vae_psnr", std::to_string(vae_result->psnr));
  // 25.1 dB measured here; the samples cannot be better than the VAE's reconstructions.
  ASSERT_GT(vae_result->psnr, 22.0) << "the VAE must reconstruct the clips first";
  auto vae = LoadVae(dir.File("vae"), torch::kCPU);
  ASSERT_TRUE(vae.ok()) << vae.status().ToString();
  const std::vector<LatentExample> latents = EncodeLatents(vae->vae, clips);

  std::vector<std::string> captions;
  for (const TrainingClip& c : clips) captions.push_back(c.caption);
  auto tokenizer = BpeTokenizer::Train(captions, config.text.vocab_size);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  TrainOptions to;
  to.batch = 4;
  to.lr = 1e-3;
  to.warmup_steps = 20;
  to.ema_decay = 0.99;
  auto trainer = Trainer::Create(config, *tokenizer, to, torch::kCPU);
  ASSERT_TRUE(trainer.ok()) << trainer.status().ToString();
  const int dit_steps = 1500;
  for (int i = 0; i < dit_steps; ++i) {
    auto st = (*trainer)->Step(latents);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
  }

  SampleOptions so;
  so.steps = 30;
  so.cfg = 3.0;
  so.seed = 7;
  const torch::Tensor z = SampleLatents((*trainer)->ema_dit(), (*trainer)->ema_text(),
                                        (*trainer)->tokenizer(), config, captions, so, torch::kCPU);
  torch::NoGradGuard g;
  const torch::Tensor videos = vae->vae->Decode(vae->vae->Denormalize(z));
  for (size_t i = 0; i < clips.size(); ++i) {
    const double own = VideoPsnr(videos[static_cast<int64_t>(i)], clips[i].video);
    std::printf("'%s': %.2f dB against its clip, against the others:", captions[i].c_str(), own);
    RecordProperty("psnr_" + std::to_string(i), std::to_string(own));
    EXPECT_GT(own, 20.0) << "'" << captions[i] << "' does not reproduce its clip";
    for (size_t j = 0; j < clips.size(); ++j) {
      if (j == i) continue;
      const double other = VideoPsnr(videos[static_cast<int64_t>(i)], clips[j].video);
      std::printf(" %.2f", other);
      EXPECT_LT(other, own - 5.0) << "'" << captions[i] << "' looks like '" << captions[j] << "'";
    }
    std::printf("\n");
  }
}

// A TCP port nobody listens on now (the kernel's pick), for the rendezvous store.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

double MaxDifference(Trainer& a, Trainer& b) {
  double d = 0;
  const auto pa = a.Parameters(), pb = b.Parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    d = std::max(d, (pa[i] - pb[i]).abs().max().item<double>());
  return d;
}

// Two processes started torchrun-style, each with half of the global batch, averaging
// gradients over Gloo on loopback, make the same update as one process with all of it.
TEST(DataParallelTest, TwoProcessesOverGlooMatchOneOnTheUnionBatch) {
  TempDir dir;
  const ModelConfig config = *ModelConfig::Named("cpu-tiny");
  torch::manual_seed(3);
  LatentCache cache;
  cache.model = config.ToJson();
  const char* words[] = {"red", "blue", "green", "white", "black", "grey"};
  for (int i = 0; i < 6; ++i) {
    cache.examples.push_back({torch::randn({config.vae.latent_channels, 3, 4, 4}),
                              std::string("a ") + words[i] + " box"});
    cache.clip_ids.push_back(i + 1);
  }
  const std::string latents = dir.File("latents.pt");
  ASSERT_TRUE(SaveLatentCache(cache, latents).ok());
  const std::string db = dir.File("c.db");
  auto train = [&](const std::string& out, const std::string& batch) {
    return std::vector<std::string>{"generate", "train", "--db",    db,     "--latents", latents,
                                    "--out",    out,     "--steps", "4",    "--batch",   batch,
                                    "--warmup", "2",     "--lr",    "1e-3", "--ema",     "0.5",
                                    "--seed",   "11",    "-q"};
  };
  auto one = reel::testing::RunReel(train(dir.File("one"), "4"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto half = reel::testing::RunReel(train(dir.File("half"), "2"));
  ASSERT_EQ(half.exit_code, 0) << half.err;

  // Both ranks at once, through a shell so they run side by side.
  const std::string port = std::to_string(FreePort());
  std::string script;
  for (int rank = 0; rank < 2; ++rank) {
    script += "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
              " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " '" +
              reel::testing::ReelBinary() + "'";
    for (const std::string& a : train(dir.File("two"), "4")) script += " '" + a + "'";
    script += " > '" + dir.File("rank" + std::to_string(rank) + ".log") + "' 2>&1 & p" +
              std::to_string(rank) + "=$!\n";
  }
  script += "wait $p0; r0=$?; wait $p1; r1=$?; exit $((r0 | r1))\n";
  auto two = reel::testing::RunProcess({"/bin/sh", "-c", script});
  ASSERT_EQ(two.exit_code, 0) << ReadBytes(dir.File("rank0.log"))
                              << ReadBytes(dir.File("rank1.log"));

  auto a = Trainer::Load(dir.File("one"), torch::kCPU);
  auto b = Trainer::Load(dir.File("two"), torch::kCPU);
  auto c = Trainer::Load(dir.File("half"), torch::kCPU);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*b)->step(), 4);
  const double two_vs_one = MaxDifference(**a, **b);
  const double half_vs_one = MaxDifference(**a, **c);
  RecordProperty("two_vs_one", std::to_string(two_vs_one));
  std::printf(
      "largest weight difference after 4 steps: two processes vs one %.3g, one on half "
      "the batch vs one %.3g\n",
      two_vs_one, half_vs_one);
  EXPECT_LT(two_vs_one, 1e-5) << "two processes must make one process's update";
  EXPECT_GT(half_vs_one, 1e-4) << "the comparison must be able to tell batches apart";

  // Only rank 0 recorded the run.
  auto catalog = Catalog::Open(db);
  ASSERT_TRUE(catalog.ok());
  auto runs = (*catalog)->ListRuns("train");
  ASSERT_TRUE(runs.ok());
  int64_t with_two = 0;
  for (const RunRecord& r : *runs) {
    if (r.config.Find("processes") != nullptr && r.config.Find("processes")->as_int() == 2)
      ++with_two;
  }
  EXPECT_EQ(with_two, 1);

  // Ctrl-C in one process stops both after the same step: the vote travels with the
  // gradients, so rank 0 records an interrupted run instead of waiting for its peer.
  const std::string port2 = std::to_string(FreePort());
  std::string long_run;
  for (int rank = 0; rank < 2; ++rank) {
    long_run += "RANK=" + std::to_string(rank) +
                " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port2 + " '" +
                reel::testing::ReelBinary() + "'";
    std::vector<std::string> args = train(dir.File("stopped"), "4");
    args[9] = "1000000";  // --steps
    for (const std::string& a : args) long_run += " '" + a + "'";
    long_run +=
        " --name stopped --dist-timeout 30 > /dev/null 2>&1 & p" + std::to_string(rank) + "=$!\n";
  }
  long_run += "sleep 4; kill -INT $p1; wait $p0; r0=$?; wait $p1; r1=$?; echo $r0 $r1\n";
  auto stopped = reel::testing::RunProcess({"/bin/sh", "-c", long_run});
  EXPECT_EQ(stopped.out, "1 1\n") << "both exit as interrupted";
  runs = (*catalog)->ListRuns("train");
  ASSERT_TRUE(runs.ok());
  bool interrupted = false;
  for (const RunRecord& r : *runs)
    if (r.name == "stopped") interrupted = r.status == RunStatus::kInterrupted;
  EXPECT_TRUE(interrupted) << "rank 0 saw rank 1's interrupt";
  auto resumable = Trainer::Load(dir.File("stopped"), torch::kCPU);
  ASSERT_TRUE(resumable.ok()) << resumable.status().ToString();
  EXPECT_GT((*resumable)->step(), 0);

  // A malformed launch environment is named.
  auto bad = reel::testing::RunProcess({"/usr/bin/env", "WORLD_SIZE=2", reel::testing::ReelBinary(),
                                        "generate", "train", "--db", db, "--latents", latents,
                                        "--out", dir.File("bad"), "-q"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("RANK"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace reel::gen
