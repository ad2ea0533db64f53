-- mvcdb schema, version 1: the single source of truth (applied by mvcdb/schema.py).
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
CREATE TABLE lineage (
    child    INTEGER NOT NULL REFERENCES versions (vid) ON DELETE CASCADE,
    parent   INTEGER NOT NULL REFERENCES versions (vid),
    position INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (child, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX lineage_parent ON lineage (parent, child);

-- Content-addressed chunks of tensor bytes, stored once however many tensors use them.
-- `hash` is SHA-256 of the raw (decoded, little-endian) bytes; `codec` says how `data` is encoded
-- (see mvcdb/codec.py: 0 raw, 1 zstd, 2 byte-planes+zstd, 3 delta against `base`+byte-planes+zstd,
-- 4 row-delta+byte-planes+zstd); `depth` is the length of the delta chain below this chunk.
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
    kind   TEXT    NOT NULL CHECK (kind IN ('param', 'traj', 'traj_steps')),
    name   TEXT    NOT NULL,
    dtype  TEXT    NOT NULL,                               -- numpy dtype.str as given, e.g. '<f4', '>i8'
    shape  TEXT    NOT NULL CHECK (json_valid(shape)),     -- JSON list of ints
    nbytes INTEGER NOT NULL CHECK (nbytes >= 0),
    digest TEXT    NOT NULL,                               -- hex SHA-256 over dtype, shape, chunk hashes
    PRIMARY KEY (vid, kind, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX tensors_digest ON tensors (digest);

-- The ordered chunks of each tensor.
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
