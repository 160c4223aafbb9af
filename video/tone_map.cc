#include "video/tone_map.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "video/simd.h"

namespace reel {
namespace {

// SMPTE ST 2084 (PQ) EOTF constants, and ARIB STD-B67 (HLG) OETF constants.
constexpr float kPqM1 = 0.1593017578125f;
constexpr float kPqM2 = 78.84375f;
constexpr float kPqC1 = 0.8359375f;
constexpr float kPqC2 = 18.8515625f;
constexpr float kPqC3 = 18.6875f;
constexpr float kHlgA = 0.17883277f;
constexpr float kHlgB = 0.28466892f;
constexpr float kHlgC = 0.55991073f;

// tonemap=hable's defaults and Hable's filmic curve constants.
constexpr float kDesaturation = 2.0f;
constexpr float kLumaR = 0.2627f, kLumaG = 0.6780f, kLumaB = 0.0593f;  // BT.2020

float PqEotf(float x) {  // normalised to 10000 cd/m²
  if (!(x > 0.0f)) return 0.0f;
  const float p = std::pow(x, 1.0f / kPqM2);
  const float num = std::max(p - kPqC1, 0.0f);
  const float den = std::max(kPqC2 - kPqC3 * p, FLT_MIN);
  return std::pow(num / den, 1.0f / kPqM1);
}

float HlgEotf(float x) {  // display-referred, normalised to the 1000 cd/m² peak
  x = std::max(x, 0.0f);
  const float scene =
      x <= 0.5f ? x * x * (1.0f / 3.0f) : (std::exp((x - kHlgC) / kHlgA) + kHlgB) / 12.0f;
  return std::pow(scene, 1.2f);
}

REEL_ALWAYS_INLINE float Hable(float x) {
  const float a = 0.15f, b = 0.50f, c = 0.10f, d = 0.20f, e = 0.02f, f = 0.30f;
  return (x * (x * a + b * c) + d * e) / (x * (x * a + b) + d * f) - e / f;
}

void Invert3(const double a[9], double out[9]) {
  const double det = a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) +
                     a[2] * (a[3] * a[7] - a[4] * a[6]);
  out[0] = (a[4] * a[8] - a[5] * a[7]) / det;
  out[1] = (a[2] * a[7] - a[1] * a[8]) / det;
  out[2] = (a[1] * a[5] - a[2] * a[4]) / det;
  out[3] = (a[5] * a[6] - a[3] * a[8]) / det;
  out[4] = (a[0] * a[8] - a[2] * a[6]) / det;
  out[5] = (a[2] * a[3] - a[0] * a[5]) / det;
  out[6] = (a[3] * a[7] - a[4] * a[6]) / det;
  out[7] = (a[1] * a[6] - a[0] * a[7]) / det;
  out[8] = (a[0] * a[4] - a[1] * a[3]) / det;
}

// Linear RGB -> CIE XYZ for primaries (x, y of R, G, B) and the D65 white point.
void RgbToXyz(const double xy[6], double m[9]) {
  const double wx = 0.3127, wy = 0.3290;
  const double white[3] = {wx / wy, 1.0, (1.0 - wx - wy) / wy};
  double p[9];  // columns: XYZ of each primary at Y = 1
  for (int c = 0; c < 3; ++c) {
    const double x = xy[2 * c], y = xy[2 * c + 1];
    p[0 * 3 + c] = x / y;
    p[1 * 3 + c] = 1.0;
    p[2 * 3 + c] = (1.0 - x - y) / y;
  }
  // Scale each column so that R = G = B = 1 gives the white point: solve p * s = white.
  double inv[9];
  Invert3(p, inv);
  double s[3];
  for (int r = 0; r < 3; ++r) {
    s[r] = inv[r * 3] * white[0] + inv[r * 3 + 1] * white[1] + inv[r * 3 + 2] * white[2];
  }
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) m[r * 3 + c] = p[r * 3 + c] * s[c];
  }
}

// Pixels mapped at a time: the block's floats stay in L1.
constexpr int kBlock = 256;

// Y'CbCr codes (16-bit samples) to R'G'B' in floating point, unclipped.
struct YuvToRgb {
  float code_unit, y0, y_scale, c0, c_scale, cr_r, cb_g, cr_g, cb_b;
};

// The vectorisable steps, built for AVX2 and the baseline: Y'CbCr to R'G'B' ...
REEL_SIMD_CLONES void DecodeBlock(const YuvToRgb& k, const uint16_t* __restrict y,
                                  const uint16_t* __restrict cb, const uint16_t* __restrict cr,
                                  int n, float* __restrict r, float* __restrict g,
                                  float* __restrict b) {
  for (int i = 0; i < n; ++i) {
    const float luma = (static_cast<float>(y[i]) * k.code_unit - k.y0) * k.y_scale;
    const float u = (static_cast<float>(cb[i]) * k.code_unit - k.c0) * k.c_scale;
    const float v = (static_cast<float>(cr[i]) * k.code_unit - k.c0) * k.c_scale;
    r[i] = luma + k.cr_r * v;
    g[i] = luma - k.cb_g * u - k.cr_g * v;
    b[i] = luma + k.cb_b * u;
  }
}

// ... and, in linear light, BT.2020 to BT.709 primaries, desaturation and the hable curve
// (steps 2 and 3), in place.
REEL_SIMD_CLONES void MapLinearBlock(const float* __restrict m, float hable_peak, int n,
                                     float* __restrict r, float* __restrict g,
                                     float* __restrict b) {
  for (int i = 0; i < n; ++i) {
    float rr = m[0] * r[i] + m[1] * g[i] + m[2] * b[i];
    float gg = m[3] * r[i] + m[4] * g[i] + m[5] * b[i];
    float bb = m[6] * r[i] + m[7] * g[i] + m[8] * b[i];
    const float luma = kLumaR * rr + kLumaG * gg + kLumaB * bb;
    const float overbright = std::max(luma - kDesaturation, 1e-6f) / std::max(luma, 1e-6f);
    rr = rr * (1 - overbright) + luma * overbright;
    gg = gg * (1 - overbright) + luma * overbright;
    bb = bb * (1 - overbright) + luma * overbright;
    const float sig = std::max(std::max(std::max(rr, gg), bb), 1e-6f);
    const float scale = Hable(sig) / hable_peak / sig;
    r[i] = rr * scale;
    g[i] = gg * scale;
    b[i] = bb * scale;
  }
}

}  // namespace

ToneMapper::ToneMapper(HdrTransfer transfer) : transfer_(transfer), to_linear_(2 * 65535 + 1) {
  for (size_t i = 0; i < to_linear_.size(); ++i) {
    to_linear_[i] = ToLinear(static_cast<float>(i) / 65535.0f);
  }
  for (int k = 1; k <= 255; ++k) {
    code_start_[k - 1] = std::pow((static_cast<float>(k) - 0.5f) / 255.0f, 2.4f);
  }
  code_start_[255] = INFINITY;  // no code 256
  code_at_.resize(65537);
  for (size_t i = 0; i < code_at_.size(); ++i) {
    const float v = static_cast<float>(i) / 65536.0f;
    code_at_[i] =
        static_cast<uint8_t>(std::upper_bound(code_start_, code_start_ + 255, v) - code_start_);
  }
  const double bt2020[6] = {0.708, 0.292, 0.170, 0.797, 0.131, 0.046};
  const double bt709[6] = {0.640, 0.330, 0.300, 0.600, 0.150, 0.060};
  double from[9], to[9], to_inv[9];
  RgbToXyz(bt2020, from);
  RgbToXyz(bt709, to);
  Invert3(to, to_inv);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      double v = 0;
      for (int k = 0; k < 3; ++k) v += to_inv[r * 3 + k] * from[k * 3 + c];
      primaries_[r * 3 + c] = static_cast<float>(v);
    }
  }
}

double ToneMapper::SignalPeak(double max_cll, double mastering_max_luminance) {
  if (max_cll > 0) return max_cll / 100.0;
  if (mastering_max_luminance > 0) return mastering_max_luminance / 100.0;
  return 10.0;
}

float ToneMapper::ToLinear(float value) const {
  // zscale's npl=100: 1.0 is 100 cd/m², PQ's range 10000 cd/m², HLG's display 1000.
  return transfer_ == HdrTransfer::kPq ? PqEotf(value) * 100.0f : HlgEotf(value) * 10.0f;
}

void ToneMapper::Map(const uint16_t* y, const uint16_t* cb, const uint16_t* cr, int64_t pixels,
                     const YuvCoding& coding, double peak, PixelFormat format, uint8_t* out) const {
  // Codes of `bit_depth` bits sit in the top bits of the 16-bit samples.
  const float code_unit = 1.0f / static_cast<float>(1 << (16 - coding.bit_depth));
  const float unit = static_cast<float>(1 << (coding.bit_depth - 8));
  const float y0 = coding.full_range ? 0.0f : 16.0f * unit;
  const float y_range = coding.full_range ? 255.0f * unit : 219.0f * unit;
  const float c0 = 128.0f * unit;
  const float c_range = coding.full_range ? 255.0f * unit : 224.0f * unit;
  const float y_scale = 1.0f / y_range, c_scale = 1.0f / c_range;
  const float kr = coding.kr, kb = coding.kb, kg = 1.0f - kr - kb;
  const float cr_r = 2.0f * (1.0f - kr), cb_b = 2.0f * (1.0f - kb);
  const float cb_g = cb_b * kb / kg, cr_g = cr_r * kr / kg;
  auto linear = [&](float v) {
    if (!(v > 0.0f)) return 0.0f;  // both transfers map negative values to 0
    if (v <= 2.0f) return to_linear_[static_cast<size_t>(v * 65535.0f + 0.5f)];
    return ToLinear(v);
  };
  auto code = [this](float v) -> uint8_t {
    if (!(v > 0.0f)) return 0;
    if (v >= 1.0f) return 255;
    int c = code_at_[static_cast<size_t>(v * 65536.0f)];
    while (v >= code_start_[c]) ++c;
    return static_cast<uint8_t>(c);
  };
  const float hable_peak = Hable(static_cast<float>(peak));
  const YuvToRgb k{code_unit, y0, y_scale, c0, c_scale, cr_r, cb_g, cr_g, cb_b};
  float r[kBlock], g[kBlock], b[kBlock];
  for (int64_t start = 0; start < pixels; start += kBlock) {
    const int n = static_cast<int>(std::min<int64_t>(kBlock, pixels - start));
    DecodeBlock(k, y + start, cb + start, cr + start, n, r, g, b);
    for (int i = 0; i < n; ++i) {  // step 1, by table
      r[i] = linear(r[i]);
      g[i] = linear(g[i]);
      b[i] = linear(b[i]);
    }
    MapLinearBlock(primaries_, hable_peak, n, r, g, b);
    for (int i = 0; i < n; ++i) {  // step 4, by table
      switch (format) {
        case PixelFormat::kRgb24:
          *out++ = code(r[i]);
          *out++ = code(g[i]);
          *out++ = code(b[i]);
          break;
        case PixelFormat::kBgr24:
          *out++ = code(b[i]);
          *out++ = code(g[i]);
          *out++ = code(r[i]);
          break;
        case PixelFormat::kGray8:  // BT.709 luma of the 8-bit R'G'B'
          *out++ = static_cast<uint8_t>(
              std::lround(0.2126f * code(r[i]) + 0.7152f * code(g[i]) + 0.0722f * code(b[i])));
          break;
      }
    }
  }
}

}  // namespace reel
