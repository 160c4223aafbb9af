#include "nets/models.h"

#include <cstdlib>
#include <filesystem>

namespace reel {

const std::vector<ModelSpec>& ModelRegistry() {
  // OpenAI's CLIP URLs carry the file's SHA-256 in their path (clip/clip.py, _MODELS).
  static const std::vector<ModelSpec> kModels = {
      {"clip-vit-b-32",
       "clip",
       "ViT-B-32.pt",
       "https://openaipublic.azureedge.net/clip/models/"
       "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
       "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
       354000000,
       "OpenAI CLIP ViT-B/32 (224 px)",
       {"clip-vocab"}},
      {"clip-vit-b-16",
       "clip",
       "ViT-B-16.pt",
       "https://openaipublic.azureedge.net/clip/models/"
       "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
       "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
       351000000,
       "OpenAI CLIP ViT-B/16 (224 px)",
       {"clip-vocab"}},
      {"clip-vit-l-14",
       "clip",
       "ViT-L-14.pt",
       "https://openaipublic.azureedge.net/clip/models/"
       "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
       "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
       933000000,
       "OpenAI CLIP ViT-L/14 (224 px)",
       {"clip-vocab"}},
      {"clip-vit-l-14-336",
       "clip",
       "ViT-L-14-336px.pt",
       "https://openaipublic.azureedge.net/clip/models/"
       "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
       "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
       934000000,
       "OpenAI CLIP ViT-L/14 (336 px)",
       {"clip-vocab"}},
      {"aesthetic-laion",
       "aesthetic",
       "sac+logos+ava1-l14-linearMSE.pth",
       "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
       "sac%2Blogos%2Bava1-l14-linearMSE.pth",
       "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
       3714759,
       "LAION improved aesthetic predictor (MLP on CLIP ViT-L/14 image embeddings)",
       {}},
      // StyleGAN-V's FVD detector (src/metrics/frechet_video_distance.py, detector_url).
      {"i3d",
       "detector",
       "i3d_torchscript.pt",
       "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
       "bec6519f66ea534e953026b4ae2c65553c17bf105611c746d904657e5860a5e2",
       51235320,
       "I3D (Kinetics-400) TorchScript feature detector for FVD, from StyleGAN-V",
       {}},
      {"clip-vocab",
       "vocab",
       "bpe_simple_vocab_16e6.txt.gz",
       "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz",
       "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
       1356917,
       "CLIP's byte-level BPE merges (49,408-token vocabulary)",
       {}},
  };
  return kModels;
}

Result<ModelSpec> FindModelSpec(std::string_view name) {
  for (const ModelSpec& m : ModelRegistry()) {
    if (m.name == name) return m;
  }
  std::string names;
  for (const ModelSpec& m : ModelRegistry()) names += (names.empty() ? "" : ", ") + m.name;
  return Status::NotFound("unknown model '" + std::string(name) + "' (known: " + names + ")");
}

std::string ModelsDir() {
  if (const char* d = std::getenv("REEL_MODELS_DIR"); d != nullptr && *d != '\0') return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    return std::string(x) + "/reel/models";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.cache/reel/models";
}

Result<std::string> InstalledModelPath(std::string_view name) {
  REEL_ASSIGN_OR_RETURN(ModelSpec spec, FindModelSpec(name));
  const std::string path = ModelsDir() + "/" + spec.file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::NotFound("model '" + spec.name + "' (" + spec.description +
                            ") is not installed in " + ModelsDir() + "; run `reel models fetch " +
                            spec.name + "` (needs network), or pass a file path");
  }
  return path;
}

Result<std::string> ResolveModel(std::string_view name_or_path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(std::string(name_or_path), ec))
    return std::string(name_or_path);
  if (FindModelSpec(name_or_path).ok()) return InstalledModelPath(name_or_path);
  return Status::NotFound(
      "'" + std::string(name_or_path) +
      "' is neither a model file nor a known model name (see `reel models list`)");
}

}  // namespace reel
