#include "curate/dedup.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "curate/frame_analysis.h"

namespace reel {
namespace {

struct Item {
  int64_t clip_id = 0;
  uint64_t first = 0, middle = 0, last = 0;
  double black = 0, duration = 0, area = 0, sharpness = 0;
};

// BK-tree over Hamming distance of the middle hash.
class BkTree {
 public:
  explicit BkTree(const std::vector<Item>& items) : items_(items) {}

  void Add(size_t index) {
    if (nodes_.empty()) {
      nodes_.push_back({index, {}});
      return;
    }
    size_t node = 0;
    while (true) {
      const int d = HammingDistance(items_[nodes_[node].index].middle, items_[index].middle);
      auto it = nodes_[node].children.find(d);
      if (it == nodes_[node].children.end()) {
        nodes_[node].children[d] = nodes_.size();
        nodes_.push_back({index, {}});
        return;
      }
      node = it->second;
    }
  }

  // Indices whose middle hash is within `radius` of `hash`.
  void Query(uint64_t hash, int radius, std::vector<size_t>* out) const {
    if (nodes_.empty()) return;
    std::vector<size_t> stack = {0};
    while (!stack.empty()) {
      const Node& n = nodes_[stack.back()];
      stack.pop_back();
      const int d = HammingDistance(items_[n.index].middle, hash);
      if (d <= radius) out->push_back(n.index);
      for (const auto& [edge, child] : n.children) {
        if (edge >= d - radius && edge <= d + radius) stack.push_back(child);
      }
    }
  }

 private:
  struct Node {
    size_t index;
    std::map<int, size_t> children;
  };
  const std::vector<Item>& items_;
  std::vector<Node> nodes_;
};

size_t Find(std::vector<size_t>& parent, size_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

// True when a should be kept over b.
bool Better(const Item& a, const Item& b) {
  if (a.black != b.black) return a.black < b.black;
  if (a.duration != b.duration) return a.duration > b.duration;
  if (a.area != b.area) return a.area > b.area;
  if (a.sharpness != b.sharpness) return a.sharpness > b.sharpness;
  return a.clip_id < b.clip_id;
}

}  // namespace

Result<DedupSummary> Dedup(Catalog& catalog, const DedupOptions& options) {
  if (options.max_distance < 0 || options.max_distance > 64) {
    return Status::InvalidArgument("max distance must be within 0..64");
  }
  DedupSummary summary;
  REEL_ASSIGN_OR_RETURN(std::vector<ClipRecord> clips, catalog.ListClips());
  REEL_ASSIGN_OR_RETURN(std::vector<VideoRecord> videos, catalog.ListVideos());
  std::map<int64_t, double> area;
  for (const auto& v : videos) area[v.id] = static_cast<double>(v.width) * v.height;

  std::vector<Item> items;
  std::vector<int64_t> without_hash;
  for (const ClipRecord& c : clips) {
    const ClipSignals& g = c.signals;
    const Json* first = g.extra.Find("phash_first");
    const Json* last = g.extra.Find("phash_last");
    auto middle = HashFromHex(g.phash);
    if (!middle.ok() || first == nullptr || last == nullptr) {
      without_hash.push_back(c.id);
      continue;
    }
    auto f = HashFromHex(first->as_string());
    auto l = HashFromHex(last->as_string());
    if (!f.ok() || !l.ok()) {
      without_hash.push_back(c.id);
      continue;
    }
    Item it;
    it.clip_id = c.id;
    it.first = *f;
    it.middle = *middle;
    it.last = *l;
    it.black = g.black_ratio.value_or(0);
    it.duration = (c.end_time - c.start_time).ToDouble();
    it.area = area[c.video_id];
    it.sharpness = g.sharpness.value_or(0);
    items.push_back(it);
  }
  summary.clips = static_cast<int64_t>(items.size());

  std::vector<size_t> parent(items.size());
  std::iota(parent.begin(), parent.end(), 0);
  BkTree tree(items);
  std::vector<size_t> candidates;
  for (size_t i = 0; i < items.size(); ++i) {
    candidates.clear();
    tree.Query(items[i].middle, options.max_distance, &candidates);
    for (size_t j : candidates) {
      if (HammingDistance(items[i].first, items[j].first) <= options.max_distance &&
          HammingDistance(items[i].last, items[j].last) <= options.max_distance) {
        parent[Find(parent, i)] = Find(parent, j);
      }
    }
    tree.Add(i);
  }
  std::map<size_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < items.size(); ++i) groups[Find(parent, i)].push_back(i);

  std::map<int64_t, std::optional<int64_t>> decision;  // clip -> duplicate_of
  for (const ClipRecord& c : clips) decision[c.id] = std::nullopt;
  for (auto& [root, members] : groups) {
    if (members.size() < 2) continue;
    std::sort(members.begin(), members.end(),
              [&](size_t a, size_t b) { return Better(items[a], items[b]); });
    std::vector<int64_t> ids;
    for (size_t m : members) ids.push_back(items[m].clip_id);
    for (size_t k = 1; k < ids.size(); ++k) decision[ids[k]] = ids[0];
    summary.duplicates += static_cast<int64_t>(ids.size()) - 1;
    summary.group_ids.push_back(std::move(ids));
  }
  summary.groups = static_cast<int64_t>(summary.group_ids.size());
  std::sort(summary.group_ids.begin(), summary.group_ids.end());
  if (options.dry_run) return summary;

  Json config = Json::MakeObject();
  config["max_distance"] = options.max_distance;
  REEL_ASSIGN_OR_RETURN(summary.run_id, catalog.BeginRun("dedup", config));
  REEL_ASSIGN_OR_RETURN(Catalog::Transaction txn, catalog.Begin());
  for (const ClipRecord& c : clips) {
    const std::optional<int64_t>& d = decision[c.id];
    if (d != c.duplicate_of) REEL_RETURN_IF_ERROR(catalog.SetClipDuplicate(c.id, d));
  }
  REEL_RETURN_IF_ERROR(
      catalog.AddMetric(summary.run_id, "dedup.groups", static_cast<double>(summary.groups)).status());
  REEL_RETURN_IF_ERROR(catalog.AddMetric(summary.run_id, "dedup.duplicates",
                                         static_cast<double>(summary.duplicates)).status());
  REEL_RETURN_IF_ERROR(catalog.FinishRun(summary.run_id, RunStatus::kOk));
  REEL_RETURN_IF_ERROR(txn.Commit());
  return summary;
}

}  // namespace reel
