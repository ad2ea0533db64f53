-- mvcdb team remote: the PostgreSQL schema, version 1 (applied by mvcdb/remote/pg.py).
-- The same logical model as schema.sql, keyed by the global content names instead of local
-- integers: versions by their 64-hex id (SHA-256 of the manifest), chunks by the SHA-256 of their
-- raw bytes. Everything lives in the schema `mvcdb`, so the remote can share a database with other
-- applications. Rows are only ever added (never updated), except tags, which move; every tag move
-- is kept in tag_history. Later changes are forward migrations recorded in schema_version.

CREATE SCHEMA IF NOT EXISTS mvcdb;

-- Which migrations this database has had (version 1 = this file).
CREATE TABLE mvcdb.schema_version (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Content-addressed chunks of tensor bytes, stored once. `data` holds a self-contained encoding
-- (codec 0 raw, 1 zstd, 2 byte-planes + zstd; see mvcdb/chunkcodec.py), so any chunk can be read
-- alone; `hash` is SHA-256 of the decoded bytes, checked by pushers before sending and by pullers
-- after receiving.
CREATE TABLE mvcdb.chunks (
    hash     bytea    PRIMARY KEY CHECK (length(hash) = 32),
    size     bigint   NOT NULL CHECK (size >= 0),
    codec    smallint NOT NULL CHECK (codec IN (0, 1, 2)),
    itemsize smallint NOT NULL DEFAULT 1 CHECK (itemsize BETWEEN 1 AND 64),
    data     bytea    NOT NULL
);
-- The payloads are already compressed: do not let TOAST try again.
ALTER TABLE mvcdb.chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- One row a version; `manifest` is the canonical msgpack document, the other columns are copies
-- of its fields for SQL. A version's rows are inserted in one transaction after all its chunks.
CREATE TABLE mvcdb.versions (
    id           text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
    model        text        NOT NULL,
    message      text        NOT NULL DEFAULT '',
    author       text        NOT NULL DEFAULT '',
    created_at   text        NOT NULL,              -- 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC)
    metadata     text        NOT NULL DEFAULT '{}', -- JSON text: query with metadata::jsonb
    params_bytes bigint      NOT NULL DEFAULT 0,
    manifest     bytea       NOT NULL,
    pushed_at    timestamptz NOT NULL DEFAULT now(),
    pushed_by    text        NOT NULL DEFAULT current_user
);
CREATE INDEX versions_model_created ON mvcdb.versions (model, created_at);

-- The lineage DAG (position 0 = first parent). Foreign keys are checked at commit, so a batch of
-- versions can be inserted in any order inside its transaction.
CREATE TABLE mvcdb.lineage (
    child    text    NOT NULL REFERENCES mvcdb.versions (id) DEFERRABLE INITIALLY DEFERRED,
    parent   text    NOT NULL REFERENCES mvcdb.versions (id) DEFERRABLE INITIALLY DEFERRED,
    position integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (child, position)
);
CREATE INDEX lineage_parent ON mvcdb.lineage (parent, child);

-- Scalar metrics (NaN is stored as 'NaN').
CREATE TABLE mvcdb.metrics (
    version_id text             NOT NULL REFERENCES mvcdb.versions (id) DEFERRABLE INITIALLY DEFERRED,
    name       text             NOT NULL,
    value      double precision NOT NULL,
    PRIMARY KEY (version_id, name)
);
CREATE INDEX metrics_name_value ON mvcdb.metrics (name, value);

-- The tensors of each version (kind 'param', 'traj' or 'traj_steps') ...
CREATE TABLE mvcdb.tensors (
    version_id text   NOT NULL REFERENCES mvcdb.versions (id) DEFERRABLE INITIALLY DEFERRED,
    kind       text   NOT NULL CHECK (kind IN ('param', 'traj', 'traj_steps')),
    name       text   NOT NULL,
    dtype      text   NOT NULL,
    shape      text   NOT NULL,                      -- JSON list of ints
    nbytes     bigint NOT NULL CHECK (nbytes >= 0),
    digest     text   NOT NULL,
    PRIMARY KEY (version_id, kind, name)
);
CREATE INDEX tensors_digest ON mvcdb.tensors (digest);

-- ... and their ordered chunks: the foreign key to chunks is what guarantees that a visible
-- version can always be pulled in full.
CREATE TABLE mvcdb.tensor_chunks (
    version_id text    NOT NULL,
    kind       text    NOT NULL,
    name       text    NOT NULL,
    seq        integer NOT NULL CHECK (seq >= 0),
    hash       bytea   NOT NULL REFERENCES mvcdb.chunks (hash),
    PRIMARY KEY (version_id, kind, name, seq),
    FOREIGN KEY (version_id, kind, name) REFERENCES mvcdb.tensors (version_id, kind, name)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX tensor_chunks_hash ON mvcdb.tensor_chunks (hash);

-- Movable names, like git refs: a push moves one only forward along the lineage (or with --force).
CREATE TABLE mvcdb.tags (
    name       text NOT NULL PRIMARY KEY,
    version_id text NOT NULL REFERENCES mvcdb.versions (id)
);

-- Every move of a remote tag: who pushed it, when, from where to where.
CREATE TABLE mvcdb.tag_history (
    seq     bigserial PRIMARY KEY,
    name    text NOT NULL,
    from_id text,                                    -- NULL: the tag was created
    to_id   text,                                    -- NULL: the tag was deleted
    author  text NOT NULL DEFAULT '',
    at      text NOT NULL,                           -- 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (UTC)
    forced  boolean NOT NULL DEFAULT false           -- moved with --force (not a fast-forward)
);
CREATE INDEX tag_history_name ON mvcdb.tag_history (name, seq);
