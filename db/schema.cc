#include "db/schema.h"

namespace reel {

const std::vector<Migration>& CatalogMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "videos, clips, captions, runs and metrics", R"sql(
CREATE TABLE videos (
  id            INTEGER PRIMARY KEY,
  path          TEXT NOT NULL UNIQUE,
  size_bytes    INTEGER NOT NULL,
  content_hash  TEXT,
  status        TEXT NOT NULL,
  error         TEXT,
  container     TEXT,
  codec         TEXT,
  pixel_format  TEXT,
  width         INTEGER,
  height        INTEGER,
  sar_num       INTEGER,
  sar_den       INTEGER,
  rotation      INTEGER NOT NULL DEFAULT 0,
  fps_num       INTEGER,
  fps_den       INTEGER,
  time_base_num INTEGER,
  time_base_den INTEGER,
  vfr           INTEGER NOT NULL DEFAULT 0,
  frame_count   INTEGER,
  start_num     INTEGER,
  start_den     INTEGER,
  duration_num  INTEGER,
  duration_den  INTEGER,
  has_audio     INTEGER NOT NULL DEFAULT 0,
  bit_rate      INTEGER,
  ingested_at   TEXT NOT NULL,
  updated_at    TEXT NOT NULL
) STRICT;
CREATE INDEX videos_by_hash ON videos(content_hash);

CREATE TABLE clips (
  id          INTEGER PRIMARY KEY,
  video_id    INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
  start_frame INTEGER NOT NULL,
  end_frame   INTEGER NOT NULL,
  start_num   INTEGER NOT NULL,
  start_den   INTEGER NOT NULL,
  end_num     INTEGER NOT NULL,
  end_den     INTEGER NOT NULL,
  state       TEXT NOT NULL DEFAULT 'candidate',
  created_at  TEXT NOT NULL,
  CHECK (start_frame >= 0 AND end_frame > start_frame),
  UNIQUE (video_id, start_frame, end_frame)
) STRICT;
CREATE INDEX clips_by_video ON clips(video_id);

CREATE TABLE captions (
  id         INTEGER PRIMARY KEY,
  clip_id    INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
  text       TEXT NOT NULL,
  source     TEXT NOT NULL,
  model      TEXT NOT NULL DEFAULT '',
  prompt     TEXT NOT NULL DEFAULT '',
  params     TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX captions_by_clip ON captions(clip_id);

CREATE TABLE runs (
  id           INTEGER PRIMARY KEY,
  kind         TEXT NOT NULL,
  config       TEXT NOT NULL DEFAULT '{}',
  tool_version TEXT NOT NULL,
  started_at   TEXT NOT NULL,
  finished_at  TEXT,
  status       TEXT NOT NULL DEFAULT 'running',
  error        TEXT
) STRICT;

CREATE TABLE metrics (
  id      INTEGER PRIMARY KEY,
  run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name    TEXT NOT NULL,
  value   REAL,
  details TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX metrics_by_run ON metrics(run_id, name);
)sql"},

      {2, "ingest bookkeeping: file stamps, duplicates, tags, run owners, durations", R"sql(
ALTER TABLE videos ADD COLUMN mtime_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE videos ADD COLUMN duplicate_of INTEGER REFERENCES videos(id) ON DELETE SET NULL;
ALTER TABLE videos ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE videos ADD COLUMN duration_seconds REAL
  GENERATED ALWAYS AS (CAST(duration_num AS REAL) / NULLIF(duration_den, 0)) VIRTUAL;
ALTER TABLE clips ADD COLUMN duration_seconds REAL
  GENERATED ALWAYS AS (CAST(end_num AS REAL) / end_den - CAST(start_num AS REAL) / start_den) VIRTUAL;
ALTER TABLE runs ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
CREATE INDEX videos_by_status ON videos(status);
CREATE INDEX runs_by_kind ON runs(kind, started_at);
)sql"},

      {3, "scans, per-frame data, clip signals, subsets and exports", R"sql(
CREATE TABLE scans (
  video_id        INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
  run_id          INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  status          TEXT NOT NULL,
  error           TEXT,
  frames          INTEGER NOT NULL DEFAULT 0,
  decode_errors   INTEGER NOT NULL DEFAULT 0,
  analysis_width  INTEGER,
  analysis_height INTEGER,
  time_base_num   INTEGER,
  time_base_den   INTEGER,
  start_pts       INTEGER,
  params          TEXT NOT NULL DEFAULT '{}',
  scanned_at      TEXT NOT NULL
) STRICT;

CREATE TABLE frame_data (
  video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
  name     TEXT NOT NULL,
  dtype    TEXT NOT NULL,
  width    INTEGER NOT NULL DEFAULT 1,
  data     BLOB NOT NULL,
  PRIMARY KEY (video_id, name)
) STRICT;

ALTER TABLE clips ADD COLUMN detector TEXT NOT NULL DEFAULT '';
ALTER TABLE clips ADD COLUMN motion REAL;
ALTER TABLE clips ADD COLUMN static_ratio REAL;
ALTER TABLE clips ADD COLUMN camera_motion TEXT;
ALTER TABLE clips ADD COLUMN sharpness REAL;
ALTER TABLE clips ADD COLUMN brightness REAL;
ALTER TABLE clips ADD COLUMN contrast REAL;
ALTER TABLE clips ADD COLUMN black_ratio REAL;
ALTER TABLE clips ADD COLUMN text_area REAL;
ALTER TABLE clips ADD COLUMN colorfulness REAL;
ALTER TABLE clips ADD COLUMN dominant_colors TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clips ADD COLUMN phash TEXT;
ALTER TABLE clips ADD COLUMN duplicate_of INTEGER REFERENCES clips(id) ON DELETE SET NULL;
ALTER TABLE clips ADD COLUMN signals TEXT NOT NULL DEFAULT '{}';
ALTER TABLE clips ADD COLUMN frames INTEGER GENERATED ALWAYS AS (end_frame - start_frame) VIRTUAL;

CREATE TABLE subsets (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  expression TEXT NOT NULL,
  sql        TEXT NOT NULL,
  run_id     INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  created_at TEXT NOT NULL
) STRICT;

CREATE TABLE subset_clips (
  subset_id INTEGER NOT NULL REFERENCES subsets(id) ON DELETE CASCADE,
  clip_id   INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
  passed    INTEGER NOT NULL,
  reason    TEXT,
  PRIMARY KEY (subset_id, clip_id)
) STRICT;
CREATE INDEX subset_clips_by_clip ON subset_clips(clip_id);

CREATE TABLE clip_exports (
  clip_id     INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
  out_dir     TEXT NOT NULL,
  path        TEXT NOT NULL,
  mode        TEXT NOT NULL,
  width       INTEGER NOT NULL,
  height      INTEGER NOT NULL,
  fps_num     INTEGER NOT NULL,
  fps_den     INTEGER NOT NULL,
  frames      INTEGER NOT NULL,
  start_num   INTEGER NOT NULL,
  start_den   INTEGER NOT NULL,
  end_num     INTEGER NOT NULL,
  end_den     INTEGER NOT NULL,
  exported_at TEXT NOT NULL,
  PRIMARY KEY (clip_id, out_dir)
) STRICT;
)sql"},

      {4, "caption provenance: runs, uniqueness, scores, errors; sidecar texts; aesthetics", R"sql(
ALTER TABLE captions ADD COLUMN run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL;
-- One caption per (clip, backend, model): older duplicates keep their text under a
-- distinguishable model name rather than being dropped.
UPDATE captions SET model = model || '#' || id
  WHERE id NOT IN (SELECT min(id) FROM captions GROUP BY clip_id, source, model);
CREATE UNIQUE INDEX captions_by_backend ON captions(clip_id, source, model);

CREATE TABLE caption_scores (
  caption_id INTEGER NOT NULL REFERENCES captions(id) ON DELETE CASCADE,
  name       TEXT NOT NULL,
  model      TEXT NOT NULL,
  value      REAL NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (caption_id, name, model)
) STRICT;

CREATE TABLE caption_errors (
  clip_id   INTEGER NOT NULL REFERENCES clips(id) ON DELETE CASCADE,
  source    TEXT NOT NULL,
  model     TEXT NOT NULL,
  run_id    INTEGER REFERENCES runs(id) ON DELETE SET NULL,
  error     TEXT NOT NULL,
  attempts  INTEGER NOT NULL DEFAULT 1,
  failed_at TEXT NOT NULL,
  PRIMARY KEY (clip_id, source, model)
) STRICT;

CREATE TABLE video_texts (
  video_id  INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
  origin    TEXT NOT NULL,
  field     TEXT NOT NULL DEFAULT '',
  seq       INTEGER NOT NULL DEFAULT 0,
  start_num INTEGER,
  start_den INTEGER,
  end_num   INTEGER,
  end_den   INTEGER,
  text      TEXT NOT NULL,
  file      TEXT NOT NULL,
  PRIMARY KEY (video_id, origin, field, seq)
) STRICT;
ALTER TABLE videos ADD COLUMN sidecar_stamp TEXT NOT NULL DEFAULT '';

ALTER TABLE clips ADD COLUMN aesthetic REAL;
)sql"},

      {5, "evaluation: run names, generated videos, cached features", R"sql(
ALTER TABLE runs ADD COLUMN name TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_name ON runs(name);

CREATE TABLE generations (
  id         INTEGER PRIMARY KEY,
  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  path       TEXT NOT NULL,
  prompt     TEXT NOT NULL,
  clip_id    INTEGER REFERENCES clips(id) ON DELETE SET NULL,
  caption_id INTEGER REFERENCES captions(id) ON DELETE SET NULL,
  seed       INTEGER NOT NULL,
  checkpoint TEXT NOT NULL DEFAULT '',
  params     TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  UNIQUE (run_id, path)
) STRICT;

CREATE TABLE feature_sets (
  key        TEXT PRIMARY KEY,
  extractor  TEXT NOT NULL,
  source     TEXT NOT NULL,
  params     TEXT NOT NULL DEFAULT '{}',
  count      INTEGER NOT NULL,
  dim        INTEGER NOT NULL,
  features   BLOB NOT NULL,
  skipped    TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
) STRICT;
)sql"},

      {6, "generations found by file path", R"sql(
CREATE INDEX generations_by_path ON generations(path);
)sql"},

      // Version 2 subtracted two rounded quotients, so an 18-frame clip at 25 fps measured
      // 0.7199999999999998 s at some starts and failed `duration >= 0.72`; the exact
      // difference, divided once, rounds to the double nearest the true length.
      {7, "clip durations rounded once from the exact difference of their times", R"sql(
ALTER TABLE clips DROP COLUMN duration_seconds;
ALTER TABLE clips ADD COLUMN duration_seconds REAL
  GENERATED ALWAYS AS (CAST(end_num * start_den - start_num * end_den AS REAL)
                       / (end_den * start_den)) VIRTUAL;
)sql"},
  };
  return kMigrations;
}

}  // namespace reel
