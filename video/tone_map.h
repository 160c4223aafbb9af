// Tone mapping of high-dynamic-range video (PQ, HLG) to SDR, numerically as ffmpeg's
//   zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable,zscale=t=bt709
// chain (zimg 3.0, FFmpeg 5.1's tonemap filter at its defaults: desat 2), the conversion
// ingest recommends and that HDR datasets are usually made SDR with.
//
// Per pixel, from Y'CbCr (the frame's matrix, BT.2020 in practice) with BT.2020 primaries:
//   0. to R'G'B' in floating point, unclipped, as zimg does (a colour the encoder's matrix
//      put outside the R'G'B' cube keeps its value above 1 or below 0);
//   1. to linear light, 1.0 = 100 cd/m²: PQ by the ST 2084 EOTF (x 100); HLG by zimg's
//      display-referred EOTF (inverse OETF, then a per-channel 1.2 power, x 10);
//   2. BT.2020 to BT.709 primaries (3x3 matrix in linear light);
//   3. tonemap=hable: desaturate above 2.0 (with BT.2020 luma weights, as the filter
//      takes them from the frame's matrix), then scale R, G, B by hable(s)/hable(peak)/s
//      with s the largest of them;
//   4. to BT.709 video gamma as zimg writes it (the BT.1886 inverse EOTF: x^(1/2.4)),
//      rounded to 8 bits.
//
// Thread-safety: a ToneMapper is immutable after construction; Map() may be called from
// several threads.

#ifndef REEL_VIDEO_TONE_MAP_H_
#define REEL_VIDEO_TONE_MAP_H_

#include <cstdint>
#include <vector>

#include "video/frame.h"

namespace reel {

enum class HdrTransfer { kPq, kHlg };

class ToneMapper {
 public:
  explicit ToneMapper(HdrTransfer transfer);

  HdrTransfer transfer() const { return transfer_; }

  // The signal peak tonemap assumes, in units of 100 cd/m², as FFmpeg 5.1 determines it
  // after zscale: the content light level's MaxCLL, else the mastering display's maximum
  // luminance, else 10 (zscale has made the transfer linear, and tonemap's default for a
  // non-PQ transfer is 1000 cd/m²). Arguments in cd/m²; 0 = absent.
  static double SignalPeak(double max_cll, double mastering_max_luminance);

  // How the Y'CbCr samples given to Map() are coded: 16-bit samples holding `bit_depth`
  // bit codes shifted up (as swscale widens them), limited or full range, and the matrix's
  // luma weights of red and blue.
  struct YuvCoding {
    int bit_depth = 10;
    bool full_range = false;
    float kr = 0.2627f;  // BT.2020
    float kb = 0.0593f;
  };

  // Maps `pixels` Y'CbCr samples (three 16-bit planes, 4:4:4) to `format` (8-bit R'G'B'
  // or BT.709 luma, full range) at `out`. `peak` as SignalPeak().
  void Map(const uint16_t* y, const uint16_t* cb, const uint16_t* cr, int64_t pixels,
           const YuvCoding& coding, double peak, PixelFormat format, uint8_t* out) const;

 private:
  // Step 1 for one channel value.
  float ToLinear(float value) const;

  HdrTransfer transfer_;
  // Step 1 at 2 x 65535 + 1 points over [0, 2] (R'G'B' above 1 comes from colours the
  // encoder's matrix put outside the cube).
  std::vector<float> to_linear_;
  // Step 4 without a power: the linear value at which each 8-bit code k (1..255)
  // starts, ((k - 0.5) / 255)^2.4, and the code at each of 65536 + 1 points over [0, 1];
  // a value's code is its point's, moved up past any code starting before the value.
  float code_start_[256];
  std::vector<uint8_t> code_at_;
  float primaries_[9];            // step 2, row-major
};

}  // namespace reel

#endif  // REEL_VIDEO_TONE_MAP_H_
