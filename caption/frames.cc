#include "caption/frames.h"

#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "db/video_file.h"
#include "util/strings.h"
#include "video/probe.h"
#include "video/sampler.h"

namespace reel {

std::vector<double> EvenPoints(int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back((i + 0.5) / n);
  return out;
}

std::vector<double> OpenSoraPoints(int n) {
  if (n == 1) return {0.5};
  if (n == 2) return {0.25, 0.5};
  if (n == 3) return {0.1, 0.5, 0.9};
  return EvenPoints(n);
}

Result<std::vector<Frame>> SampleClipFrames(const ClipInput& in, const std::vector<double>& points,
                                            int max_side) {
  const ClipRecord& c = in.clip;
  const VideoRecord& v = in.video;
  const int64_t n = c.end_frame - c.start_frame;
  if (n <= 0) return Status::InvalidArgument("clip " + std::to_string(c.id) + " has no frames");
  std::vector<int64_t> targets;
  for (double p : points) {
    const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::floor(p * n)), 0, n - 1);
    int64_t pts = 0;
    if (k < static_cast<int64_t>(in.frame_pts.size())) {
      pts = in.frame_pts[static_cast<size_t>(k)];
    } else {
      if (!v.time_base.valid() || v.time_base <= Rational()) {
        return Status::FailedPrecondition(v.path + ": no time base recorded; rescan the video");
      }
      const Rational rate =
          v.frame_rate.valid() && v.frame_rate > Rational() ? v.frame_rate : Rational(25, 1);
      const Rational t = v.start_time + c.start_time + Rational(k, 1) / rate;
      pts = (t / v.time_base).Round();
    }
    targets.push_back(pts);
  }
  std::sort(targets.begin(), targets.end());
  DecodeOptions options;
  options.format = PixelFormat::kRgb24;
  options.filter = ResizeFilter::kArea;
  options.threads = 1;
  if (max_side > 0) {
    int dw = 0, dh = 0;
    DisplaySize(v.width, v.height, v.sample_aspect_ratio, v.rotation, &dw, &dh);
    if (std::max(dw, dh) > max_side) {
      if (dw >= dh) {
        options.width = max_side;
      } else {
        options.height = max_side;
      }
    }
  }
  if (Status s = CheckUnchangedSinceIngest(v); !s.ok())
    return s.WithContext("clip " + std::to_string(c.id));
  Result<std::vector<Frame>> frames = ReadFramesAtPts(v.path, targets, options);
  if (!frames.ok()) return frames.status().WithContext("clip " + std::to_string(c.id));
  return frames;
}

Result<std::string> EncodeJpeg(const Frame& rgb, int quality) {
  if (rgb.format != PixelFormat::kRgb24 || rgb.width <= 0 || rgb.height <= 0) {
    return Status::InvalidArgument("EncodeJpeg needs an RGB frame");
  }
  cv::Mat rgb_mat(rgb.height, rgb.width, CV_8UC3, const_cast<uint8_t*>(rgb.data.data()),
                  static_cast<size_t>(rgb.stride()));
  cv::Mat bgr;
  std::vector<uchar> buffer;
  const std::vector<int> params = {cv::IMWRITE_JPEG_QUALITY, std::clamp(quality, 1, 100)};
  try {
    cv::cvtColor(rgb_mat, bgr, cv::COLOR_RGB2BGR);
    if (!cv::imencode(".jpg", bgr, buffer, params)) {
      return Status::Internal("JPEG encoding failed");
    }
  } catch (const cv::Exception& e) {  // e.g. a side over JPEG's 65,535 pixels
    return Status::InvalidArgument("cannot encode a " + std::to_string(rgb.width) + "x" +
                                   std::to_string(rgb.height) + " frame as JPEG: " + e.err);
  }
  return std::string(buffer.begin(), buffer.end());
}

std::string JpegDataUri(const std::string& jpeg) {
  return "data:image/jpeg;base64," + Base64Encode(jpeg);
}

}  // namespace reel
