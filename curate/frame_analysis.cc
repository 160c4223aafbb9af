#include "curate/frame_analysis.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include "vision/dense_flow.h"

namespace reel {

const char* const kColorNames[kColorBins] = {"black", "white",  "gray",   "red",
                                             "orange", "yellow", "green",  "cyan",
                                             "blue",  "purple", "pink",   "brown"};

namespace {

// PySceneDetect's _mean_pixel_distance: sum |a - b| / pixels.
double MeanPixelDistance(const cv::Mat& a, const cv::Mat& b) {
  return cv::norm(a, b, cv::NORM_L1) / static_cast<double>(a.total());
}

// PySceneDetect's _estimated_kernel_size.
int EstimatedKernelSize(int width, int height) {
  int size = 4 + static_cast<int>(std::lround(std::sqrt(static_cast<double>(width) * height) / 192));
  if (size % 2 == 0) ++size;
  return size;
}

// numpy.median of an 8-bit image (the mean of the two middle values for even counts).
double Median8u(const cv::Mat& img) {
  std::array<int64_t, 256> hist{};
  for (int y = 0; y < img.rows; ++y) {
    const uint8_t* p = img.ptr<uint8_t>(y);
    for (int x = 0; x < img.cols; ++x) ++hist[p[x]];
  }
  const int64_t n = static_cast<int64_t>(img.total());
  auto nth = [&](int64_t k) {  // value of the k-th smallest (0-based)
    int64_t seen = 0;
    for (int v = 0; v < 256; ++v) {
      seen += hist[v];
      if (seen > k) return v;
    }
    return 255;
  };
  if (n % 2 == 1) return nth(n / 2);
  return 0.5 * (nth(n / 2 - 1) + nth(n / 2));
}

// DCT hash bits of `gray` (PySceneDetect HashDetector.hash_frame): resize to
// (size*lowpass)^2 with INTER_AREA, scale by the maximum, DCT, keep the top-left
// size x size, threshold at the median.
std::vector<uint8_t> DctHashBits(const cv::Mat& gray, int size, int lowpass, cv::Mat* dct_out) {
  const int im = size * lowpass;
  cv::Mat small;
  cv::resize(gray, small, cv::Size(im, im), 0, 0, cv::INTER_AREA);
  double max_value = 0;
  cv::minMaxLoc(small, nullptr, &max_value);
  if (max_value == 0) max_value = 1;
  cv::Mat f;
  small.convertTo(f, CV_32F, 1.0 / max_value);
  cv::Mat dct;
  cv::dct(f, dct);
  if (dct_out != nullptr) *dct_out = dct;
  std::vector<float> low;
  low.reserve(static_cast<size_t>(size) * size);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) low.push_back(dct.at<float>(y, x));
  }
  std::vector<float> sorted = low;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const float median = (n % 2 == 1) ? sorted[n / 2] : 0.5f * (sorted[n / 2 - 1] + sorted[n / 2]);
  std::vector<uint8_t> bits(n);
  for (size_t i = 0; i < n; ++i) bits[i] = low[i] > median ? 1 : 0;
  return bits;
}

// 64-bit perceptual hash: the top-left 8x8 of a 32x32 DCT against its median.
uint64_t PerceptualHash(const cv::Mat& dct32) {
  float v[64];
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) v[8 * y + x] = dct32.at<float>(y, x);
  }
  float sorted[64];
  std::copy(v, v + 64, sorted);
  std::sort(sorted, sorted + 64);
  const float median = 0.5f * (sorted[31] + sorted[32]);
  uint64_t h = 0;
  for (int i = 0; i < 64; ++i) {
    if (v[i] > median) h |= (uint64_t{1} << (63 - i));
  }
  return h;
}

// Hasler and Suesstrunk's colourfulness: sigma_rgyb + 0.3 * mu_rgyb.
double Colorfulness(const cv::Mat& bgr) {
  double s_rg = 0, s_yb = 0, ss_rg = 0, ss_yb = 0;
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* p = bgr.ptr<uint8_t>(y);
    for (int x = 0; x < bgr.cols; ++x, p += 3) {
      const double b = p[0], g = p[1], r = p[2];
      const double rg = r - g;
      const double yb = 0.5 * (r + g) - b;
      s_rg += rg;
      s_yb += yb;
      ss_rg += rg * rg;
      ss_yb += yb * yb;
    }
  }
  const double n = static_cast<double>(bgr.total());
  const double m_rg = s_rg / n, m_yb = s_yb / n;
  const double var_rg = std::max(0.0, ss_rg / n - m_rg * m_rg);
  const double var_yb = std::max(0.0, ss_yb / n - m_yb * m_yb);
  return std::sqrt(var_rg + var_yb) + 0.3 * std::sqrt(m_rg * m_rg + m_yb * m_yb);
}

// Basic colour term of an OpenCV 8-bit HSV pixel (H in [0, 180)).
int ColorBin(int h, int s, int v) {
  if (v < 46) return 0;                   // black
  if (s < 40) return v > 200 ? 1 : 2;     // white, gray
  if (h < 8 || h >= 170) return v < 120 && s > 80 ? 11 : 3;  // brown (dark red) or red
  if (h < 20) return v < 150 ? 11 : 4;    // brown or orange
  if (h < 34) return 5;                   // yellow
  if (h < 80) return 6;                   // green
  if (h < 99) return 7;                   // cyan
  if (h < 130) return 8;                  // blue
  if (h < 150) return 9;                  // purple
  return 10;                              // pink
}

// Fraction of the frame covered by text-like regions: dense, horizontally elongated
// clusters of strong edges (overlaid titles and subtitles). A weight-free heuristic.
double TextArea(const cv::Mat& gray) {
  cv::Mat grad, bw, joined;
  static const cv::Mat kEllipse = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(3, 3));
  cv::morphologyEx(gray, grad, cv::MORPH_GRADIENT, kEllipse);
  cv::threshold(grad, bw, 80, 255, cv::THRESH_BINARY);
  const int join = std::max(3, gray.cols / 40);
  cv::morphologyEx(bw, joined, cv::MORPH_CLOSE,
                   cv::getStructuringElement(cv::MORPH_RECT, cv::Size(join, 1)));
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(joined, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  double area = 0;
  for (const auto& c : contours) {
    const cv::Rect r = cv::boundingRect(c);
    if (r.height < 5 || r.height > gray.rows / 4) continue;
    if (r.width < 2 * r.height || r.width < gray.cols / 20) continue;
    const double fill = cv::countNonZero(bw(r)) / static_cast<double>(r.area());
    if (fill < 0.2 || fill > 0.9) continue;
    area += r.area();
  }
  return std::min(1.0, area / static_cast<double>(gray.total()));
}

struct MotionFit {
  double tx = 0, ty = 0, zoom = 0, rot = 0, residual = 0, magnitude = 0;
};

// Least-squares similarity motion u = tx + a x - b y, v = ty + b x + a y (x, y centred),
// refitted once without the points the first fit explains worst (moving objects).
MotionFit FitGlobalMotion(const cv::Mat& flow) {
  constexpr int kStep = 4;
  const double cx = (flow.cols - 1) / 2.0, cy = (flow.rows - 1) / 2.0;
  struct Sample {
    double x, y, u, v;
  };
  std::vector<Sample> samples;
  samples.reserve(static_cast<size_t>(flow.rows / kStep + 1) * (flow.cols / kStep + 1));
  double mag = 0;
  for (int y = kStep / 2; y < flow.rows; y += kStep) {
    const cv::Point2f* row = flow.ptr<cv::Point2f>(y);
    for (int x = kStep / 2; x < flow.cols; x += kStep) {
      const cv::Point2f f = row[x];
      samples.push_back({x - cx, y - cy, f.x, f.y});
      mag += std::hypot(f.x, f.y);
    }
  }
  MotionFit fit;
  if (samples.empty()) return fit;
  fit.magnitude = mag / samples.size();
  auto solve = [](const std::vector<const Sample*>& pts, MotionFit* out) {
    // Normal equations of the 4-parameter model.
    cv::Matx44d A = cv::Matx44d::zeros();
    cv::Vec4d b(0, 0, 0, 0);
    for (const Sample* s : pts) {
      const cv::Vec4d ru(1, 0, s->x, -s->y), rv(0, 1, s->y, s->x);
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) A(i, j) += ru[i] * ru[j] + rv[i] * rv[j];
        b[i] += ru[i] * s->u + rv[i] * s->v;
      }
    }
    cv::Vec4d p;
    if (!cv::solve(A, b, p, cv::DECOMP_CHOLESKY)) return false;
    out->tx = p[0];
    out->ty = p[1];
    out->zoom = p[2];
    out->rot = p[3];
    return true;
  };
  auto residual = [](const MotionFit& m, const Sample& s) {
    const double u = m.tx + m.zoom * s.x - m.rot * s.y;
    const double v = m.ty + m.rot * s.x + m.zoom * s.y;
    return std::hypot(s.u - u, s.v - v);
  };
  std::vector<const Sample*> all;
  all.reserve(samples.size());
  for (const auto& s : samples) all.push_back(&s);
  if (!solve(all, &fit)) return fit;
  std::vector<double> res;
  res.reserve(samples.size());
  for (const auto& s : samples) res.push_back(residual(fit, s));
  std::vector<double> sorted = res;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double cutoff = std::max(0.25, 3.0 * sorted[sorted.size() / 2]);
  std::vector<const Sample*> inliers;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (res[i] <= cutoff) inliers.push_back(&samples[i]);
  }
  if (inliers.size() >= 8 && inliers.size() < samples.size()) solve(inliers, &fit);
  double total = 0;
  for (const auto& s : samples) total += residual(fit, s);
  fit.residual = total / samples.size();
  return fit;
}

}  // namespace

struct FrameAnalyzer::Impl {
  AnalysisOptions options;
  FrameSeries series;
  int64_t index = 0;
  cv::Mat hsv, gray, edges;
  std::vector<cv::Mat> hsv_planes{3}, prev_planes;
  std::deque<std::vector<cv::Mat>> history;  // HSV planes of the last long_range frames
  cv::Mat prev_edges, prev_gray, prev_hist, flow;
  std::vector<uint8_t> prev_hash;
  cv::Mat edge_kernel;
  cv::Ptr<cv::DISOpticalFlow> dis;
  float last_text = 0;
  std::array<float, kColorBins> last_colors{};

  Status Add(const Frame& frame);  // FrameAnalyzer::Add without its exception boundary
};

FrameAnalyzer::FrameAnalyzer(const AnalysisOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->options.text_every = std::max(1, options.text_every);
  impl_->options.color_every = std::max(1, options.color_every);
  impl_->options.long_range = std::max(1, options.long_range);
}

FrameAnalyzer::~FrameAnalyzer() = default;

const FrameSeries& FrameAnalyzer::series() const { return impl_->series; }
FrameSeries FrameAnalyzer::TakeSeries() { return std::move(impl_->series); }

Status FrameAnalyzer::Add(const Frame& frame) {
  // OpenCV reports what it cannot do by throwing; it is this frame's failure (the video's,
  // for the scan), not the process's.
  try {
    return impl_->Add(frame);
  } catch (const cv::Exception& e) {
    return Status::Internal("frame " + std::to_string(impl_->index) + " (" +
                            std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                            "): OpenCV: " + e.err + " in " + e.func);
  }
}

Status FrameAnalyzer::Impl::Add(const Frame& frame) {
  Impl& d = *this;
  FrameSeries& s = d.series;
  if (frame.format != PixelFormat::kBgr24) {
    return Status::InvalidArgument("frame analysis needs BGR frames");
  }
  if (d.index == 0) {
    s.width = frame.width;
    s.height = frame.height;
  } else if (frame.width != s.width || frame.height != s.height) {
    return Status::InvalidArgument("frame " + std::to_string(frame.index) + " is " +
                                   std::to_string(frame.width) + "x" +
                                   std::to_string(frame.height) + ", earlier frames were " +
                                   std::to_string(s.width) + "x" + std::to_string(s.height));
  }
  const cv::Mat bgr(frame.height, frame.width, CV_8UC3, const_cast<uint8_t*>(frame.data.data()));
  const AnalysisOptions& o = d.options;
  const bool first = d.index == 0;
  s.pts.push_back(frame.pts);

  if (o.groups & kAnalyzeShots) {
    // ContentDetector components.
    cv::cvtColor(bgr, d.hsv, cv::COLOR_BGR2HSV);
    cv::split(d.hsv, d.hsv_planes);
    if (first) {
      s.delta_hue.push_back(0);
      s.delta_sat.push_back(0);
      s.delta_lum.push_back(0);
    } else {
      s.delta_hue.push_back(static_cast<float>(MeanPixelDistance(d.hsv_planes[0], d.prev_planes[0])));
      s.delta_sat.push_back(static_cast<float>(MeanPixelDistance(d.hsv_planes[1], d.prev_planes[1])));
      s.delta_lum.push_back(static_cast<float>(MeanPixelDistance(d.hsv_planes[2], d.prev_planes[2])));
    }
    if (o.edges) {
      if (d.edge_kernel.empty()) {
        const int k = o.edge_kernel >= 3 ? o.edge_kernel : EstimatedKernelSize(frame.width, frame.height);
        d.edge_kernel = cv::Mat::ones(k, k, CV_8U);
      }
      const double median = Median8u(d.hsv_planes[2]);
      const double sigma = 1.0 / 3.0;
      const int low = static_cast<int>(std::max(0.0, (1.0 - sigma) * median));
      const int high = static_cast<int>(std::min(255.0, (1.0 + sigma) * median));
      cv::Mat canny;
      cv::Canny(d.hsv_planes[2], canny, low, high);
      cv::dilate(canny, d.edges, d.edge_kernel);
      s.delta_edges.push_back(first ? 0.0f
                                    : static_cast<float>(MeanPixelDistance(d.edges, d.prev_edges)));
      d.edges.copyTo(d.prev_edges);
    }
    // Content distance to the frame long_range back (or the first frame early on).
    if (first) {
      s.delta_long.push_back(0);
    } else {
      const std::vector<cv::Mat>& back = d.history.front();
      const double dl = (MeanPixelDistance(d.hsv_planes[0], back[0]) +
                         MeanPixelDistance(d.hsv_planes[1], back[1]) +
                         MeanPixelDistance(d.hsv_planes[2], back[2])) /
                        3.0;
      s.delta_long.push_back(static_cast<float>(dl));
    }
    if (static_cast<int>(d.history.size()) == o.long_range) d.history.pop_front();
    d.history.push_back({d.hsv_planes[0].clone(), d.hsv_planes[1].clone(), d.hsv_planes[2].clone()});
    d.prev_planes = d.history.back();

    // ThresholdDetector: numpy.mean over every channel value.
    const cv::Scalar m = cv::mean(bgr);
    s.mean_bgr.push_back(static_cast<float>((m[0] + m[1] + m[2]) / 3.0));

    // HistogramDetector (luma histogram, L2-normalised, correlation with the previous).
    cv::cvtColor(bgr, d.gray, cv::COLOR_BGR2GRAY);
    {
      const int channels[] = {0};
      const int hist_size[] = {o.hist_bins};
      const float range[] = {0, 256};
      const float* ranges[] = {range};
      cv::Mat hist;
      cv::calcHist(&d.gray, 1, channels, cv::Mat(), hist, 1, hist_size, ranges);
      cv::normalize(hist, hist);
      s.hist_corr.push_back(first ? 1.0f
                                  : static_cast<float>(cv::compareHist(d.prev_hist, hist, cv::HISTCMP_CORREL)));
      d.prev_hist = hist;
    }

    // HashDetector and the perceptual hash.
    {
      cv::Mat dct;
      std::vector<uint8_t> bits = DctHashBits(d.gray, o.hash_size, o.hash_lowpass, &dct);
      if (first) {
        s.hash_dist.push_back(0);
      } else {
        int diff = 0;
        for (size_t i = 0; i < bits.size(); ++i) diff += bits[i] != d.prev_hash[i];
        s.hash_dist.push_back(static_cast<float>(diff) / static_cast<float>(bits.size()));
      }
      d.prev_hash = std::move(bits);
      if (o.hash_size * o.hash_lowpass != 32) {
        cv::Mat small, f;
        cv::resize(d.gray, small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
        small.convertTo(f, CV_32F);
        cv::dct(f, dct);
      }
      s.phash.push_back(static_cast<int64_t>(PerceptualHash(dct)));
    }

    // Brightness and contrast.
    cv::Scalar mean, stddev;
    cv::meanStdDev(d.gray, mean, stddev);
    s.luma_mean.push_back(static_cast<float>(mean[0]));
    s.luma_std.push_back(static_cast<float>(stddev[0]));
  }

  const bool need_gray = o.groups & (kAnalyzeMotion | kAnalyzeSharpness | kAnalyzeText);
  if (need_gray && !(o.groups & kAnalyzeShots)) cv::cvtColor(bgr, d.gray, cv::COLOR_BGR2GRAY);
  if (o.groups & kAnalyzeSharpness) {
    cv::Mat lap;
    cv::Laplacian(d.gray, lap, CV_16S);
    cv::Scalar lm, ls;
    cv::meanStdDev(lap, lm, ls);
    s.sharpness.push_back(static_cast<float>(ls[0] * ls[0]));
  }
  if (o.groups & kAnalyzeMotion) {
    MotionFit fit;
    if (!first) {
      if (!d.dis) d.dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_ULTRAFAST);
      DenseFlow(*d.dis, d.prev_gray, d.gray, &d.flow);
      fit = FitGlobalMotion(d.flow);
    }
    s.flow_mag.push_back(static_cast<float>(fit.magnitude));
    s.cam_tx.push_back(static_cast<float>(fit.tx));
    s.cam_ty.push_back(static_cast<float>(fit.ty));
    s.cam_zoom.push_back(static_cast<float>(fit.zoom));
    s.cam_rot.push_back(static_cast<float>(fit.rot));
    s.cam_residual.push_back(static_cast<float>(fit.residual));
    d.gray.copyTo(d.prev_gray);
  }
  if (o.groups & kAnalyzeText) {
    if (d.index % o.text_every == 0) d.last_text = static_cast<float>(TextArea(d.gray));
    s.text_area.push_back(d.last_text);
  }
  if (o.groups & kAnalyzeColor) {
    s.colorfulness.push_back(static_cast<float>(Colorfulness(bgr)));
    if (d.index % o.color_every == 0) {
      if (!(o.groups & kAnalyzeShots)) cv::cvtColor(bgr, d.hsv, cv::COLOR_BGR2HSV);
      std::array<int64_t, kColorBins> counts{};
      int64_t n = 0;
      for (int y = 0; y < d.hsv.rows; y += 2) {
        const uint8_t* p = d.hsv.ptr<uint8_t>(y);
        for (int x = 0; x < d.hsv.cols; x += 2, ++n) {
          ++counts[ColorBin(p[3 * x], p[3 * x + 1], p[3 * x + 2])];
        }
      }
      for (int k = 0; k < kColorBins; ++k) {
        d.last_colors[k] = n > 0 ? static_cast<float>(counts[k]) / n : 0.0f;
      }
    }
    s.colors.insert(s.colors.end(), d.last_colors.begin(), d.last_colors.end());
  }
  ++d.index;
  return Status::OK();
}

Result<unsigned> ParseSignalGroups(std::string_view text) {
  if (text == "all") return kAnalyzeAll;
  if (text == "none") return kAnalyzeShots;
  unsigned groups = kAnalyzeShots;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string_view name =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    if (name == "motion") {
      groups |= kAnalyzeMotion;
    } else if (name == "sharpness") {
      groups |= kAnalyzeSharpness;
    } else if (name == "color") {
      groups |= kAnalyzeColor;
    } else if (name == "text") {
      groups |= kAnalyzeText;
    } else {
      return Status::InvalidArgument("unknown signal '" + std::string(name) +
                                     "' (expected all, none, or motion, sharpness, color, text)");
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return groups;
}

// ---------------------------------------------------------------- storage

namespace {

template <typename T>
struct SeriesField {
  const char* name;
  std::vector<T> FrameSeries::*member;
  int width;
};

const SeriesField<float> kFloatFields[] = {
    {"delta_hue", &FrameSeries::delta_hue, 1},   {"delta_sat", &FrameSeries::delta_sat, 1},
    {"delta_lum", &FrameSeries::delta_lum, 1},   {"delta_edges", &FrameSeries::delta_edges, 1},
    {"delta_long", &FrameSeries::delta_long, 1}, {"mean_bgr", &FrameSeries::mean_bgr, 1},
    {"hist_corr", &FrameSeries::hist_corr, 1},   {"hash_dist", &FrameSeries::hash_dist, 1},
    {"luma_mean", &FrameSeries::luma_mean, 1},   {"luma_std", &FrameSeries::luma_std, 1},
    {"sharpness", &FrameSeries::sharpness, 1},   {"colorfulness", &FrameSeries::colorfulness, 1},
    {"flow_mag", &FrameSeries::flow_mag, 1},     {"cam_tx", &FrameSeries::cam_tx, 1},
    {"cam_ty", &FrameSeries::cam_ty, 1},         {"cam_zoom", &FrameSeries::cam_zoom, 1},
    {"cam_rot", &FrameSeries::cam_rot, 1},       {"cam_residual", &FrameSeries::cam_residual, 1},
    {"text_area", &FrameSeries::text_area, 1},   {"colors", &FrameSeries::colors, kColorBins},
};

const SeriesField<int64_t> kIntFields[] = {
    {"pts", &FrameSeries::pts, 1},
    {"phash", &FrameSeries::phash, 1},
};

}  // namespace

Status SaveFrameSeries(Catalog& catalog, int64_t video_id, const FrameSeries& series) {
  for (const auto& f : kIntFields) {
    const auto& v = series.*(f.member);
    if (!v.empty()) REEL_RETURN_IF_ERROR(catalog.PutFrameData(video_id, f.name, v, f.width));
  }
  for (const auto& f : kFloatFields) {
    const auto& v = series.*(f.member);
    if (!v.empty()) REEL_RETURN_IF_ERROR(catalog.PutFrameData(video_id, f.name, v, f.width));
  }
  return Status::OK();
}

Result<FrameSeries> LoadFrameSeries(Catalog& catalog, int64_t video_id) {
  FrameSeries s;
  REEL_ASSIGN_OR_RETURN(std::vector<std::string> names, catalog.ListFrameData(video_id));
  auto has = [&](const char* name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  for (const auto& f : kIntFields) {
    if (has(f.name)) {
      REEL_ASSIGN_OR_RETURN(s.*(f.member), catalog.GetFrameDataI64(video_id, f.name));
    }
  }
  for (const auto& f : kFloatFields) {
    if (has(f.name)) {
      REEL_ASSIGN_OR_RETURN(s.*(f.member), catalog.GetFrameDataF32(video_id, f.name));
    }
  }
  const size_t n = s.pts.size();
  if (n == 0) return Status::NotFound("video " + std::to_string(video_id) + " has no scan data");
  for (const auto& f : kFloatFields) {
    const auto& v = s.*(f.member);
    if (!v.empty() && v.size() != n * static_cast<size_t>(f.width)) {
      return Status::Corruption("video " + std::to_string(video_id) + ": series '" + f.name +
                                "' has " + std::to_string(v.size()) + " values for " +
                                std::to_string(n) + " frames");
    }
  }
  REEL_ASSIGN_OR_RETURN(auto scan, catalog.FindScan(video_id));
  if (scan.has_value()) {
    s.width = scan->analysis_width;
    s.height = scan->analysis_height;
  }
  return s;
}

std::string HashToHex(uint64_t hash) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

Result<uint64_t> HashFromHex(const std::string& hex) {
  if (hex.size() != 16) return Status::InvalidArgument("hash '" + hex + "' is not 16 hex digits");
  uint64_t v = 0;
  for (char c : hex) {
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return Status::InvalidArgument("hash '" + hex + "' is not 16 hex digits");
    }
  }
  return v;
}

int HammingDistance(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

}  // namespace reel
