#include "generate/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include <ATen/record_function.h>

#include "generate/checkpoint_files.h"
#include "generate/flow.h"
#include "generate/optim.h"
#include "nets/torch_compat.h"
#include "util/strings.h"

namespace reel::gen {
namespace {

namespace fs = std::filesystem;

uint64_t Mix(uint64_t x) {  // SplitMix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Seed3(uint64_t a, uint64_t b, uint64_t c) {
  return Mix(Mix(Mix(a) ^ b) ^ c);
}

at::Generator MakeGen(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

void CopyParameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard g;
  auto src = from.named_parameters();
  for (auto& p : to.named_parameters()) p.value().copy_(src[p.key()]);
  auto bsrc = from.named_buffers();
  for (auto& b : to.named_buffers()) b.value().copy_(bsrc[b.key()]);
}

}  // namespace

Status TrainOptions::Validate() const {
  if (batch < 1) return OutOfRange("batch", batch, "at least 1");
  if (!(lr > 0) || !std::isfinite(lr)) return OutOfRange("learning rate", lr, "above 0");
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay))
    return OutOfRange("weight decay", weight_decay, "0 or more");
  if (!(beta1 >= 0 && beta1 < 1)) return OutOfRange("AdamW beta1", beta1, "in [0, 1)");
  if (!(beta2 >= 0 && beta2 < 1)) return OutOfRange("AdamW beta2", beta2, "in [0, 1)");
  if (warmup_steps < 0) return OutOfRange("warm-up steps", warmup_steps, "0 or more");
  if (!(grad_clip >= 0) || !std::isfinite(grad_clip))
    return OutOfRange("gradient clipping norm", grad_clip, "0 (none) or more");
  if (!(ema_decay >= 0 && ema_decay < 1)) return OutOfRange("EMA decay", ema_decay, "in [0, 1)");
  if (!(caption_dropout >= 0 && caption_dropout <= 1))
    return OutOfRange("caption dropout", caption_dropout, "in [0, 1]");
  return Status::OK();
}

Json TrainOptions::ToJson() const {
  Json j = Json::MakeObject();
  j["batch"] = batch;
  j["lr"] = lr;
  j["weight_decay"] = weight_decay;
  j["beta1"] = beta1;
  j["beta2"] = beta2;
  j["warmup_steps"] = warmup_steps;
  j["grad_clip"] = grad_clip;
  j["ema_decay"] = ema_decay;
  j["caption_dropout"] = caption_dropout;
  j["seed"] = static_cast<int64_t>(seed);
  return j;
}

TrainOptions TrainOptions::FromJson(const Json& j) {
  TrainOptions o;
  auto num = [&](const char* k, double fallback) {
    const Json* x = j.Find(k);
    return x != nullptr && x->is_number() ? x->as_double() : fallback;
  };
  o.batch = static_cast<int>(num("batch", o.batch));
  o.lr = num("lr", o.lr);
  o.weight_decay = num("weight_decay", o.weight_decay);
  o.beta1 = num("beta1", o.beta1);
  o.beta2 = num("beta2", o.beta2);
  o.warmup_steps = static_cast<int>(num("warmup_steps", o.warmup_steps));
  o.grad_clip = num("grad_clip", o.grad_clip);
  o.ema_decay = num("ema_decay", o.ema_decay);
  o.caption_dropout = num("caption_dropout", o.caption_dropout);
  if (const Json* s = j.Find("seed"); s != nullptr) o.seed = static_cast<uint64_t>(s->as_int());
  return o;
}

int64_t ExampleOrder::Index(uint64_t seed, int64_t dataset_size, int64_t k) {
  const int64_t epoch = k / dataset_size;
  if (seed != seed_ || dataset_size != size_ || epoch != epoch_) {
    perm_.resize(static_cast<size_t>(dataset_size));
    for (int64_t i = 0; i < dataset_size; ++i) perm_[static_cast<size_t>(i)] = i;
    std::mt19937_64 rng(Seed3(seed, 0x5eed, static_cast<uint64_t>(epoch)));
    for (int64_t i = dataset_size - 1; i > 0; --i) {
      std::uniform_int_distribution<int64_t> pick(0, i);
      std::swap(perm_[static_cast<size_t>(i)], perm_[static_cast<size_t>(pick(rng))]);
    }
    seed_ = seed;
    size_ = dataset_size;
    epoch_ = epoch;
  }
  return perm_[static_cast<size_t>(k % dataset_size)];
}

int64_t ExampleIndex(uint64_t seed, int64_t dataset_size, int64_t k) {
  return ExampleOrder().Index(seed, dataset_size, k);
}

Trainer::Trainer(const ModelConfig& config, BpeTokenizer tokenizer, const TrainOptions& options,
                 torch::Device device, std::shared_ptr<const FrozenClipText> frozen)
    : config_(config),
      tokenizer_(std::move(tokenizer)),
      frozen_(std::move(frozen)),
      options_(options),
      device_(device) {
  dit_ = DiffusionTransformer(config.dit, config.vae.latent_channels, config.text.width);
  text_ = TextEncoder(config.text, frozen_);
  ema_dit_ = DiffusionTransformer(config.dit, config.vae.latent_channels, config.text.width);
  ema_text_ = TextEncoder(config.text, frozen_);
  CopyParameters(*dit_, *ema_dit_);
  CopyParameters(*text_, *ema_text_);
  for (auto* m :
       std::vector<torch::nn::Module*>{dit_.get(), text_.get(), ema_dit_.get(), ema_text_.get()}) {
    m->to(device);
  }
  ema_dit_->eval();
  ema_text_->eval();
  for (auto& p : ema_dit_->parameters()) p.set_requires_grad(false);
  for (auto& p : ema_text_->parameters()) p.set_requires_grad(false);
  params_ = Parameters();
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      params_, torch::optim::AdamWOptions(options.lr)
                   .weight_decay(options.weight_decay)
                   .betas(std::make_tuple(options.beta1, options.beta2)));
  // Each EMA tensor beside the trained one it follows. These are the modules' own tensors,
  // not detached aliases: loading a checkpoint later sets new storage into them in place.
  auto pair = [this](torch::nn::Module& model, torch::nn::Module& ema) {
    auto source = model.named_parameters();
    for (auto& p : ema.named_parameters()) {
      ema_params_.push_back(p.value());
      ema_sources_.push_back(source[p.key()]);
    }
  };
  pair(*dit_, *ema_dit_);
  pair(*text_, *ema_text_);
}

std::vector<torch::Tensor> Trainer::Parameters() const {
  std::vector<torch::Tensor> ps = dit_->parameters();
  for (const auto& p : text_->parameters()) ps.push_back(p);
  return ps;
}

Result<std::unique_ptr<Trainer>> Trainer::Create(const ModelConfig& config, BpeTokenizer tokenizer,
                                                 const TrainOptions& options, torch::Device device,
                                                 std::shared_ptr<const FrozenClipText> frozen) {
  REEL_RETURN_IF_ERROR(config.Validate());
  if (config.frozen_text()) {
    if (frozen == nullptr) {
      return Status::InvalidArgument("text encoder " + config.text.encoder +
                                     " is a frozen tower, and none was given");
    }
    if (frozen->width() != config.text.width || config.text.max_tokens > frozen->context_length()) {
      return Status::InvalidArgument(
          "text encoder " + frozen->name() + " has width " + std::to_string(frozen->width()) +
          " and context " + std::to_string(frozen->context_length()) +
          "; the configuration says width " + std::to_string(config.text.width) +
          " and max_tokens " + std::to_string(config.text.max_tokens));
    }
  } else if (frozen != nullptr) {
    return Status::InvalidArgument("a frozen text tower was given, but text.encoder is 'reel'");
  } else if (tokenizer.vocab_size() > config.text.vocab_size) {
    return Status::InvalidArgument("tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                   " ids but the text encoder only " +
                                   std::to_string(config.text.vocab_size));
  }
  if (device.is_cuda() && !compat::CudaAvailable())
    return Status::FailedPrecondition("training on cuda: no CUDA device in this build or machine");
  REEL_RETURN_IF_ERROR(options.Validate());
  // The initial weights come from the seed (libtorch's default generator is seeded at random
  // per process), so every run, and every data-parallel process, starts from the same ones.
  torch::manual_seed(options.seed);
  return std::unique_ptr<Trainer>(
      new Trainer(config, std::move(tokenizer), options, device, std::move(frozen)));
}

Trainer::DrawnBatch Trainer::DrawBatch(const std::vector<LatentExample>& data, int64_t step,
                                       const DataParallel& dp) {
  const int64_t n = static_cast<int64_t>(data.size());
  const int b = options_.batch;
  const int local = b / dp.world;
  const int first = dp.rank * local;
  const double shift = TimestepShiftFor(config_.tokens());
  DrawnBatch batch;
  batch.step = step;
  batch.data = data.data();
  batch.data_size = data.size();
  batch.rank = dp.rank;
  batch.world = dp.world;
  // Each example's draws (caption dropout, t, noise) come from its own generator, so the
  // examples are drawn in parallel on libtorch's intra-op threads, with the same numbers
  // on any thread count.
  std::vector<const LatentExample*> examples(static_cast<size_t>(local));
  for (int i = 0; i < local; ++i) {
    const int64_t k = step * b + first + i;
    examples[static_cast<size_t>(i)] =
        &data[static_cast<size_t>(order_.Index(options_.seed, n, k))];
  }
  std::vector<torch::Tensor> x0s(examples.size()), noises(examples.size()), ts(examples.size());
  std::vector<std::string> captions(examples.size());  // empty where dropped
  std::vector<char> dropped(examples.size());
  at::parallel_for(0, local, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t e = static_cast<size_t>(i);
      const LatentExample& ex = *examples[e];
      at::Generator gen = MakeGen(
          Seed3(options_.seed, static_cast<uint64_t>(step), static_cast<uint64_t>(first + i)));
      const bool drop = at::rand({1}, gen).item<double>() < options_.caption_dropout;
      ts[e] = SampleTrainingTimesteps(1, shift, gen);
      noises[e] = at::randn(ex.latent.sizes(), gen, torch::kFloat);
      x0s[e] = ex.latent.to(torch::kFloat);
      captions[e] = drop ? std::string() : ex.caption;
      dropped[e] = drop;
    }
  });
  // From the host to CUDA through page-locked memory, without waiting for the copy (a copy
  // from pageable memory waits for the work already queued).
  auto to_device = [this](const torch::Tensor& x) {
    if (device_.is_cuda() && x.device().is_cpu())
      return x.pin_memory().to(device_, /*non_blocking=*/true);
    return x.to(device_);
  };
  batch.x0 = to_device(torch::stack(x0s));
  batch.noise = to_device(torch::stack(noises));
  batch.t = to_device(torch::cat(ts));
  // The text encoder's tokens: the frozen tower's CLIP tokens where there is one.
  const torch::Tensor tokens = tokenizer().Batch(captions, config_.text.max_tokens);
  batch.tokens = to_device(tokens);
  if (frozen_ != nullptr) batch.host_tokens = tokens;
  torch::Tensor drop = torch::empty({static_cast<int64_t>(dropped.size())}, torch::kBool);
  std::copy(dropped.begin(), dropped.end(), drop.data_ptr<bool>());
  batch.dropped = to_device(drop);
  return batch;
}

Result<double> Trainer::Step(const std::vector<LatentExample>& data, const DataParallel& dp,
                             bool* stop) {
  REEL_ASSIGN_OR_RETURN(const torch::Tensor loss, LaunchStep(data, dp, stop));
  return LossValue(loss, step_ - 1);
}

Result<double> Trainer::LossValue(const torch::Tensor& loss, int64_t step) {
  try {
    return loss.item<double>();
  } catch (const c10::Error& e) {  // a fault in the step's work on the device shows here
    return Status::Internal("training step " + std::to_string(step) + ": " +
                            FirstLine(e.what_without_backtrace()));
  }
}

Result<torch::Tensor> Trainer::LaunchStep(const std::vector<LatentExample>& data,
                                          const DataParallel& dp, bool* stop) {
  if (!optimizer_loaded_)
    return Status::FailedPrecondition("loaded without its optimiser state; cannot train");
  const int64_t n = static_cast<int64_t>(data.size());
  if (n == 0) return Status::InvalidArgument("no training examples");
  if (dataset_size_ >= 0 && dataset_size_ != n) {
    return Status::FailedPrecondition(
        "the data has " + std::to_string(n) + " examples but this run was trained on " +
        std::to_string(dataset_size_) + "; the order of examples would change");
  }
  const int b = options_.batch;
  if (dp.world < 1 || dp.rank < 0 || dp.rank >= dp.world || b % dp.world != 0) {
    return Status::InvalidArgument("the global batch (" + std::to_string(b) +
                                   ") must divide evenly among " + std::to_string(dp.world) +
                                   " processes");
  }
  if (dp.world > 1 && (dp.comm == nullptr || dp.comm->world() != dp.world))
    return Status::InvalidArgument("data parallel without a process group");
  dataset_size_ = n;
  const int local = b / dp.world;
  try {
    dit_->train();
    text_->train();
    // Learning rate with linear warm-up.
    const double lr = options_.lr * std::min(1.0, static_cast<double>(step_ + 1) /
                                                      std::max(1, options_.warmup_steps));
    for (auto& group : optimizer_->param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    ZeroGrads(params_);

    // The step's phases are named for profilers (RecordFunction user scopes: nothing is
    // recorded unless a profiler or bench_step_ops listens).
    std::optional<at::RecordFunction> phase;
    auto begin_phase = [&phase](const char* name) {
      phase.reset();
      phase.emplace(at::RecordScope::USER_SCOPE);
      if (phase->isActive()) phase->before(name);
    };
    begin_phase("reel::step::data");
    if (!next_.has_value() || next_->step != step_ || next_->data != data.data() ||
        next_->data_size != data.size() || next_->rank != dp.rank || next_->world != dp.world) {
      next_ = DrawBatch(data, step_, dp);
    }
    const DrawnBatch batch = std::move(*next_);
    next_.reset();
    const torch::Tensor& t = batch.t;
    const FlowPair pair = MakeFlowPair(batch.x0, batch.noise, t);

    torch::Tensor loss;
    begin_phase("reel::step::forward");
    {
      // bf16 autocast on CUDA; the loss is taken in float32.
      compat::CudaBf16Autocast amp(device_.is_cuda());
      auto [feats, mask] = text_->forward(batch.tokens, batch.host_tokens);
      auto [null_feats, null_mask] = text_->NullCaption(local, config_.text.max_tokens);
      const torch::Tensor& drop = batch.dropped;
      feats = torch::where(drop.view({-1, 1, 1}), null_feats.to(feats.scalar_type()), feats);
      mask = torch::where(drop.view({-1, 1}), null_mask, mask);
      const torch::Tensor v = dit_->forward(pair.x_t, t, feats, mask);
      loss = (v.to(torch::kFloat) - pair.target).pow(2).mean();
    }
    if (dp.world > 1) {
      // Gradients are averaged over the processes in buckets sent while backward goes on.
      if (reducer_ == nullptr || &reducer_->comm() != dp.comm ||
          reducer_->bucket_bytes() != dp.bucket_bytes) {
        reducer_ = std::make_unique<GradientReducer>(params_, *dp.comm, dp.bucket_bytes);
      }
      reducer_->Begin();
    }
    begin_phase("reel::step::backward");
    loss.backward();
    // The next step's examples are drawn now: on CUDA the GPU is still running the
    // backward just launched, so the draws no longer leave it idle at the next step's
    // start. On the CPU this only moves them (one path for both, which the CPU tests check).
    // A run's last step draws nothing.
    if (steps_planned_ < 0 || step_ + 1 < steps_planned_) {
      begin_phase("reel::step::data");
      next_ = DrawBatch(data, step_ + 1, dp);
    }

    begin_phase("reel::step::optimizer");
    torch::Tensor loss_value = loss.detach();
    if (dp.world > 1) {
      // The loss (for reporting) and the processes' votes to stop travel with the
      // gradients' last all-reduce.
      const torch::Tensor extras = torch::stack(
          {loss.detach().to(torch::kFloat), torch::full({}, stop != nullptr && *stop ? 1.0f : 0.0f,
                                                        loss.options().dtype(torch::kFloat))});
      Result<torch::Tensor> summed = reducer_->Finish(extras);
      if (!summed.ok())
        return summed.status().WithContext("training step " + std::to_string(step_));
      const torch::Tensor sums = summed->cpu();
      loss_value = torch::tensor(sums[0].item<double>() / dp.world, torch::kDouble);
      if (stop != nullptr) *stop = sums[1].item<double>() > 0;
    }
    if (options_.grad_clip > 0) ClipGradNorm(params_, options_.grad_clip);
    AdamWStep(*optimizer_);
    EmaUpdate(ema_params_, ema_sources_, options_.ema_decay);
    phase.reset();
    ++step_;
    return loss_value;
  } catch (const c10::Error& e) {
    return Status::Internal("training step " + std::to_string(step_) + ": " +
                            FirstLine(e.what_without_backtrace()));
  }
}

Status Trainer::BroadcastWeights(Collective& comm, int root) {
  std::vector<torch::Tensor> all;
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{
           dit_.get(), text_.get(), ema_dit_.get(), ema_text_.get()}) {
    for (const auto& p : m->parameters()) all.push_back(p);
    for (const auto& b : m->buffers()) all.push_back(b);
  }
  torch::NoGradGuard g;
  return comm.Broadcast(all, root);
}

Status Trainer::Save(const std::string& dir) const {
  if (!optimizer_loaded_) {
    return Status::FailedPrecondition("loaded without its optimiser state; saving would lose it");
  }
  REEL_ASSIGN_OR_RETURN(const std::string tmp, BeginFolder(dir));
  Json j = Json::MakeObject();
  j["format"] = "reel-generate-checkpoint 1";
  j["model"] = config_.ToJson();
  j["train"] = options_.ToJson();
  j["step"] = step_;
  j["dataset_size"] = dataset_size_;
  if (frozen_ != nullptr) {
    Json fp = Json::MakeArray();
    for (double v : frozen_->Fingerprint()) fp.push_back(v);
    j["text_encoder_fingerprint"] = fp;
  }
  REEL_RETURN_IF_ERROR(WriteJsonFile(tmp, "config.json", j));
  if (frozen_ == nullptr) REEL_RETURN_IF_ERROR(tokenizer_.Save(tmp + "/tokenizer.txt"));
  try {
    auto save_pair = [&](const torch::nn::Module& dit, const torch::nn::Module& text,
                         const std::string& path) {
      torch::serialize::OutputArchive archive, a, b;
      dit.save(a);
      text.save(b);
      archive.write("dit", a);
      archive.write("text", b);
      archive.save_to(path);
    };
    save_pair(*dit_, *text_, tmp + "/model.pt");
    save_pair(*ema_dit_, *ema_text_, tmp + "/ema.pt");
    torch::serialize::OutputArchive opt;
    optimizer_->save(opt);
    opt.save_to(tmp + "/optimizer.pt");
  } catch (const c10::Error& e) {
    return Status::IOError(tmp + ": " + FirstLine(e.what_without_backtrace()));
  }
  return CommitFolder(tmp, dir);
}

namespace {

// A checkpoint folder's config.json, read and parsed into what it saved.
Result<std::pair<Json, SavedTraining>> ReadCheckpointJson(const std::string& dir) {
  if (!fs::is_directory(dir)) return Status::NotFound(dir + ": no checkpoint folder");
  REEL_ASSIGN_OR_RETURN(
      Json j, ReadConfigJson(dir, "reel-generate-checkpoint 1", "reel generate checkpoint"));
  REEL_ASSIGN_OR_RETURN(SavedTraining saved, SavedTrainingFromJson(dir, j));
  saved.step = j.Find("step") != nullptr ? j.Find("step")->as_int() : 0;
  return std::make_pair(std::move(j), std::move(saved));
}

}  // namespace

Result<SavedTraining> ReadTrainerCheckpoint(const std::string& dir) {
  REEL_ASSIGN_OR_RETURN(auto read, ReadCheckpointJson(dir));
  return std::move(read.second);
}

Result<std::unique_ptr<Trainer>> Trainer::Load(const std::string& dir, torch::Device device,
                                               bool optimizer,
                                               const FrozenTextLoader& frozen_text) {
  REEL_ASSIGN_OR_RETURN(const auto read, ReadCheckpointJson(dir));
  const Json* j = &read.first;
  const ModelConfig* config = &read.second.config;
  BpeTokenizer tok;
  std::shared_ptr<const FrozenClipText> frozen;
  if (config->frozen_text()) {
    if (!frozen_text) {
      return Status::FailedPrecondition(dir + ": trained on the frozen text encoder " +
                                        config->text.encoder + ", which was not provided");
    }
    auto f = frozen_text(config->text.encoder, device);
    if (!f.ok()) {
      return f.status().WithContext(dir + " was trained on the frozen text encoder " +
                                    config->text.encoder);
    }
    frozen = std::move(*f);
    if (const Json* fp = j->Find("text_encoder_fingerprint"); fp != nullptr && fp->is_array()) {
      std::vector<double> want;
      for (const Json& v : fp->as_array()) want.push_back(v.as_double());
      if (!FrozenClipText::SameTower(want, frozen->Fingerprint())) {
        return Status::FailedPrecondition(
            dir + " was trained on another " + config->text.encoder +
            " than the one installed (its features differ); install the CLIP weights it was "
            "trained with");
      }
    }
  } else {
    REEL_ASSIGN_OR_RETURN(tok, BpeTokenizer::Load(dir + "/tokenizer.txt"));
  }
  REEL_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> t,
                        Create(*config, std::move(tok), TrainOptions::FromJson(read.second.train),
                               device, std::move(frozen)));
  t->step_ = read.second.step;
  t->dataset_size_ = j->Find("dataset_size") != nullptr ? j->Find("dataset_size")->as_int(-1) : -1;
  auto load_pair = [&](torch::nn::Module& dit, torch::nn::Module& txt,
                       const std::string& path) -> Status {
    if (!fs::exists(path)) return Status::NotFound(path + ": missing from the checkpoint");
    try {
      torch::serialize::InputArchive archive, a, b;
      archive.load_from(path, device);
      archive.read("dit", a);
      archive.read("text", b);
      dit.load(a);
      txt.load(b);
    } catch (const c10::Error& e) {
      return Status::Corruption(path + ": unreadable (" + FirstLine(e.what_without_backtrace()) +
                                ")");
    }
    return Status::OK();
  };
  REEL_RETURN_IF_ERROR(load_pair(*t->dit_, *t->text_, dir + "/model.pt"));
  REEL_RETURN_IF_ERROR(load_pair(*t->ema_dit_, *t->ema_text_, dir + "/ema.pt"));
  if (!optimizer) {
    t->optimizer_loaded_ = false;
    return t;
  }
  const std::string opt = dir + "/optimizer.pt";
  if (!fs::exists(opt)) return Status::NotFound(opt + ": missing from the checkpoint");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(opt, device);
    t->optimizer_->load(archive);
  } catch (const c10::Error& e) {
    return Status::Corruption(opt + ": unreadable (" + FirstLine(e.what_without_backtrace()) + ")");
  }
  return t;
}

torch::Tensor SampleLatents(DiffusionTransformer& dit, TextEncoder& text,
                            const CaptionTokenizer& tokenizer, const ModelConfig& config,
                            const std::vector<std::string>& prompts, const SampleOptions& options,
                            torch::Device device) {
  torch::NoGradGuard no_grad;
  compat::CudaBf16Autocast amp(device.is_cuda());
  dit->eval();
  text->eval();
  const int64_t b = static_cast<int64_t>(prompts.size());
  const int64_t c = config.vae.latent_channels, t = config.latent_frames(),
                h = config.latent_height(), w = config.latent_width();
  const torch::Tensor tokens = tokenizer.Batch(prompts, config.text.max_tokens).to(device);
  auto [feats, mask] = text->forward(tokens);
  auto [null_feats, null_mask] = text->NullCaption(b, config.text.max_tokens);
  const torch::Tensor text2 = torch::cat({feats, null_feats.to(feats.scalar_type())}, 0);
  const torch::Tensor mask2 = torch::cat({mask, null_mask}, 0);
  std::vector<torch::Tensor> noise;
  for (int64_t i = 0; i < b; ++i) {
    at::Generator gen =
        MakeGen(Seed3(options.seed, 0x5a3b1e, static_cast<uint64_t>(options.first_index + i)));
    noise.push_back(at::randn({c, t, h, w}, gen, torch::kFloat));
  }
  const torch::Tensor x1 = torch::stack(noise).to(device);
  auto velocity = [&](const torch::Tensor& x, const torch::Tensor& tt) {
    return dit->forward(x, tt, text2, mask2).to(torch::kFloat);
  };
  return SampleEuler(velocity, x1, options.steps, options.cfg, TimestepShiftFor(config.tokens()));
}

}  // namespace reel::gen
