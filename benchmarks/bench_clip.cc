// CLIP throughput on this machine's CPU (or CUDA with REEL_BENCH_DEVICE=cuda, bf16):
//
//   clip_preprocess            OpenAI preprocessing of a 1280x720 RGB frame (Pillow bicubic
//                              to 224, centre crop, normalise): images per second
//   clip_image/batch:N         the ViT-B/32 image tower (OpenAI's shapes: width 768, 12
//                              layers, patch 32, 224 px, embedding 512) with random weights:
//                              images per second
//   clip_text/batch:N          the ViT-B/32 text tower (width 512, 12 layers, 77 tokens):
//                              captions per second
//   clip_text_tokens/len:L    per-token features of the same tower cut at L tokens, batch 8
//                              (what `generate train --text-encoder clip-vit-b-32` computes
//                              once per caption): captions per second
//   clip_tokenize              CLIP's BPE tokenizer on varied captions (needs the vocabulary:
//                              ../shared/data/clip or the installed clip-vocab): captions/s
//
// Torch uses its default intra-op threads (all cores); set OMP_NUM_THREADS to change.

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "nets/clip.h"
#include "nets/clip_tokenizer.h"
#include "nets/models.h"
#include "nets/torch_compat.h"

namespace reel {
namespace {

torch::Device BenchDevice() {
  const char* d = std::getenv("REEL_BENCH_DEVICE");
  return d != nullptr && std::string(d) == "cuda" ? torch::Device(torch::kCUDA)
                                                  : torch::Device(torch::kCPU);
}

void AddBlock(std::map<std::string, torch::Tensor>* s, const std::string& p, int64_t w) {
  auto r = [](std::vector<int64_t> shape) { return torch::randn(shape) * 0.02; };
  (*s)[p + "attn.in_proj_weight"] = r({3 * w, w});
  (*s)[p + "attn.in_proj_bias"] = r({3 * w});
  (*s)[p + "attn.out_proj.weight"] = r({w, w});
  (*s)[p + "attn.out_proj.bias"] = r({w});
  (*s)[p + "ln_1.weight"] = torch::ones({w});
  (*s)[p + "ln_1.bias"] = torch::zeros({w});
  (*s)[p + "mlp.c_fc.weight"] = r({4 * w, w});
  (*s)[p + "mlp.c_fc.bias"] = r({4 * w});
  (*s)[p + "mlp.c_proj.weight"] = r({w, 4 * w});
  (*s)[p + "mlp.c_proj.bias"] = r({w});
  (*s)[p + "ln_2.weight"] = torch::ones({w});
  (*s)[p + "ln_2.bias"] = torch::zeros({w});
}

// ViT-B/32 with OpenAI's parameter names and shapes, random weights.
const ClipModel& VitB32() {
  static const std::unique_ptr<ClipModel> model = [] {
    torch::manual_seed(0);
    std::map<std::string, torch::Tensor> s;
    const int64_t vw = 768, grid = 7, tw = 512, embed = 512;
    s["visual.conv1.weight"] = torch::randn({vw, 3, 32, 32}) * 0.02;
    s["visual.class_embedding"] = torch::randn({vw}) * 0.02;
    s["visual.positional_embedding"] = torch::randn({grid * grid + 1, vw}) * 0.02;
    s["visual.ln_pre.weight"] = torch::ones({vw});
    s["visual.ln_pre.bias"] = torch::zeros({vw});
    for (int i = 0; i < 12; ++i)
      AddBlock(&s, "visual.transformer.resblocks." + std::to_string(i) + ".", vw);
    s["visual.ln_post.weight"] = torch::ones({vw});
    s["visual.ln_post.bias"] = torch::zeros({vw});
    s["visual.proj"] = torch::randn({vw, embed}) * 0.02;
    s["token_embedding.weight"] = torch::randn({ClipTokenizer::kVocabSize, tw}) * 0.02;
    s["positional_embedding"] = torch::randn({77, tw}) * 0.01;
    for (int i = 0; i < 12; ++i)
      AddBlock(&s, "transformer.resblocks." + std::to_string(i) + ".", tw);
    s["ln_final.weight"] = torch::ones({tw});
    s["ln_final.bias"] = torch::zeros({tw});
    s["text_projection"] = torch::randn({tw, embed}) * 0.02;
    s["logit_scale"] = torch::tensor(std::log(100.0));
    ClipLoadOptions o;
    o.device = BenchDevice();
    if (o.device.is_cuda()) o.dtype = torch::kBFloat16;
    auto m = ClipModel::FromStateDict(s, o, "random ViT-B/32");
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
      std::abort();
    }
    return std::move(m).value();
  }();
  return *model;
}

void BM_ClipPreprocess(benchmark::State& state) {
  std::vector<uint8_t> rgb(1280 * 720 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  for (auto _ : state) benchmark::DoNotOptimize(PreprocessImage(rgb.data(), 1280, 720, 224));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClipPreprocess)->Name("clip_preprocess")->Unit(benchmark::kMillisecond);

void BM_ClipImage(benchmark::State& state) {
  const ClipModel& model = VitB32();
  const int64_t batch = state.range(0);
  const torch::Tensor images = torch::randn({batch, 3, 224, 224}).to(model.device());
  compat::InferenceGuard guard;
  model.EncodeImage(images);  // warm-up
  for (auto _ : state) {
    torch::Tensor f = model.EncodeImage(images);
    if (model.device().is_cuda()) torch::cuda::synchronize();
    benchmark::DoNotOptimize(f);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_ClipImage)
    ->Name("clip_image")
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);

// [batch, length] CLIP tokens: start, varied ids, the end token at `end`, zero padding.
torch::Tensor FakeTokens(int64_t batch, int64_t length, int64_t end) {
  torch::Tensor tokens = torch::zeros({batch, length}, torch::kLong);
  for (int64_t b = 0; b < batch; ++b) {
    tokens[b][0] = ClipTokenizer::kStartToken;
    for (int64_t i = 1; i < end; ++i) tokens[b][i] = 300 + (b * 31 + i * 7) % 40000;
    tokens[b][end] = ClipTokenizer::kEndToken;
  }
  return tokens;
}

// Times `encode(tokens)` after one warm-up call, without autograd, counting the batch's
// captions as items (synchronised with the GPU on CUDA).
template <typename Encode>
void TimeTextEncoder(benchmark::State& state, const ClipModel& model, const torch::Tensor& tokens,
                     Encode encode) {
  compat::InferenceGuard guard;
  encode(tokens);
  for (auto _ : state) {
    torch::Tensor f = encode(tokens);
    if (model.device().is_cuda()) torch::cuda::synchronize();
    benchmark::DoNotOptimize(f);
  }
  state.SetItemsProcessed(state.iterations() * tokens.size(0));
}

void BM_ClipText(benchmark::State& state) {
  const ClipModel& model = VitB32();
  const torch::Tensor tokens = FakeTokens(state.range(0), 77, 20).to(model.device());
  TimeTextEncoder(state, model, tokens,
                  [&](const torch::Tensor& t) { return model.EncodeText(t); });
}
BENCHMARK(BM_ClipText)
    ->Name("clip_text")
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);

void BM_ClipTextTokens(benchmark::State& state) {
  const ClipModel& model = VitB32();
  const int64_t length = state.range(0);
  const torch::Tensor tokens = FakeTokens(8, length, length - 1).to(model.device());
  TimeTextEncoder(state, model, tokens,
                  [&](const torch::Tensor& t) { return model.EncodeTextTokens(t); });
}
BENCHMARK(BM_ClipTextTokens)
    ->Name("clip_text_tokens")
    ->ArgName("len")
    ->Arg(24)
    ->Arg(77)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3.0);

std::string VocabPath() {
  const std::string shared =
      std::string(REEL_SOURCE_DIR) + "/../shared/data/clip/bpe_simple_vocab_16e6.txt.gz";
  if (std::filesystem::exists(shared)) return shared;
  auto installed = InstalledModelPath("clip-vocab");
  return installed.ok() ? *installed : "";
}

// Captions of the kind reel writes and reads: varied words, punctuation, numbers.
std::vector<std::string> Captions() {
  const char* subjects[] = {
      "A woman",          "Two dogs", "An old red tractor", "A crowd of fans",
      "The city skyline", "A chef",   "Snow-covered pines", "A toddler's kite"};
  const char* actions[] = {"walks slowly along",  "runs across",        "is parked beside",
                           "cheers loudly in",    "glows at dusk over", "chops onions in",
                           "sway in the wind on", "flutters high above"};
  const char* places[] = {"a sandy beach", "the wet street", "a muddy farmyard", "the stadium",
                          "the harbour",   "a busy kitchen", "a mountain ridge", "the park"};
  const char* tails[] = {"; the camera pans left.",  ", shot on 35mm film.",
                         " in 4K at 60 fps!",        ", warm golden-hour light.",
                         " \u2014 a slow zoom in.",  ", handheld, with on-screen text \"LIVE\".",
                         "; mostly green and blue.", " (time-lapse, 2019)."};
  std::vector<std::string> out;
  for (int i = 0; i < 512; ++i) {
    out.push_back(std::string(subjects[i % 8]) + " " + actions[(i / 8) % 8] + " " +
                  places[(i / 64) % 8] + tails[(i * 5) % 8]);
  }
  return out;
}

void BM_ClipTokenize(benchmark::State& state) {
  static const std::string path = VocabPath();
  if (path.empty()) {
    state.SkipWithError(
        "no CLIP vocabulary (../shared/data/clip or `reel models fetch clip-vocab`)");
    return;
  }
  static const std::unique_ptr<ClipTokenizer> tokenizer =
      std::move(ClipTokenizer::Load(path)).value();
  // The BPE cache warms up in the first iteration, as in a long captioning run where the
  // same words recur.
  const std::vector<std::string> captions = Captions();
  int64_t n = 0;
  for (auto _ : state) {
    for (const std::string& c : captions)
      benchmark::DoNotOptimize(tokenizer->Tokenize(c, 77, true));
    n += static_cast<int64_t>(captions.size());
  }
  state.SetItemsProcessed(n);
}
BENCHMARK(BM_ClipTokenize)->Name("clip_tokenize")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace reel

BENCHMARK_MAIN();
