#include "eval/flow_metrics.h"

#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include "vision/dense_flow.h"

namespace reel {
namespace {

cv::Mat Gray(const Frame& f) {
  cv::Mat rgb(f.height, f.width, CV_8UC3, const_cast<uint8_t*>(f.data.data()),
              static_cast<size_t>(f.stride()));
  cv::Mat gray;
  cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
  return gray;
}

cv::Mat Flow(const cv::Mat& from, const cv::Mat& to) {
  cv::Ptr<cv::DISOpticalFlow> dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
  cv::Mat flow;
  DenseFlow(*dis, from, to, &flow);
  return flow;
}

}  // namespace

DynamicDegree ComputeDynamicDegree(const std::vector<Frame>& frames) {
  DynamicDegree out;
  if (frames.size() < 2) return out;
  out.threshold = 6.0 * std::min(frames[0].width, frames[0].height) / 256.0;
  out.count_needed = static_cast<int>(std::lround(4.0 * static_cast<double>(frames.size()) / 16.0));
  cv::Mat prev = Gray(frames[0]);
  int count = 0;
  for (size_t i = 1; i < frames.size(); ++i) {
    cv::Mat next = Gray(frames[i]);
    const cv::Mat flow = Flow(prev, next);
    std::vector<float> mags;
    mags.reserve(flow.total());
    for (int y = 0; y < flow.rows; ++y) {
      const cv::Vec2f* row = flow.ptr<cv::Vec2f>(y);
      for (int x = 0; x < flow.cols; ++x) mags.push_back(std::hypot(row[x][0], row[x][1]));
    }
    const size_t cut = static_cast<size_t>(static_cast<double>(mags.size()) * 0.05);
    double score = 0;
    if (cut > 0) {
      std::nth_element(mags.begin(), mags.begin() + static_cast<long>(cut), mags.end(),
                       std::greater<float>());
      double sum = 0;
      for (size_t k = 0; k < cut; ++k) sum += mags[k];
      score = sum / static_cast<double>(cut);
    }
    out.pair_scores.push_back(score);
    if (score > out.threshold) ++count;
    prev = next;
  }
  out.dynamic = count >= out.count_needed;
  return out;
}

double ComputeWarpError(const std::vector<Frame>& frames) {
  if (frames.size() < 2) return 0.0;
  double total = 0;
  int pairs = 0;
  cv::Mat prev_gray = Gray(frames[0]);
  for (size_t i = 1; i < frames.size(); ++i) {
    const Frame& a = frames[i - 1];
    const Frame& b = frames[i];
    cv::Mat next_gray = Gray(b);
    const cv::Mat forward = Flow(prev_gray, next_gray);   // t -> t+1, on frame t's grid
    const cv::Mat backward = Flow(next_gray, prev_gray);  // t+1 -> t, on frame t+1's grid
    cv::Mat map(backward.size(), CV_32FC2);
    for (int y = 0; y < map.rows; ++y) {
      const cv::Vec2f* bw = backward.ptr<cv::Vec2f>(y);
      cv::Vec2f* m = map.ptr<cv::Vec2f>(y);
      for (int x = 0; x < map.cols; ++x) m[x] = cv::Vec2f(x + bw[x][0], y + bw[x][1]);
    }
    cv::Mat a_rgb(a.height, a.width, CV_8UC3, const_cast<uint8_t*>(a.data.data()),
                  static_cast<size_t>(a.stride()));
    cv::Mat warped, forward_at;
    cv::remap(a_rgb, warped, map, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    cv::remap(forward, forward_at, map, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    double sum = 0;
    int64_t valid = 0;
    for (int y = 0; y < map.rows; ++y) {
      const cv::Vec2f* bw = backward.ptr<cv::Vec2f>(y);
      const cv::Vec2f* fw = forward_at.ptr<cv::Vec2f>(y);
      const cv::Vec3b* w = warped.ptr<cv::Vec3b>(y);
      const uint8_t* t = b.row(y);
      for (int x = 0; x < map.cols; ++x) {
        const float sx = fw[x][0] + bw[x][0], sy = fw[x][1] + bw[x][1];
        const float lhs = sx * sx + sy * sy;
        const float rhs = 0.01f * (fw[x][0] * fw[x][0] + fw[x][1] * fw[x][1] + bw[x][0] * bw[x][0] +
                                   bw[x][1] * bw[x][1]) +
                          0.5f;
        const float mx = map.ptr<cv::Vec2f>(y)[x][0], my = map.ptr<cv::Vec2f>(y)[x][1];
        const bool inside = mx >= 0 && my >= 0 && mx <= map.cols - 1 && my <= map.rows - 1;
        if (lhs >= rhs || !inside) continue;
        for (int c = 0; c < 3; ++c) {
          const double d = (static_cast<double>(w[x][c]) - t[3 * x + c]) / 255.0;
          sum += d * d;
        }
        ++valid;
      }
    }
    if (valid > 0) {
      total += sum / (3.0 * static_cast<double>(valid));
      ++pairs;
    }
    prev_gray = next_gray;
  }
  return pairs > 0 ? total / pairs : 0.0;
}

}  // namespace reel
