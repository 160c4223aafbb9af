#include "vision/dense_flow.h"

#include <algorithm>

#include <opencv2/imgproc.hpp>

namespace reel {

void DenseFlow(cv::DISOpticalFlow& dis, const cv::Mat& from, const cv::Mat& to, cv::Mat* flow) {
  if (from.cols >= kFlowMinSide && from.rows >= kFlowMinSide) {
    dis.calc(from, to, *flow);
    return;
  }
  const int bottom = std::max(0, kFlowMinSide - from.rows);
  const int right = std::max(0, kFlowMinSide - from.cols);
  cv::Mat a, b, padded;
  cv::copyMakeBorder(from, a, 0, bottom, 0, right, cv::BORDER_REPLICATE);
  cv::copyMakeBorder(to, b, 0, bottom, 0, right, cv::BORDER_REPLICATE);
  dis.calc(a, b, padded);
  padded(cv::Rect(0, 0, from.cols, from.rows)).copyTo(*flow);
}

}  // namespace reel
