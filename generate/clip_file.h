// Decoded training clips kept on disk instead of in memory, so that the VAE trains on a
// subset of any size: each clip is a record of 8-bit pixels [3, T, H, W] (3·T·H·W bytes,
// a quarter of the float32 it trains as), read back by index as the exact float video it
// was decoded into (VideoFromPixels). The VAE draws its batches from the records; the
// operating system's page cache, not the process, holds the ones in use.
//
// A ClipFile is either temporary (unlinked when created: gone when closed or when the
// process dies) or kept at a path with an index beside it (`path`.json) that records
// which clip each record is, so that a later run reuses the clips already decoded.
// Records appended since the last Commit are not in the index; a crash loses them only.
//
// Thread-safety: Read may be called from several threads at once; Append and Commit from
// one thread, not concurrently with Read.

#ifndef REEL_GENERATE_CLIP_FILE_H_
#define REEL_GENERATE_CLIP_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "generate/config.h"
#include "generate/vae_training.h"
#include "util/status.h"

namespace reel::gen {

// The float video [3, T, H, W] in [-1, 1] of 8-bit pixels [3, T, H, W] (x / 127.5 - 1).
torch::Tensor VideoFromPixels(const torch::Tensor& pixels);

// Bytes of one clip of `shape` as 8-bit pixels.
uint64_t ClipPixelBytes(const ClipShape& shape);

class ClipFile {
 public:
  // What a record was decoded from: a clip and the frames it spanned then (a clip whose
  // frames changed since is decoded again).
  struct Key {
    int64_t clip_id = 0;
    int64_t video_id = 0;
    int64_t start_frame = 0;
    int64_t end_frame = 0;
    // A record being dropped by Compact (an index written by one that did not finish
    // may hold some); no clip has it.
    static Key Hole() { return {-1, -1, -1, -1}; }
    bool hole() const { return clip_id < 0; }
    bool operator==(const Key& o) const {
      return clip_id == o.clip_id && video_id == o.video_id && start_frame == o.start_frame &&
             end_frame == o.end_frame;
    }
  };

  // A temporary file in folder `dir` (which must exist), removed from the folder at once.
  static Result<std::unique_ptr<ClipFile>> CreateTemporary(const std::string& dir,
                                                           const ClipShape& shape);
  // The file at `path`: its indexed records are kept when it holds clips of `shape`
  // (FailedPrecondition when it holds another shape); created when absent. Records that
  // an older reel decoded with other frame picks (before `export --fps`'s rule) are
  // dropped: stale() counts them.
  static Result<std::unique_ptr<ClipFile>> Open(const std::string& path, const ClipShape& shape);

  ~ClipFile();
  ClipFile(const ClipFile&) = delete;
  ClipFile& operator=(const ClipFile&) = delete;

  const std::string& path() const { return path_; }      // "" for a temporary file
  const std::string& folder() const { return folder_; }  // where its data is
  const ClipShape& shape() const { return shape_; }
  int64_t size() const { return static_cast<int64_t>(keys_.size()); }
  const std::vector<Key>& keys() const { return keys_; }  // record i decoded from keys()[i]
  // Records Open dropped because an older reel picked their frames otherwise.
  int64_t stale() const { return stale_; }

  // Appends the 8-bit pixels [3, T, H, W] of the clip `key` (InvalidArgument for another
  // shape or type; IOError naming the file when the disk refuses it).
  Status Append(const Key& key, const torch::Tensor& pixels);
  // Makes the records appended so far durable: the data is synced, then the index
  // rewritten (atomically). Nothing to do for a temporary file.
  Status Commit();
  // Record `i` as a float video [3, T, H, W] in [-1, 1].
  Result<torch::Tensor> Read(int64_t i) const;
  // Keeps only the records `keep` (distinct indices) and shrinks the file to them: the
  // last kept records move into the places of dropped ones before them. Returns where each
  // of `keep` is now: indices change, so ClipRecords made before are no longer valid.
  // Commits first. A kept file stays consistent if the process dies at any point: the
  // index first marks the dropped records as holes, the records then move into holes
  // only, the data is synced, and only then does the index name the new places (a later
  // Open cuts off what lies beyond them). An IOError leaves the records as the index on
  // disk says.
  Result<std::vector<int64_t>> Compact(const std::vector<int64_t>& keep);

 private:
  ClipFile(int fd, std::string path, std::string folder, const ClipShape& shape);
  Status WriteIndex() const;
  std::string Name() const { return path_.empty() ? "the temporary clip file" : path_; }

  int fd_ = -1;
  std::string path_;
  std::string folder_;
  ClipShape shape_;
  uint64_t record_bytes_ = 0;
  std::vector<Key> keys_;
  int64_t committed_ = 0;  // records in the index
  int64_t stale_ = 0;
};

// Some records of a ClipFile, in a given order, as the clips to train on. Does not own
// the file, which must outlive it.
class ClipRecords : public ClipSet {
 public:
  ClipRecords(const ClipFile& file, std::vector<int64_t> records)
      : file_(file), records_(std::move(records)) {}
  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  Result<torch::Tensor> Video(int64_t i) const override {
    return file_.Read(records_[static_cast<size_t>(i)]);
  }

 private:
  const ClipFile& file_;
  std::vector<int64_t> records_;
};

}  // namespace reel::gen

#endif  // REEL_GENERATE_CLIP_FILE_H_
