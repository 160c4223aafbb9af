// reel db info | export | query | upgrade

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "db/catalog.h"
#include "db/export.h"
#include "db/merge.h"
#include "util/json.h"
#include "util/strings.h"

namespace reel::cli {
namespace {

Catalog::Options ReadOnly() {
  Catalog::Options o;
  o.read_only = true;
  return o;
}

// Typed exports and info need the current schema; an older catalog is upgraded by a
// writing command (or `reel db upgrade`), never silently by a reading one.
Status RequireCurrentSchema(const Catalog& catalog) {
  if (catalog.schema_version() < Catalog::kSchemaVersion) {
    return Status::FailedPrecondition(
        catalog.path() + ": catalog schema version " + std::to_string(catalog.schema_version()) +
        " is older than this reel's (" + std::to_string(Catalog::kSchemaVersion) +
        "); run `reel db upgrade --db " + catalog.path() + "`");
  }
  return Status::OK();
}

class DbInfoCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    AddJsonOption(o, &json_);
    o.add_options()  //
        ("check", po::bool_switch(&check_),
         "also check the whole file (SQLite's integrity and foreign-key checks, reading every "
         "page); exit 1 when damaged");
  }

  int Run() override {
    auto catalog = Catalog::Open(db_, ReadOnly());
    if (!catalog.ok()) return Fail(catalog.status());
    auto stats = (*catalog)->Stats();
    if (!stats.ok()) return Fail(stats.status());
    std::string integrity;  // "" when not checked
    if (check_) {
      auto checked = (*catalog)->IntegrityCheck();
      // Damage may stop the check itself; a lock or a read error says nothing either way.
      if (!checked.ok() && checked.status().code() != StatusCode::kCorruption) {
        return Fail(checked.status().WithContext("cannot check " + db_));
      }
      integrity = checked.ok() ? *checked : checked.status().message();
    }
    const int exit_code = integrity.empty() || integrity == "ok" ? kExitOk : kExitFailure;
    auto runs = (*catalog)->schema_version() >= Catalog::kSchemaVersion
                    ? (*catalog)->ListRuns()
                    : Result<std::vector<RunRecord>>(std::vector<RunRecord>{});
    if (!runs.ok()) return Fail(runs.status());
    const CatalogStats& s = *stats;
    const RunRecord* last = runs->empty() ? nullptr : &runs->back();
    if (json_) {
      Json j = Json::MakeObject();
      j["catalog"] = db_;
      j["schema_version"] = s.schema_version;
      j["schema_version_current"] = Catalog::kSchemaVersion;
      j["file_bytes"] = s.file_bytes;
      Json v = Json::MakeObject();
      v["total"] = s.videos;
      v["ok"] = s.videos_ok;
      v["error"] = s.videos_error;
      v["duplicate"] = s.videos_duplicate;
      v["bytes"] = s.video_bytes;
      v["seconds"] = s.video_seconds.ToDouble();
      j["videos"] = v;
      j["clips"] = s.clips;
      j["captions"] = s.captions;
      j["runs"] = s.runs;
      j["metrics"] = s.metrics;
      if (last != nullptr) {
        Json r = Json::MakeObject();
        r["id"] = last->id;
        r["kind"] = last->kind;
        r["status"] = std::string(RunStatusName(last->status));
        r["started_at"] = last->started_at;
        r["finished_at"] = last->finished_at;
        j["last_run"] = r;
      }
      if (check_) j["integrity"] = integrity;
      std::cout << j.Dump(2) << '\n';
      return exit_code;
    }
    std::printf("catalog   %s\n", db_.c_str());
    std::printf("schema    version %d%s\n", s.schema_version,
                s.schema_version == Catalog::kSchemaVersion
                    ? " (current)"
                    : (" (older than " + std::to_string(Catalog::kSchemaVersion) +
                       "; `reel db upgrade` upgrades it)")
                          .c_str());
    std::printf("size      %s\n", FormatBytes(static_cast<uint64_t>(s.file_bytes)).c_str());
    std::printf("videos    %lld (%lld ok, %lld error, %lld duplicate), %s, %s\n",
                static_cast<long long>(s.videos), static_cast<long long>(s.videos_ok),
                static_cast<long long>(s.videos_error), static_cast<long long>(s.videos_duplicate),
                FormatBytes(static_cast<uint64_t>(s.video_bytes)).c_str(),
                FormatTimecode(s.video_seconds).c_str());
    std::printf("clips     %lld\n", static_cast<long long>(s.clips));
    std::printf("captions  %lld\n", static_cast<long long>(s.captions));
    if (last != nullptr) {
      std::printf("runs      %lld (last: #%lld %s, %s, started %s)\n",
                  static_cast<long long>(s.runs), static_cast<long long>(last->id),
                  last->kind.c_str(), std::string(RunStatusName(last->status)).c_str(),
                  last->started_at.c_str());
    } else {
      std::printf("runs      %lld\n", static_cast<long long>(s.runs));
    }
    std::printf("metrics   %lld\n", static_cast<long long>(s.metrics));
    if (check_) {
      std::printf("integrity %s\n", integrity == "ok" ? "ok (every page read)" : "DAMAGED:");
      if (integrity != "ok") {
        for (const std::string& line : Split(integrity, '\n')) {
          std::printf("  %s\n", line.c_str());
        }
        std::fprintf(stderr,
                     "reel: error: %s is damaged; restore a copy, or save what is readable with "
                     "`sqlite3 %s .recover | sqlite3 recovered.db`\n",
                     db_.c_str(), db_.c_str());
      }
    }
    return exit_code;
  }

 private:
  std::string db_;
  bool json_ = false;
  bool check_ = false;
};

class DbExportCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
    o.add_options()  //
        ("what", po::value<std::string>(&what_)->value_name("TABLE")->default_value("videos"),
         "videos, clips, captions, runs or metrics")  //
        ("format", po::value<std::string>(&format_)->value_name("FMT")->default_value("csv"),
         "csv, jsonl, json or table")  //
        ("out,o", po::value<std::string>(&out_)->value_name("FILE"),
         "write here (atomically) instead of stdout");
  }

  Status Setup(const po::variables_map&) override {
    REEL_ASSIGN_OR_RETURN(what_table_, ParseExportWhat(what_));
    REEL_ASSIGN_OR_RETURN(format_kind_, ParseTableFormat(format_));
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_, ReadOnly());
    if (!catalog.ok()) return Fail(catalog.status());
    Status s = RequireCurrentSchema(**catalog);
    if (!s.ok()) return Fail(s);
    if (out_.empty()) {
      auto writer = MakeRowWriter(format_kind_, std::cout);
      s = ExportTable(**catalog, what_table_, *writer);
      return s.ok() ? kExitOk : Fail(s);
    }
    std::ostringstream buffer;
    auto writer = MakeRowWriter(format_kind_, buffer);
    s = ExportTable(**catalog, what_table_, *writer);
    if (s.ok()) s = WriteFileAtomic(out_, buffer.str());
    return s.ok() ? kExitOk : Fail(s);
  }

 private:
  std::string db_, what_, format_, out_;
  ExportWhat what_table_ = ExportWhat::kVideos;
  TableFormat format_kind_ = TableFormat::kCsv;
};

class DbQueryCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description& p) override {
    AddDbOption(o, &db_);
    o.add_options()  //
        ("format", po::value<std::string>(&format_)->value_name("FMT"),
         "table, csv, jsonl or json (default: table on a terminal, csv otherwise)")  //
        ("sql", po::value<std::string>(&sql_)->value_name("SQL")->required(),
         "one read-only statement (also the first positional argument)");
    p.add("sql", 1);
  }

  Status Setup(const po::variables_map&) override {
    if (format_.empty()) format_ = isatty(STDOUT_FILENO) ? "table" : "csv";
    REEL_ASSIGN_OR_RETURN(format_kind_, ParseTableFormat(format_));
    return Status::OK();
  }

  int Run() override {
    auto catalog = Catalog::Open(db_, ReadOnly());
    if (!catalog.ok()) return Fail(catalog.status());
    auto writer = MakeRowWriter(format_kind_, std::cout);
    Status s = (*catalog)->QueryReadOnly(
        sql_, [&](const std::vector<std::string>& names) { return writer->Columns(names); },
        [&](const std::vector<SqlValue>& row) { return writer->Row(row); });
    if (s.ok()) s = writer->Finish();
    return s.ok() ? kExitOk : Fail(s.WithContext(db_));
  }

 private:
  std::string db_, format_, sql_;
  TableFormat format_kind_ = TableFormat::kTable;
};

class DbUpgradeCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description&) override {
    AddDbOption(o, &db_);
  }

  int Run() override {
    int before = 0;
    {
      auto probe = Catalog::Open(db_, ReadOnly());
      if (!probe.ok()) return Fail(probe.status());
      before = (*probe)->schema_version();
    }
    Catalog::Options opts;
    opts.create_if_missing = false;
    auto catalog = Catalog::Open(db_, opts);
    if (!catalog.ok()) return Fail(catalog.status());
    if (!common().quiet) {
      if (before == (*catalog)->schema_version()) {
        std::printf("%s: schema version %d is current\n", db_.c_str(), before);
      } else {
        std::printf("%s: upgraded schema version %d -> %d\n", db_.c_str(), before,
                    (*catalog)->schema_version());
      }
    }
    return kExitOk;
  }

 private:
  std::string db_;
};

class DbMergeCommand : public Command {
 public:
  void AddOptions(po::options_description& o, po::positional_options_description& p) override {
    AddJsonOption(o, &json_);
    o.add_options()("catalogs", po::value<std::vector<std::string>>(&paths_)->value_name("FILE"),
                    "OUT then IN... (positional)");
    p.add("catalogs", -1);
  }

  Status Setup(const po::variables_map&) override {
    if (paths_.size() < 2) return Status::InvalidArgument("usage: reel db merge OUT IN...");
    return Status::OK();
  }

  int Run() override {
    auto out = Catalog::Open(paths_[0]);
    if (!out.ok()) return Fail(out.status());
    std::vector<std::string> inputs(paths_.begin() + 1, paths_.end());
    auto result = MergeCatalogs(**out, inputs);
    if (!result.ok()) return Fail(result.status());
    const MergeSummary& s = *result;
    if (json_) {
      Json j = Json::MakeObject();
      j["inputs"] = s.inputs;
      j["videos_added"] = s.videos_added;
      j["videos_updated"] = s.videos_updated;
      j["scans"] = s.scans;
      j["clips"] = s.clips;
      j["captions"] = s.captions;
      j["subset_members"] = s.subset_members;
      j["exports"] = s.exports;
      j["runs"] = s.runs;
      j["generations"] = s.generations;
      std::cout << j.Dump(2) << '\n';
    } else if (!common().quiet) {
      std::printf(
          "merged %lld catalogs into %s: %lld videos added, %lld updated, %lld scans, "
          "%lld clips, %lld captions, %lld subset members, %lld exports, %lld runs, "
          "%lld generated videos\n",
          static_cast<long long>(s.inputs), paths_[0].c_str(),
          static_cast<long long>(s.videos_added), static_cast<long long>(s.videos_updated),
          static_cast<long long>(s.scans), static_cast<long long>(s.clips),
          static_cast<long long>(s.captions), static_cast<long long>(s.subset_members),
          static_cast<long long>(s.exports), static_cast<long long>(s.runs),
          static_cast<long long>(s.generations));
    }
    return kExitOk;
  }

 private:
  std::vector<std::string> paths_;
  bool json_ = false;
};

}  // namespace

void RegisterDbCommands(std::vector<CommandInfo>* out) {
  out->push_back({"db info", "summarise a catalog: schema, size, counts, last run",
                  "db info --db FILE [--json] [--check]", "",
                  [] { return std::make_unique<DbInfoCommand>(); }});
  out->push_back({"db export", "write a catalog table as CSV, JSON Lines or JSON",
                  "db export --db FILE [--what TABLE] [--format FMT] [--out FILE]",
                  "Times are written exactly as rationals (30000/1001) and, for clips, also in\n"
                  "seconds. Columns holding JSON (metadata, params, config, details) are embedded\n"
                  "as JSON values in the JSON formats.",
                  [] { return std::make_unique<DbExportCommand>(); }});
  out->push_back({"db query", "run one read-only SQL statement against a catalog",
                  "db query --db FILE [--format FMT] \"SELECT ...\"",
                  "The catalog is opened read-only; statements that write (INSERT, UPDATE,\n"
                  "DELETE, CREATE, DROP, ATTACH, setting PRAGMAs) or several statements are\n"
                  "refused before they run.",
                  [] { return std::make_unique<DbQueryCommand>(); }});
  out->push_back({"db upgrade", "upgrade a catalog written by an older reel to this schema",
                  "db upgrade --db FILE", "", [] { return std::make_unique<DbUpgradeCommand>(); }});
  out->push_back({"db merge", "merge shard catalogs into one, without duplicates",
                  "db merge OUT IN...",
                  "Videos match by path, clips by frame range, captions by (clip, source, model,\n"
                  "text), subsets by name, runs by (kind, start, host, pid); ids are remapped.\n"
                  "Merging the same input twice changes nothing. OUT is created if missing.",
                  [] { return std::make_unique<DbMergeCommand>(); }});
}

}  // namespace reel::cli
