#include "generate/clip_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/json.h"
#include "util/strings.h"

namespace reel::gen {
namespace {

namespace fs = std::filesystem;

// Version 2: frames picked as `reel export --fps` and ffmpeg's fps filter pick them.
// Version 1 took the first frame at or after each output time; its records are stale.
constexpr const char* kFormat = "reel-clips 2";
constexpr const char* kFormatOldPicks = "reel-clips 1";

std::string Errno() {
  return std::strerror(errno);
}

Json ShapeJson(const ClipShape& s) {
  Json j = Json::MakeObject();
  j["frames"] = static_cast<int64_t>(s.frames);
  j["height"] = static_cast<int64_t>(s.height);
  j["width"] = static_cast<int64_t>(s.width);
  j["fps"] = static_cast<int64_t>(s.fps);
  return j;
}

// Writes or reads `n` bytes at `at` whatever the kernel splits them into: "" when done,
// else the cause.
std::string WriteAllAt(int fd, const char* p, uint64_t n, off_t at) {
  while (n > 0) {
    const ssize_t done = ::pwrite(fd, p, n, at);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return Errno();
    p += done;
    at += done;
    n -= static_cast<uint64_t>(done);
  }
  return "";
}
std::string ReadAllAt(int fd, char* p, uint64_t n, off_t at) {
  while (n > 0) {
    const ssize_t done = ::pread(fd, p, n, at);
    if (done < 0 && errno == EINTR) continue;
    if (done == 0) return "end of file";
    if (done < 0) return Errno();
    p += done;
    at += done;
    n -= static_cast<uint64_t>(done);
  }
  return "";
}

struct ParsedIndex {
  std::vector<ClipFile::Key> keys;
  bool old_picks = false;  // written by a reel that picked other frames
};

// The keys in the index `text` of a file of clips of `shape`.
Result<ParsedIndex> ParseIndex(const std::string& index, const std::string& text,
                               const ClipShape& shape) {
  auto bad = [&](const std::string& why) { return Status::Corruption(index + ": " + why); };
  Result<Json> parsed = Json::Parse(text);
  if (!parsed.ok()) return bad(parsed.status().message());
  const Json& j = *parsed;
  const Json* format = j.Find("format");
  ParsedIndex out;
  if (format == nullptr) return bad("not a reel clip index");
  out.old_picks = format->as_string() == kFormatOldPicks;
  if (format->as_string() != kFormat && !out.old_picks) return bad("not a reel clip index");
  const Json* s = j.Find("shape");
  if (s == nullptr) return bad("no shape");
  if (*s != ShapeJson(shape)) {
    auto field = [s](const char* name) {
      const Json* v = s->Find(name);
      return v != nullptr ? static_cast<int>(v->as_int()) : 0;
    };
    const ClipShape stored{field("frames"), field("height"), field("width"), field("fps")};
    return Status::FailedPrecondition(index + ": holds clips of " + DescribeClipShape(stored) +
                                      ", not " + DescribeClipShape(shape) +
                                      "; remove it or use another file");
  }
  const Json* records = j.Find("records");
  if (records == nullptr) return bad("no records");
  for (const Json& r : records->as_array()) {
    if (r.is_null()) {
      out.keys.push_back(ClipFile::Key::Hole());
      continue;
    }
    if (r.size() != 4) return bad("a record is not [clip, video, start frame, end frame]");
    out.keys.push_back({r.at(0).as_int(), r.at(1).as_int(), r.at(2).as_int(), r.at(3).as_int()});
  }
  return out;
}

}  // namespace

torch::Tensor VideoFromPixels(const torch::Tensor& pixels) {
  return pixels.to(torch::kFloat).div_(127.5).sub_(1.0);
}

uint64_t ClipPixelBytes(const ClipShape& s) {
  return 3ull * static_cast<uint64_t>(s.frames) * static_cast<uint64_t>(s.height) *
         static_cast<uint64_t>(s.width);
}

ClipFile::ClipFile(int fd, std::string path, std::string folder, const ClipShape& shape)
    : fd_(fd),
      path_(std::move(path)),
      folder_(std::move(folder)),
      shape_(shape),
      record_bytes_(ClipPixelBytes(shape)) {}

ClipFile::~ClipFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<ClipFile>> ClipFile::CreateTemporary(const std::string& dir,
                                                            const ClipShape& shape) {
  std::string name = (fs::path(dir) / ".reel-clips-XXXXXX").string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0)
    return Status::IOError(dir + ": cannot create a temporary clip file (" + Errno() + ")");
  ::unlink(name.c_str());  // the data lives until the descriptor is closed
  return std::unique_ptr<ClipFile>(new ClipFile(fd, "", dir, shape));
}

Result<std::unique_ptr<ClipFile>> ClipFile::Open(const std::string& path, const ClipShape& shape) {
  const std::string index = path + ".json";
  ParsedIndex parsed;
  std::error_code ec;
  if (fs::exists(index, ec)) {
    REEL_ASSIGN_OR_RETURN(const std::string text, ReadFile(index));
    REEL_ASSIGN_OR_RETURN(parsed, ParseIndex(index, text, shape));
  }
  int64_t stale = 0;
  if (parsed.old_picks) {  // decoded again: their frames are not the ones export gives
    for (const Key& k : parsed.keys) stale += k.hole() ? 0 : 1;
    parsed.keys.clear();
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(path + ": cannot open (" + Errno() + ")");
  std::unique_ptr<ClipFile> file(
      new ClipFile(fd, path, fs::absolute(path).parent_path().string(), shape));
  const off_t need = static_cast<off_t>(parsed.keys.size() * file->record_bytes_);
  const off_t have = ::lseek(fd, 0, SEEK_END);
  if (have < need) {
    return Status::Corruption(path + ": shorter (" + std::to_string(have) +
                              " bytes) than the records its index lists (" + std::to_string(need) +
                              " bytes)");
  }
  // Stale records leave the index first, so that a crash before the cut below leaves a
  // file that opens.
  if (parsed.old_picks) REEL_RETURN_IF_ERROR(file->WriteIndex());
  // Records appended after the last commit are not indexed: they go.
  if (have > need && ::ftruncate(fd, need) != 0)
    return Status::IOError(path + ": cannot truncate (" + Errno() + ")");
  file->keys_ = std::move(parsed.keys);
  file->committed_ = file->size();
  file->stale_ = stale;
  return file;
}

Status ClipFile::Append(const Key& key, const torch::Tensor& pixels) {
  const std::vector<int64_t> want = {3, shape_.frames, shape_.height, shape_.width};
  if (pixels.scalar_type() != torch::kByte || pixels.sizes() != c10::IntArrayRef(want)) {
    return Status::InvalidArgument("clip " + std::to_string(key.clip_id) +
                                   ": not 8-bit pixels of " + DescribeClipShape(shape_));
  }
  const torch::Tensor data = pixels.cpu().contiguous();
  const std::string cause =
      WriteAllAt(fd_, static_cast<const char*>(data.data_ptr()), record_bytes_,
                 static_cast<off_t>(keys_.size() * record_bytes_));
  if (!cause.empty()) {
    return Status::IOError(Name() + ": cannot write clip " + std::to_string(key.clip_id) + " (" +
                           cause + ")");
  }
  keys_.push_back(key);
  return Status::OK();
}

Status ClipFile::WriteIndex() const {
  Json j = Json::MakeObject();
  j["format"] = kFormat;
  j["shape"] = ShapeJson(shape_);
  Json records = Json::MakeArray();
  for (const Key& k : keys_) {
    if (k.hole()) {
      records.push_back(Json());
      continue;
    }
    Json r = Json::MakeArray();
    for (int64_t v : {k.clip_id, k.video_id, k.start_frame, k.end_frame}) r.push_back(v);
    records.push_back(std::move(r));
  }
  j["records"] = std::move(records);
  return WriteFileAtomic(path_ + ".json", j.Dump());
}

Status ClipFile::Commit() {
  if (path_.empty() || committed_ == size()) return Status::OK();
  if (::fdatasync(fd_) != 0) return Status::IOError(path_ + ": cannot sync (" + Errno() + ")");
  REEL_RETURN_IF_ERROR(WriteIndex());
  committed_ = size();
  return Status::OK();
}

Result<torch::Tensor> ClipFile::Read(int64_t i) const {
  if (i < 0 || i >= size()) {
    return Status::InvalidArgument("clip record " + std::to_string(i) + " of " +
                                   std::to_string(size()));
  }
  torch::Tensor pixels =
      torch::empty({3, shape_.frames, shape_.height, shape_.width}, torch::kByte);
  const std::string cause = ReadAllAt(fd_, static_cast<char*>(pixels.data_ptr()), record_bytes_,
                                      static_cast<off_t>(static_cast<uint64_t>(i) * record_bytes_));
  if (!cause.empty()) {
    return Status::IOError(Name() + ": cannot read clip record " + std::to_string(i) + " (" +
                           cause + ")");
  }
  return VideoFromPixels(pixels);
}

Result<std::vector<int64_t>> ClipFile::Compact(const std::vector<int64_t>& keep) {
  std::vector<uint8_t> kept(keys_.size(), 0);
  for (int64_t i : keep) {
    if (i < 0 || i >= size() || kept[static_cast<size_t>(i)]) {
      return Status::InvalidArgument(Name() + ": cannot keep record " + std::to_string(i) + " of " +
                                     std::to_string(size()) + " (or twice)");
    }
    kept[static_cast<size_t>(i)] = 1;
  }
  REEL_RETURN_IF_ERROR(Commit());
  const size_t n = keep.size();
  std::vector<int64_t> where(keys_.size(), -1);  // record -> its place after
  for (int64_t i : keep) where[static_cast<size_t>(i)] = i;
  if (n == keys_.size()) return keep;
  // Dropped places below n take the kept records from n on, in order.
  std::vector<std::pair<size_t, size_t>> moves;  // (from, to)
  for (size_t from = n, to = 0; from < keys_.size(); ++from) {
    if (!kept[from]) continue;
    while (kept[to]) ++to;
    moves.emplace_back(from, to);
    where[from] = static_cast<int64_t>(to++);
  }
  std::vector<Key> after(n);
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (where[i] >= 0) after[static_cast<size_t>(where[i])] = keys_[i];
  }
  const bool kept_file = !path_.empty();
  if (kept_file) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (!kept[i]) keys_[i] = Key::Hole();
    }
    REEL_RETURN_IF_ERROR(WriteIndex());
  }
  std::vector<char> buffer(record_bytes_);
  for (const auto& [from, to] : moves) {
    std::string cause =
        ReadAllAt(fd_, buffer.data(), record_bytes_, static_cast<off_t>(from * record_bytes_));
    if (cause.empty()) {
      cause = WriteAllAt(fd_, buffer.data(), record_bytes_, static_cast<off_t>(to * record_bytes_));
    }
    if (!cause.empty()) {
      return Status::IOError(Name() + ": compacting, cannot move record " + std::to_string(from) +
                             " (" + cause + ")");
    }
  }
  if (kept_file && ::fdatasync(fd_) != 0)
    return Status::IOError(path_ + ": cannot sync (" + Errno() + ")");
  keys_ = std::move(after);
  if (kept_file) REEL_RETURN_IF_ERROR(WriteIndex());
  committed_ = size();
  if (::ftruncate(fd_, static_cast<off_t>(n * record_bytes_)) != 0)
    return Status::IOError(Name() + ": cannot truncate (" + Errno() + ")");
  std::vector<int64_t> placed;
  for (int64_t i : keep) placed.push_back(where[static_cast<size_t>(i)]);
  return placed;
}

}  // namespace reel::gen
