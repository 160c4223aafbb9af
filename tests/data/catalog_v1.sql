-- A catalog as reel wrote it at schema version 1, with a few rows.
-- Frozen: do not regenerate from db/schema.cc; the upgrade test depends on it.
PRAGMA application_id = 1919247724;
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

INSERT INTO videos VALUES (1, '/data/raw/harbour.mp4', 1048576,
  'a3f1c2d4e5b60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90', 'ok', NULL,
  'mov,mp4,m4a,3gp,3g2,mj2', 'h264', 'yuv420p', 1280, 720, 1, 1, 0, 30000, 1001, 1, 30000, 0,
  720, 0, 1, 3003, 125, 0, 2400000, '2026-01-05T10:00:00.000Z', '2026-01-05T10:00:00.000Z');
INSERT INTO videos VALUES (2, '/data/raw/broken.mp4', 20, NULL, 'error',
  'cannot open: Invalid data found when processing input', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, 0, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL,
  '2026-01-05T10:00:01.000Z', '2026-01-05T10:00:01.000Z');
INSERT INTO clips VALUES (1, 1, 0, 150, 0, 1, 1001, 200, 'candidate', '2026-01-05T10:01:00.000Z');
INSERT INTO captions VALUES (1, 1, 'Boats in a harbour at dusk.', 'original', '', '', '{}',
  '2026-01-05T10:02:00.000Z');
INSERT INTO runs VALUES (1, 'ingest', '{"paths":["/data/raw"]}', 'reel 0.1.0 (old)',
  '2026-01-05T10:00:00.000Z', '2026-01-05T10:00:02.000Z', 'ok', NULL);
INSERT INTO metrics VALUES (1, 1, 'ingest.added', 2.0, '{}');
PRAGMA user_version = 1;
