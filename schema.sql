-- mvcdb schema, version 2: the single source of truth (applied by mvcdb/schema.py).
-- Every table is STRICT; foreign keys are enforced (PRAGMA foreign_keys=ON on every connection).
-- Integer keys (vid, cid) are local to one file; the 64-hex `versions.id` and the 32-byte
-- `chunks.hash` are the global, content-derived names that merging and sharing rely on.

-- Facts about the file itself: format, chunk size, who created it.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One row a version. Immutable once written.
CREATE TABLE versions (
    vid        INTEGER PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE CHECK (length(id) = 64),
    model      TEXT    NOT NULL CHECK (length(model) > 0),
    message    TEXT    NOT NULL DEFAULT '',
    author     TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL,                          -- ISO-8601 UTC, microseconds, 'Z'
    metadata   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    params_bytes INTEGER NOT NULL DEFAULT 0,              -- logical size of the parameters
    manifest   BLOB    NOT NULL                           -- msgpack of all the above; id = SHA-256(manifest)
) STRICT;
CREATE INDEX versions_model_created ON versions (model, created_at);
CREATE INDEX versions_created ON versions (created_at);

-- The lineage DAG: `position` orders a child's parents (0 = first parent, as in git).
-- (Columns in primary-key order: SQLite 3.40's integrity_check misreports NOT NULL otherwise.)
CREATE TABLE lineage (
    child    INTEGER NOT NULL REFERENCES versions (vid) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    parent   INTEGER NOT NULL REFERENCES versions (vid),
    PRIMARY KEY (child, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX lineage_parent ON lineage (parent, child);

-- Content-addressed chunks of tensor bytes, stored once however many tensors use them.
-- `hash` is SHA-256 of the raw (decoded, little-endian) bytes; `codec` says how `data` is encoded
-- (see mvcdb/chunkcodec.py: 0 raw, 1 zstd, 2 byte-planes+zstd, 3 delta against `base`+byte-planes+zstd,
-- 4 row-delta+byte-planes+zstd; 5-9 are 0-4 with an 8-byte XXH3-64 check of the raw bytes, seeded
-- with `hash`, in front; 15 a lazy clone's not-yet-fetched stub); `depth` is the length of the
-- delta chain below this chunk.
CREATE TABLE chunks (
    cid      INTEGER PRIMARY KEY,
    hash     BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    size     INTEGER NOT NULL CHECK (size >= 0),           -- raw bytes
    codec    INTEGER NOT NULL CHECK (codec BETWEEN 0 AND 15),
    itemsize INTEGER NOT NULL DEFAULT 1 CHECK (itemsize > 0),
    stride   INTEGER NOT NULL DEFAULT 0 CHECK (stride >= 0),
    base     INTEGER REFERENCES chunks (cid),
    depth    INTEGER NOT NULL DEFAULT 0 CHECK (depth >= 0),
    data     BLOB    NOT NULL
) STRICT;
CREATE INDEX chunks_base ON chunks (base) WHERE base IS NOT NULL;

-- What a version holds: named tensors. kind 'param' = parameters, 'traj' = a trajectory series
-- (leading axis = logged rows), 'traj_steps' = the steps of a series logged at only some rows.
CREATE TABLE tensors (
    vid    INTEGER NOT NULL REFERENCES versions (vid) ON DELETE CASCADE,
    -- (spelled with OR, not IN: SQLite evaluates an IN list per row at ~6 us, an OR for free)
    kind   TEXT    NOT NULL CHECK (kind = 'param' OR kind = 'traj' OR kind = 'traj_steps'),
    name   TEXT    NOT NULL,
    dtype  TEXT    NOT NULL,                               -- numpy dtype.str as given, e.g. '<f4', '>i8'
    shape  TEXT    NOT NULL CHECK (json_valid(shape)),     -- JSON list of ints
    nbytes INTEGER NOT NULL CHECK (nbytes >= 0),
    digest TEXT    NOT NULL,                               -- hex SHA-256 over dtype, shape, chunk hashes
    data   BLOB CHECK (data IS NULL OR length(data) = nbytes), -- a tiny tensor's raw bytes, else NULL
    PRIMARY KEY (vid, kind, name)
) STRICT, WITHOUT ROWID;

-- The ordered chunks of each tensor (none for a tiny tensor stored in its `data` column: its one
-- chunk hash, SHA-256 of those bytes, is still what the manifest names).
CREATE TABLE tensor_chunks (
    vid  INTEGER NOT NULL,
    kind TEXT    NOT NULL,
    name TEXT    NOT NULL,
    seq  INTEGER NOT NULL CHECK (seq >= 0),
    cid  INTEGER NOT NULL REFERENCES chunks (cid),
    PRIMARY KEY (vid, kind, name, seq),
    FOREIGN KEY (vid, kind, name) REFERENCES tensors (vid, kind, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX tensor_chunks_cid ON tensor_chunks (cid);

-- Scalar metrics, one row each: plain SQL joins and comparisons. NULL stores NaN.
CREATE TABLE metrics (
    vid   INTEGER NOT NULL REFERENCES versions (vid) ON DELETE CASCADE,
    name  TEXT    NOT NULL,
    value REAL,
    PRIMARY KEY (vid, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX metrics_name_value ON metrics (name, value);

-- Movable names for versions ('production', 'best').
CREATE TABLE tags (
    name TEXT    PRIMARY KEY,
    vid  INTEGER NOT NULL REFERENCES versions (vid)
) STRICT;

-- Every tag move, kept forever: who moved which tag from where to where, and when.
CREATE TABLE tag_history (
    seq     INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    from_id TEXT,                                          -- NULL: the tag was created
    to_id   TEXT,                                          -- NULL: the tag was deleted
    author  TEXT NOT NULL DEFAULT '',
    at      TEXT NOT NULL,
    UNIQUE (name, at, from_id, to_id, author)
) STRICT;
CREATE INDEX tag_history_name ON tag_history (name, seq);

-- Team remotes (PostgreSQL) this file pushes to and pulls from (mvcdb/remote/). The URL is stored
-- without any password: credentials come from PGPASSWORD, ~/.pgpass or a service file.
CREATE TABLE remotes (
    name       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- Views --------------------------------------------------------------------------------------------
-- Read-only conveniences that make the common questions one SELECT in the stock `sqlite3` shell
-- (examples in README.md, "Querying"). Ids are the full 64-hex version ids; `short_id` is the
-- first 12 characters, as mvcdb prints them. JSON columns are text: use json_each/json_extract.

-- One row a version: parents (JSON array of ids, first parent first), `parent` (the first parent's
-- id or NULL), tags (JSON array of names) and metrics (JSON object name -> value; NaN is null,
-- ±inf is ±9e999, which JSON readers -- json_extract, Python's json -- read back as ±inf).
CREATE VIEW version_summary AS
SELECT
    v.vid,
    v.id,
    substr(v.id, 1, 12) AS short_id,
    v.model,
    v.created_at,
    v.author,
    v.message,
    v.metadata,
    (SELECT json_group_array(p.id) FROM
        (SELECT pv.id FROM lineage l JOIN versions pv ON pv.vid = l.parent
         WHERE l.child = v.vid ORDER BY l.position) AS p) AS parents,
    (SELECT pv.id FROM lineage l JOIN versions pv ON pv.vid = l.parent
     WHERE l.child = v.vid AND l.position = 0) AS parent,
    (SELECT json_group_array(t.name) FROM
        (SELECT name FROM tags WHERE vid = v.vid ORDER BY name) AS t) AS tags,
    (SELECT json_group_object(m.name, CASE WHEN m.value = 9e999 THEN json('9e999')
                                           WHEN m.value = -9e999 THEN json('-9e999')
                                           ELSE m.value END) FROM
        (SELECT name, value FROM metrics WHERE vid = v.vid ORDER BY name) AS m) AS metrics,
    v.params_bytes
FROM versions v;

-- One row a (version, metric): the long format for GROUP BY, window functions and pivots.
CREATE VIEW version_metrics AS
SELECT v.vid, v.id, substr(v.id, 1, 12) AS short_id, v.model, v.created_at, m.name AS metric, m.value
FROM metrics m JOIN versions v ON v.vid = m.vid;

-- One row a lineage edge, by full ids: `position` 0 is the first parent (merges have more).
CREATE VIEW version_parents AS
SELECT
    c.id AS child_id,
    substr(c.id, 1, 12) AS child_short_id,
    p.id AS parent_id,
    substr(p.id, 1, 12) AS parent_short_id,
    l.position,
    c.model AS child_model,
    p.model AS parent_model
FROM lineage l
JOIN versions c ON c.vid = l.child
JOIN versions p ON p.vid = l.parent;

-- How each metric moved from a version's first parent to the version (metrics both sides have):
-- delta = value - parent_value, rel_delta = delta / |parent_value| (NULL when that is 0).
CREATE VIEW metric_deltas AS
SELECT
    c.id,
    substr(c.id, 1, 12) AS short_id,
    c.model,
    c.created_at,
    p.id AS parent_id,
    substr(p.id, 1, 12) AS parent_short_id,
    mc.name AS metric,
    mp.value AS parent_value,
    mc.value AS value,
    mc.value - mp.value AS delta,
    CASE WHEN mp.value != 0 THEN (mc.value - mp.value) / abs(mp.value) END AS rel_delta
FROM lineage l
JOIN versions c ON c.vid = l.child
JOIN versions p ON p.vid = l.parent
JOIN metrics mc ON mc.vid = l.child
JOIN metrics mp ON mp.vid = l.parent AND mp.name = mc.name
WHERE l.position = 0;

-- One row a tag: where it points now.
CREATE VIEW tagged_versions AS
SELECT t.name AS tag, v.id, substr(v.id, 1, 12) AS short_id, v.model, v.created_at, v.message
FROM tags t JOIN versions v ON v.vid = t.vid;

-- One row a parameter tensor of a version (no bytes: dtype, JSON shape, size, content digest;
-- equal digests mean identical tensors).
CREATE VIEW version_params AS
SELECT v.id, substr(v.id, 1, 12) AS short_id, v.model, t.name, t.dtype, t.shape, t.nbytes, t.digest
FROM tensors t JOIN versions v ON v.vid = t.vid
WHERE t.kind = 'param';

-- One row a model: how many versions, first and last recording time, and the latest version's id.
CREATE VIEW model_summary AS
SELECT
    v.model,
    count(*) AS versions,
    min(v.created_at) AS first_at,
    max(v.created_at) AS last_at,
    (SELECT l.id FROM versions l WHERE l.model = v.model
     ORDER BY l.created_at DESC, l.vid DESC LIMIT 1) AS latest_id
FROM versions v
GROUP BY v.model;
