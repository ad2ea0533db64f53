"""The Database: one mvcdb file, and every operation the API offers on it.

Scripts, the CLI and the TUI all go through this class, so they never disagree. Heavier query
features (diff, lineage, SQL) live in their own modules and are reached through thin methods here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from . import checkpointer, inline, recording, schema
from .author import current_author
from .blobstore import BlobStore, tensor_digest
from .connection import (
    BUSY_MESSAGE,
    check_settings,
    checkpoint,
    connect,
    connect_immutable,
    default_path,
    is_busy,
    journal_mode,
    sniff,
    tune,
    write_transaction,
)
from .errors import (
    BusyError,
    DecodeError,
    IntegrityError,
    MvcdbError,
    NotAnMvcdbFileError,
    ReadOnlyError,
    RefError,
)
from .manifest import KINDS, ManifestTensor, version_id
from .manifest import decode as decode_manifest
from .manifest import encode as encode_manifest
from .models import (
    TagMove,
    TensorInfo,
    Version,
    VersionList,
    damaged,
    finish_pending,
    load_versions,
    tensor_infos,
)
from .refs import check_model_name, check_tag_name, name_list, ref_list, resolve_vid, tag_list
from .run import Run
from .serial import check_readable
from .tensors import from_storage, normalize_params, shape_json
from .timeutil import now_text, parse_text, parse_when, to_text
from .trajectory import STEP, aligned, from_mapping

if TYPE_CHECKING:
    from .compare import Comparison
    from .diff import Diff
    from .lineage import LineageTree
    from .maintenance import GcReport, Stats, VerifyReport
    from .merge import MergeReport
    from .remote.transfer import TransferReport
    from .remote.urls import Remote

#: progress(done, total, what): called by long operations (verify, gc, merge, export).
ProgressCallback = Callable[[int, int, str], None]

#: Versions with at most this many bytes of tensors are written in a single transaction.
SMALL_RECORD_BYTES = 1 << 20
#: How often record() stores its chunks again when a concurrent gc removed them meanwhile.
RECORD_ATTEMPTS = 3


class _ChunksVanished(MvcdbError):
    """Chunks written by this record were removed (by a concurrent gc) before its rows landed."""


#: What may name a parent: a ref string or a Version.
ParentRef = Union[str, Version]

#: How many decoded manifests (tensors by kind and name) a Database keeps, by version id.
MANIFEST_CACHE = 8
#: Larger manifests are decoded on each read instead (bounds the cache's memory).
MANIFEST_CACHE_BYTES = 4 << 20


def _row_matches(
    subject: str,
    expected: Mapping[str, ManifestTensor],
    kind: str,
    name: str,
    dtype: str,
    shape: str,
    nbytes: int,
) -> ManifestTensor:
    """The manifest's entry for a `tensors` row, after checking that the row's dtype, shape and
    size are the manifest's (IntegrityError naming the version and tensor if not)."""
    t = expected.get(name)
    if t is None:
        raise damaged(subject, f"{kind} {name!r} is not in its manifest")
    if (
        dtype != t.dtype
        or nbytes != t.nbytes
        or (shape != shape_json(t.shape) and not _same_shape(shape, t.shape))
    ):
        raise damaged(subject, f"{kind} {name!r}: its dtype, shape or size is not its manifest's")
    return t


def _moved_at(tag: str, text: str) -> datetime:
    """When a tag moved, from its tag_history row (IntegrityError if the stored time is damaged)."""
    try:
        return parse_text(text)
    except (ValueError, TypeError):
        raise damaged(f"tag {tag!r}", f"a move in its history has the unreadable time {text!r}") from None


def _same_shape(text: object, shape: tuple[int, ...]) -> bool:
    """Whether a stored shape (JSON text, perhaps spaced otherwise) is this shape."""
    try:
        return isinstance(text, str) and json.loads(text) == list(shape)
    except ValueError:
        return False


#: Model names record() has seen check_model_name() accept: a loop of record() calls matches its
#: name against the regex once, then looks it up (~4 us less a small record()). Cleared when full.
_VALID_MODEL_NAMES: set[str] = set()


def _checked_model_name(name: object) -> str:
    """check_model_name(name), remembering the names it accepted (a name's validity is a property
    of its text alone)."""
    if type(name) is str and name in _VALID_MODEL_NAMES:
        return name
    checked = check_model_name(name)
    if type(checked) is str:
        if len(_VALID_MODEL_NAMES) >= 1024:
            _VALID_MODEL_NAMES.clear()
        _VALID_MODEL_NAMES.add(checked)
    return checked


def resolve_model_args(
    model_name: str | None, model: Any, params: Mapping[str, Any] | None
) -> tuple[str, Mapping[str, Any] | None]:
    """Sort out record(name, ...), record(model="name", ...) and record(name, model=obj, ...)."""
    if isinstance(model, str):
        if model_name is not None and model_name != model:
            raise MvcdbError("the model name is given twice, differently")
        return model, params
    if model_name is None:
        raise MvcdbError("record() needs the model's name, e.g. record('linreg', params=...)")
    if model is None:
        return model_name, params
    if params is not None:
        raise MvcdbError("pass either params= or model=<framework object>, not both")
    from .frameworks import params_from_object

    return model_name, params_from_object(model)


def as_path(value: object, what: str) -> Path:
    """A file path argument (str, bytes or os.PathLike) as a Path; MvcdbError for anything else."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, (str, os.PathLike)):
        raise MvcdbError(f"{what} must be a file path, got {type(value).__name__}")
    return Path(value)


class _ClosedConnection:
    """What a closed Database reads through: any use raises the same clear MvcdbError that
    writes raise (not sqlite3's ProgrammingError from wherever the read happened)."""

    def __getattr__(self, name: str) -> Any:
        raise MvcdbError("the database is closed")


class Database:
    """An open mvcdb file. Use as a context manager, or call close() to checkpoint and release it."""

    def __init__(
        self,
        path: str | bytes | os.PathLike[str] | None = None,
        *,
        readonly: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        self.path = as_path(path, "path") if path is not None else default_path()
        self._manifests: dict[str, dict[str, dict[str, ManifestTensor]]] = {}
        self._manifest_lock = threading.Lock()
        check_settings()
        wanted_chunk_size = schema.valid_chunk_size(chunk_size) if isinstance(chunk_size, int) else None
        if chunk_size is not None and wanted_chunk_size is None:  # before any file is touched
            raise MvcdbError(
                f"chunk_size must be a whole number of bytes from 4 KiB to 512 MiB, got {chunk_size!r}"
            )
        kind = sniff(self.path)
        if kind == "missing" and readonly:
            raise MvcdbError(f"{self.path} does not exist")
        #: Why writes are refused (ReadOnlyError's message), when they are.
        self._readonly_why = f"{self.path} is open read-only; it cannot be written"
        if not readonly and kind != "missing":
            readonly = self._cannot_write(kind)
        if not readonly and kind == "missing":
            parent = self.path.parent.resolve()
            if not parent.is_dir():
                raise MvcdbError(f"cannot create {self.path}: no directory {self.path.parent}")
            if not os.access(parent, os.W_OK):
                raise MvcdbError(f"cannot create {self.path}: the directory is not writable")
        self.readonly = readonly
        self.conn = self._open_connection(readonly)
        try:
            state = schema.classify(self.conn)
            if state == "new":
                if readonly:
                    raise NotAnMvcdbFileError("an empty database, not an mvcdb file")
                schema.initialize(self.conn)
            else:
                schema.check_version(self.conn)
                if not readonly:
                    tune(self.conn, readonly=False)
                    schema.migrate(self.conn)
                    schema.refresh_views(self.conn)
                else:
                    schema.read_older(self.conn)
            if state == "new":
                tune(self.conn, readonly=False)
            meta = schema.read_meta(self.conn)
        except NotAnMvcdbFileError as exc:
            self.conn.close()
            raise NotAnMvcdbFileError(f"{self.path}: {exc}") from None
        except BaseException:
            self.conn.close()
            raise
        self.chunk_size = wanted_chunk_size or schema.file_chunk_size(meta)
        self.store = BlobStore(self.conn, self.chunk_size)
        self._closed = False
        if not self.readonly and journal_mode() == "WAL":
            checkpointer.start(self.conn, str(self.path.resolve()))
        if meta.get("lazy_remote"):  # a lazy clone: restore fetches parameter chunks on demand
            from .remote.transfer import attach_lazy_fetcher

            attach_lazy_fetcher(self)

    def _cannot_write(self, kind: str) -> bool:
        """Whether an existing file must be opened read-only because it cannot be written: the
        file is not writable for us, or its directory is not (SQLite writes through -wal/-shm or a
        -journal it creates beside the file). Sets the reason writes will be refused with."""
        if not os.access(self.path, os.W_OK):
            self._readonly_why = (
                f"{self.path} is read-only for you (no write permission); it cannot be written"
            )
            return True
        directory = self.path.resolve().parent
        if os.access(directory, os.W_OK):
            return False
        if kind == "empty":  # nothing to browse, and no schema can be written into it
            raise MvcdbError(f"cannot create {self.path}: the directory is not writable")
        self._readonly_why = (
            f"{self.path} cannot be written (open read-only): its directory {directory} is not writable,"
            " so SQLite cannot create the file's -wal/-shm (or -journal) beside it"
        )
        return True

    def _open_connection(self, readonly: bool) -> sqlite3.Connection:
        conn = connect(self.path, readonly=readonly)
        if readonly:
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                conn.close()
                if is_busy(exc):  # another process holds the file exclusively: its committed
                    raise BusyError(BUSY_MESSAGE) from None  # pages may be where we cannot read
                conn = connect_immutable(self.path)  # read-only media: no -shm can be created
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise NotAnMvcdbFileError(f"{self.path}: not a readable SQLite database ({exc})") from None
            tune(conn, readonly=True)
        return conn

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint the WAL into the main file (so the .db can be copied alone) and close."""
        if self._closed:
            return
        self._closed = True
        finish_pending(self.conn)  # long VersionLists still reading: build them while we can
        self.store.close()
        if not self.readonly:
            checkpoint(self.conn)  # waits briefly at most: with others busy, the last closer does it
        self.conn.close()
        self.conn = self.store.conn = cast(sqlite3.Connection, _ClosedConnection())

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mvcdb.Database {str(self.path)!r}{' read-only' if self.readonly else ''}>"

    def _check_writable(self) -> None:
        if self._closed:
            raise MvcdbError("the database is closed")
        if self.readonly:
            raise ReadOnlyError(self._readonly_why)

    # -- refs ----------------------------------------------------------------------------------

    def resolve(self, ref: ParentRef) -> str:
        """The full id of the version a ref names (raises RefError)."""
        return self._id_of(self._vid(ref))

    def _vid(self, ref: ParentRef) -> int:
        if isinstance(ref, Version):
            ref = ref.id
        return resolve_vid(self.conn, ref)

    def _id_of(self, vid: int) -> str:
        return str(self.conn.execute("SELECT id FROM versions WHERE vid = ?", (vid,)).fetchone()[0])

    # -- recording -----------------------------------------------------------------------------

    def record(
        self,
        model_name: str | None = None,
        /,
        params: Mapping[str, Any] | None = None,
        *,
        model: Any = None,
        metrics: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        trajectory: Mapping[str, Any] | None = None,
        parent: ParentRef | None = None,
        parents: Iterable[ParentRef] | None = None,
        message: str = "",
        tags: Iterable[str] = (),
    ) -> Version:
        """Record a new immutable version of `model` and return it.

        Args:
            model_name: the model's name, e.g. "linreg" (may also be given as model="linreg").
            params: named arrays or numbers; nested dicts flatten to dotted names.
            model: the model's name as a string, or a framework object (PyTorch module or
                state_dict, Keras model, fitted scikit-learn estimator) whose parameters to record.
            metrics: name -> real number (NaN and inf allowed).
            metadata: any JSON-serializable dict (training set, validation set, hyper-parameters).
            trajectory: {"step": ints, name: array with a leading step axis, ...}.
            parent / parents: the version(s) this one descends from (refs or Versions).
            message: a free-text description.
            tags: tag names to point at the new version.

        Raises:
            MvcdbError: on invalid input (nothing is written); RefError for unknown parents.
        """
        name, params = resolve_model_args(model_name, model, params)
        if model is not None and not isinstance(model, str):  # a framework object
            from .frameworks import metadata_for

            metadata = metadata_for(model, metadata)
        traj = from_mapping(trajectory) if trajectory is not None else None
        return self._record(
            name,
            params,
            metrics=metrics,
            metadata=metadata,
            trajectory=traj,
            trajectory_steps={},
            parent=parent,
            parents=parents,
            message=message,
            tags=tags,
        )

    def _record(
        self,
        model: str,
        params: Mapping[str, Any] | None,
        *,
        metrics: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        trajectory: Mapping[str, np.ndarray] | None,
        trajectory_steps: Mapping[str, np.ndarray],
        parent: ParentRef | None,
        parents: Iterable[ParentRef] | None,
        message: str,
        tags: Iterable[str],
    ) -> Version:
        self._check_writable()
        _checked_model_name(model)
        recording.check_message(message)
        tag_names = [] if type(tags) is tuple and not tags else tag_list(tags)  # () by default
        arrays = normalize_params(params)
        metric_values = recording.normalize_metrics(metrics)
        meta_text = recording.metadata_json(metadata)
        if parent is not None and parents is not None:
            raise MvcdbError("pass either parent= or parents=, not both")
        parent_refs = [parent] if parent is not None else ref_list(parents, "parents")
        params_size = sum([a.nbytes for a in arrays.values()])  # = the stored tensors' nbytes
        logical = params_size + (sum([a.nbytes for a in trajectory.values()]) if trajectory else 0)
        # A small version is written in one transaction (one commit instead of two; its parent
        # lookups need no read transaction of their own); a large one stores its chunks in short
        # transactions first so other writers are never held up long.
        with write_transaction(self.conn) if logical <= SMALL_RECORD_BYTES else nullcontext():
            found = [self._parent(p) for p in parent_refs]
            parent_vids = [vid for vid, _ in found]
            if len(set(parent_vids)) != len(parent_vids):
                raise MvcdbError("the same parent is named twice")
            parent_ids = [id_ for _, id_ in found]
            for attempt in range(1, RECORD_ATTEMPTS + 1):
                try:
                    return self._store_and_insert(
                        model,
                        arrays,
                        trajectory,
                        trajectory_steps,
                        base=parent_vids[0] if parent_vids else None,
                        parent_vids=parent_vids,
                        parent_ids=parent_ids,
                        message=message,
                        metric_values=metric_values,
                        meta_text=meta_text,
                        tag_names=tag_names,
                        params_size=params_size,
                    )
                except _ChunksVanished:
                    if attempt == RECORD_ATTEMPTS:  # a gc keeps racing us: give up clearly
                        raise MvcdbError(
                            f"chunks vanished during the write {RECORD_ATTEMPTS} times (a concurrent"
                            " gc?); record again"
                        ) from None
        raise AssertionError("unreachable")

    def _parent(self, ref: ParentRef) -> tuple[int, str]:
        """(vid, id) of a parent ref; a Version or full id (the usual case) takes one lookup."""
        text = ref.id if isinstance(ref, Version) else ref
        if isinstance(text, str) and len(text) == 64:
            row = self.conn.execute("SELECT vid, id FROM versions WHERE id = ?", (text.lower(),)).fetchone()
            if row is not None:
                return int(row[0]), str(row[1])
        vid = self._vid(ref)
        return vid, self._id_of(vid)

    def _store_and_insert(
        self,
        model: str,
        arrays: Mapping[str, np.ndarray],
        trajectory: Mapping[str, np.ndarray] | None,
        trajectory_steps: Mapping[str, np.ndarray],
        *,
        base: int | None,
        parent_vids: Sequence[int],
        parent_ids: Sequence[str],
        message: str,
        metric_values: Mapping[str, float],
        meta_text: str,
        tag_names: Sequence[str],
        params_size: int,
    ) -> Version:
        """Store the tensors, then insert the version's rows; params_size: the params' nbytes."""
        stored = recording.store_tensors(self.store, "param", arrays, base=base)
        if trajectory:
            stored.update(recording.store_tensors(self.store, "traj", trajectory, base=base))
            stored.update(recording.store_tensors(self.store, "traj_steps", trajectory_steps, base=base))
        author = current_author()
        created_at = now_text()
        manifest = encode_manifest(
            model=model,
            parents=parent_ids,
            message=message,
            author=author,
            created_at=created_at,
            metadata=meta_text,
            metrics=metric_values,
            # plain tuples: ~0.8 us less a tensor than as_manifest()'s ManifestTensor
            tensors=[
                (kind, name, t.dtype, t.shape, t.nbytes, t.hashes) for (kind, name), t in stored.items()
            ],
        )
        check_readable(manifest, "this version (its metadata, or its list of tensors and chunks)")
        vid_hex = version_id(manifest)
        transaction = write_transaction(self.conn)
        with transaction:  # (joined by a small record: its chunks are in it, none can vanish)
            if transaction.began and self._missing_chunks(stored.values()):
                raise _ChunksVanished()  # a concurrent gc removed our chunks: store them again
            vid, new = recording.insert_version(
                self.conn,
                vid_of_parents=parent_vids,
                version_id_=vid_hex,
                manifest=manifest,
                model=model,
                message=message,
                author=author,
                created_at=created_at,
                metadata=meta_text,
                metrics=metric_values,
                tensors=stored,
                params_size=params_size,
            )
            for name in tag_names:
                self._set_tag(name, vid, vid_hex, author, created_at)
        if not new:  # the same content was recorded before: it may carry other tags
            return self.get(vid_hex)
        return recording.new_version(
            vid_hex,
            model=model,
            parent_ids=parent_ids,
            metrics=metric_values,
            metadata=meta_text,
            message=message,
            author=author,
            created_at=created_at,
            tags=tag_names,
            tensors=stored,
            params_size=params_size,
        )

    def _missing_chunks(self, tensors: Iterable[Any]) -> int:
        # compare hashes, not just ids: a cid freed by gc can be reused by another writer's chunk
        pairs = {(c, h) for t in tensors if t.data is None for c, h in zip(t.cids, t.hashes, strict=True)}
        if not pairs:
            return 0
        found = dict(
            self.conn.execute(
                "SELECT cid, hash FROM chunks WHERE cid IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted({c for c, _ in pairs})),),
            )
        )
        return sum(1 for c, h in pairs if found.get(c) != h)

    @contextmanager
    def batch(self) -> Iterator[Database]:
        """Group many records into one transaction: `with db.batch(): for ...: db.record(...)`.

        Every version recorded inside appears at once when the block ends, or none does if it
        raises. A commit costs ~0.5 ms of page writes, so a sweep of small versions records
        several times faster this way. Other writers wait for the block: keep it to seconds.
        """
        self._check_writable()
        with write_transaction(self.conn):
            yield self

    def run(
        self,
        model: str,
        *,
        parent: ParentRef | None = None,
        parents: Iterable[ParentRef] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message: str = "",
        tags: Iterable[str] = (),
    ) -> Run:
        """Start a training run: `with db.run("linreg", parent=v) as run: run.log(step, loss=l)`."""
        self._check_writable()
        check_model_name(model)
        recording.metadata_json(metadata)  # fail now, not after hours of training
        if parent is not None and parents is not None:
            raise MvcdbError("pass either parent= or parents=, not both")
        parent_refs = ref_list(parents, "parents") if parents is not None else None  # as record() reads it
        for p in [parent] if parent is not None else parent_refs or []:
            self._vid(p)
        return Run(
            self, model, parent=parent, parents=parent_refs, metadata=metadata, message=message, tags=tags
        )

    # -- reading -------------------------------------------------------------------------------

    def get(self, ref: ParentRef) -> Version:
        """The Version a ref names."""
        vid = self._vid(ref)
        found = load_versions(self.conn, [vid])
        if not found:  # removed by another process between the lookup and the read
            raise RefError(
                f"version #{vid} ({ref if isinstance(ref, str) else ref.id!r}) is no longer in the file"
            )
        return found[0]

    def tensors(self, ref: ParentRef, kind: str = "param") -> list[TensorInfo]:
        """Name, dtype, shape, size and content digest of each stored tensor (no bytes read),
        each row checked against the version's manifest (IntegrityError if the file is damaged).
        kind: "param" (parameters), "traj" (logged series) or "traj_steps" (their own steps)."""
        if kind not in KINDS:
            raise MvcdbError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        vid = self._vid(ref)
        rows = self.conn.execute(
            "SELECT kind, name, dtype, shape, nbytes, digest FROM tensors"
            " WHERE vid = ? AND kind = ? ORDER BY name",
            (vid, kind),
        ).fetchall()
        subject, expected = self._manifest_tensors(vid, kind)
        self._check_names(subject, kind, expected, {r[1] for r in rows}, None)
        for _, name, dtype, shape, nbytes, digest in rows:
            t = _row_matches(subject, expected, kind, name, dtype, shape, nbytes)
            if digest != tensor_digest(t.dtype, t.shape, t.hashes):
                raise damaged(subject, f"{kind} {name!r}: its digest is not its manifest's")
        return tensor_infos(rows)

    def _manifest_tensors(self, vid: int, kind: str) -> tuple[str, dict[str, ManifestTensor]]:
        """'version <short id>' and the tensors of one kind its manifest names, by name.

        What every read of a version's tensors checks its rows against: the manifest is what the
        version id hashes, so rows that disagree with it (another version's chunk, a forged dtype
        or shape) are damage, never data. Decoded manifests are kept by id (MANIFEST_CACHE): show
        and diff read a version's tensors one at a time.
        """
        row = self.conn.execute("SELECT id, manifest FROM versions WHERE vid = ?", (vid,)).fetchone()
        if row is None:
            raise RefError(f"version #{vid} is no longer in the file")
        vid_hex = str(row[0])
        subject = f"version {vid_hex[:12]}"
        cached = self._manifests.get(vid_hex)
        if cached is None:
            blob = row[1] if isinstance(row[1], bytes) else b""
            if version_id(blob) != vid_hex:
                raise damaged(subject, "its manifest does not hash to its id")
            try:
                manifest = decode_manifest(blob)
            except DecodeError as exc:
                raise damaged(subject, f"its manifest cannot be read ({exc})") from None
            cached = {}
            for t in manifest.tensors:
                cached.setdefault(t.kind, {})[t.name] = t
            if len(blob) <= MANIFEST_CACHE_BYTES:
                with self._manifest_lock:
                    while len(self._manifests) >= MANIFEST_CACHE:
                        del self._manifests[next(iter(self._manifests))]
                    self._manifests[vid_hex] = cached
        return subject, cached.get(kind, {})

    @staticmethod
    def _check_names(
        subject: str,
        kind: str,
        expected: Mapping[str, ManifestTensor],
        present: set[str],
        names: Sequence[str] | None,
    ) -> None:
        """The rows present are the tensors the manifest names (or, with names, those named are
        there): a missing row is damage, a name the version never had is the caller's mistake."""
        for name in expected if names is None else names:
            if name not in present:
                if name in expected:
                    raise damaged(subject, f"{kind} {name!r} named by its manifest has no row")
                raise MvcdbError(f"no {'parameter' if kind == 'param' else 'series'} named {name!r}")

    def _chunks_of(self, subject: str, vid: int, t: ManifestTensor) -> list[tuple[int, int]]:
        """(cid, size) of each chunk of a chunked tensor, in order, checked to be the chunks its
        manifest names (each chunk's bytes are then checked against its hash as it is read)."""
        rows = self.conn.execute(
            "SELECT tc.cid, c.size, c.hash FROM tensor_chunks tc LEFT JOIN chunks c ON c.cid = tc.cid"
            " WHERE tc.vid = ? AND tc.kind = ? AND tc.name = ? ORDER BY tc.seq",
            (vid, t.kind, t.name),
        ).fetchall()
        if len(rows) != len(t.hashes) or any(r[2] != h for r, h in zip(rows, t.hashes, strict=False)):
            if any(r[2] is None for r in rows):
                raise damaged(subject, f"{t.kind} {t.name!r}: a chunk it uses is missing")
            raise damaged(
                subject, f"{t.kind} {t.name!r}: its chunks' hashes are not the ones its manifest names"
            )
        return [(r[0], r[1]) for r in rows]

    def _checked_row(self, vid: int, kind: str, name: str) -> tuple[str, ManifestTensor, bytes | None]:
        """'version <short id>', one tensor's manifest entry (its row checked against it) and its
        in-row bytes (None when chunked): what streaming reads (diff, norms) start from."""
        row = self.conn.execute(
            "SELECT dtype, shape, nbytes, data FROM tensors WHERE vid = ? AND kind = ? AND name = ?",
            (vid, kind, name),
        ).fetchone()
        subject, expected = self._manifest_tensors(vid, kind)
        self._check_names(subject, kind, expected, set() if row is None else {name}, [name])
        return subject, _row_matches(subject, expected, kind, name, *row[:3]), row[3]

    @staticmethod
    def _empty(subject: str, t: ManifestTensor) -> np.ndarray:
        """An uninitialised flat array of the tensor's size to decode its bytes into."""
        try:  # sizes come from the file: a hostile one must not crash us or exhaust memory
            return np.empty(t.nbytes, dtype=np.uint8)
        except (MemoryError, ValueError):
            raise IntegrityError(
                f"{subject}: {t.kind} {t.name!r} claims {t.nbytes} bytes: too large to restore"
            ) from None

    @staticmethod
    def _as_tensor(subject: str, t: ManifestTensor, flat: np.ndarray) -> np.ndarray:
        try:
            return from_storage(flat, t.dtype, t.shape)
        except (ValueError, TypeError) as exc:
            raise damaged(
                subject, f"{t.kind} {t.name!r}: dtype and shape do not fit its bytes ({exc})"
            ) from None

    def _read_kind(self, vid: int, kind: str, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The tensors of one kind of a version (or those named), each checked against the
        version's manifest: its dtype, shape and size, and the chunks (or in-row bytes) used."""
        rows = self.conn.execute(
            "SELECT name, dtype, shape, nbytes, data FROM tensors WHERE vid = ? AND kind = ? ORDER BY name",
            (vid, kind),
        ).fetchall()
        subject, expected = self._manifest_tensors(vid, kind)
        self._check_names(subject, kind, expected, {r[0] for r in rows}, names)
        if names is not None:
            wanted = set(names)
            rows = [r for r in rows if r[0] in wanted]
        jobs: list[tuple[ManifestTensor, np.ndarray, list[int]]] = []
        for name, dtype, shape, nbytes, data in rows:
            t = _row_matches(subject, expected, kind, name, dtype, shape, nbytes)
            flat = self._empty(subject, t)
            if data is not None:  # a tiny tensor kept in its row (mvcdb/inline.py)
                inline.read_into(f"{subject}: {kind} {name!r}", data, t.hashes, flat)
                jobs.append((t, flat, []))
            else:
                jobs.append((t, flat, [cid for cid, _ in self._chunks_of(subject, vid, t)]))
        # the chunked ones in one pipeline: all cores busy
        try:
            self.store.read_many([(cids, flat) for _, flat, cids in jobs if cids])
        except IntegrityError as exc:
            raise IntegrityError(f"{subject}: {exc}") from None
        return {t.name: self._as_tensor(subject, t, flat) for t, flat, _ in jobs}

    def restore(
        self, ref: ParentRef, names: Sequence[str] | None = None, *, into: Any = None
    ) -> dict[str, np.ndarray]:
        """The parameters of a version, bit-identical to what was recorded (dtype, shape, bytes).

        Every chunk is checked on the way out (see blobstore.CHECK): damage raises IntegrityError,
        never wrong numbers.
        With into=<framework object> the parameters are also loaded into it (shapes and dtypes
        checked first; the first mismatch is named in the error).
        """
        vid = self._vid(ref)
        wanted = None if names is None else name_list(names, "names", "parameter")  # one string: one name
        params = self._read_kind(vid, "param", wanted)
        if into is not None:
            from .frameworks import load_into

            # (its metadata: scikit-learn checks the recorded class and sets non-numeric state)
            load_into(into, params, partial=names is not None, metadata=self.get(self._id_of(vid)).metadata)
        return params

    def trajectory(self, ref: ParentRef) -> dict[str, np.ndarray]:
        """The per-iteration series of a version: {"step": ..., name: values aligned with step}.

        A series logged at only some steps is spread onto the step axis with NaN where missing;
        series(ref, name) gives its own steps and values exactly.
        """
        vid = self._vid(ref)
        series = self._read_kind(vid, "traj")
        if not series:
            return {}
        own = self._read_kind(vid, "traj_steps")
        steps = series[STEP]
        return {STEP: steps, **{n: aligned(steps, v, own.get(n)) for n, v in series.items() if n != STEP}}

    def series(self, ref: ParentRef, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one logged series, exactly as logged."""
        vid = self._vid(ref)
        values = self._read_kind(vid, "traj", [name])[name]
        own = self._read_kind(vid, "traj_steps")
        steps = own[name] if name in own else self._read_kind(vid, "traj", [STEP])[STEP]
        return steps, values

    def models(self) -> list[str]:
        """Every model name in the file, sorted."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT model FROM versions ORDER BY model")]

    def versions(
        self,
        model: str | None = None,
        *,
        tag: str | None = None,
        author: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        where: str | Iterable[str] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> VersionList:
        """Versions matching every filter given, newest first unless order_by says otherwise.

        Returns a read-only, list-like VersionList that builds long results in batches as they
        are used (slices are plain lists; `list(...)` copies).

        Args:
            model / tag / author: exact matches.
            since / until: datetimes, ISO-8601 strings (UTC if naive), or '30m', '12h', '7d', '2w' ago.
            where: conditions like "metrics.val_loss < 0.2" or "metadata.train_set = 'a.csv'".
            order_by: "created_at", "metrics.NAME", "metadata.PATH", "model"; prefix '-' for
                descending (metrics sort ascending by default: best loss first).
            limit: at most this many.
            offset: skip this many first (paging, as the TUI does on scroll).
        """
        from .filters import select_vids

        vids = select_vids(
            self.conn,
            model=model,
            tag=tag,
            author=author,
            since=to_text(parse_when(since, "since")) if since is not None else None,
            until=to_text(parse_when(until, "until")) if until is not None else None,
            where=where,
            order_by=order_by,
            limit=limit,
            offset=offset,
        )
        return VersionList(self.conn, vids)

    def children(self, ref: ParentRef) -> list[str]:
        """Ids of the versions that name this one as a parent, oldest first."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT v.id FROM lineage l JOIN versions v ON v.vid = l.child"
                " WHERE l.parent = ? ORDER BY v.created_at, v.vid",
                (self._vid(ref),),
            )
        ]

    # -- tags ----------------------------------------------------------------------------------

    def tag(self, ref: ParentRef, name: str) -> Version:
        """Point tag `name` at a version (creating or moving it); the move is kept in history."""
        self._check_writable()
        check_tag_name(name)
        vid = self._vid(ref)
        vid_hex = self._id_of(vid)
        with write_transaction(self.conn):
            self._set_tag(name, vid, vid_hex, current_author(), now_text())
        return self.get(vid_hex)

    def _set_tag(self, name: str, vid: int, vid_hex: str, author: str, at: str) -> None:
        row = self.conn.execute(
            "SELECT t.vid, v.id FROM tags t JOIN versions v ON v.vid = t.vid WHERE t.name = ?", (name,)
        ).fetchone()
        if row is not None and row[0] == vid:
            return
        self.conn.execute(
            "INSERT INTO tags (name, vid) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET vid = excluded.vid",
            (name, vid),
        )
        self._log_tag(name, row[1] if row else None, vid_hex, author, at)

    def _log_tag(self, name: str, from_id: str | None, to_id: str | None, author: str, at: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO tag_history (name, from_id, to_id, author, at) VALUES (?, ?, ?, ?, ?)",
            (name, from_id, to_id, author, at),
        )

    def untag(self, name: str) -> None:
        """Delete a tag (its history stays)."""
        self._check_writable()
        with write_transaction(self.conn):
            row = self.conn.execute(
                "SELECT v.id FROM tags t JOIN versions v ON v.vid = t.vid WHERE t.name = ?", (name,)
            ).fetchone()
            if row is None:
                raise RefError(f"no tag named {name!r}")
            self.conn.execute("DELETE FROM tags WHERE name = ?", (name,))
            self._log_tag(name, row[0], None, current_author(), now_text())

    def tags(self) -> dict[str, str]:
        """Every tag and the full id it points at."""
        return dict(
            self.conn.execute(
                "SELECT t.name, v.id FROM tags t JOIN versions v ON v.vid = t.vid ORDER BY t.name"
            ).fetchall()
        )

    def tag_history(self, name: str | None = None) -> list[TagMove]:
        """Every move of a tag (or of all tags), oldest first."""
        query = "SELECT name, from_id, to_id, author, at FROM tag_history"
        params: tuple[str, ...] = ()
        if name is not None:
            query += " WHERE name = ?"
            params = (name,)
        return [
            TagMove(name=r[0], from_id=r[1], to_id=r[2], author=r[3], at=_moved_at(r[0], r[4]))
            for r in self.conn.execute(query + " ORDER BY at, seq", params)
        ]

    # -- queries (mvcdb/diff.py, mvcdb/lineage.py, mvcdb/compare.py, mvcdb/sqlquery.py) ---------

    def diff(self, a: ParentRef, b: ParentRef) -> Diff:
        """What changed from version a to version b: metadata, metrics, parameters, trajectory."""
        from .diff import diff_versions

        return diff_versions(self, a, b)

    def ancestors(self, ref: ParentRef, *, limit: int | None = None) -> VersionList:
        """Every version ref descends from, nearest first (all parents, not just first parents)."""
        from .lineage import ancestors

        return ancestors(self, ref, limit=limit)

    def descendants(self, ref: ParentRef, *, limit: int | None = None) -> VersionList:
        """Every version that descends from ref, nearest first."""
        from .lineage import descendants

        return descendants(self, ref, limit=limit)

    def lineage(
        self, ref: ParentRef | None = None, *, model: str | None = None, depth: int | None = None
    ) -> LineageTree:
        """The DAG around ref (ancestors and descendants), or a whole model's forest; str() draws it."""
        from .lineage import lineage

        return lineage(self, ref, model=model, depth=depth)

    def merge_base(self, a: ParentRef, b: ParentRef) -> Version | None:
        """The nearest common ancestor of a and b (None if their histories never meet)."""
        from .lineage import merge_base

        return merge_base(self, a, b)

    def compare(
        self,
        refs: Iterable[ParentRef],
        metrics: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> Comparison:
        """A leaderboard: one row a version, one column a metric or metadata field."""
        from .compare import compare

        return compare(self, refs, metrics=metrics, fields=fields)

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] = (), *, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Run a read-only SQL query (views and mvcdb's SQL functions available); rows as dicts.
        timeout: seconds after which a query still running stops with MvcdbError."""
        from .sqlquery import run_sql

        return run_sql(self, query, params, timeout=timeout)

    # -- upkeep and sharing (mvcdb/maintenance.py, mvcdb/merge.py) --------------------------------

    def stats(self) -> Stats:
        """Counts, file size, and logical vs stored bytes (the dedup and compression ratio)."""
        from .maintenance import stats

        return stats(self)

    def verify(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Check everything: SQLite integrity, every chunk re-hashed, manifests, lineage, ids."""
        from .maintenance import verify

        return verify(self, progress=progress)

    def gc(self, progress: ProgressCallback | None = None) -> GcReport:
        """Delete chunks no version references, then compact the file."""
        from .maintenance import gc

        return gc(self, progress=progress)

    def rm(self, ref: ParentRef, *, force: bool = False) -> str:
        """Delete a version that has no children (force: even with children); return its id."""
        from .maintenance import rm

        finish_pending(self.conn)  # long VersionLists being read become snapshots before rows go
        return rm(self, ref, force=force)

    def merge(
        self,
        other: str | os.PathLike[str],
        *,
        theirs: bool = False,
        progress: ProgressCallback | None = None,
    ) -> MergeReport:
        """Copy every version, chunk, tag and tag move of another mvcdb file that this one lacks."""
        from .merge import merge

        return merge(self, as_path(other, "the file to merge"), theirs=theirs, progress=progress)

    def export(
        self,
        refs: Iterable[ParentRef],
        path: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> MergeReport:
        """Write a small self-contained .db with the chosen versions and all their ancestors."""
        from .merge import export

        return export(self, ref_list(refs, "refs"), as_path(path, "the bundle path"), progress=progress)

    # -- team remotes (mvcdb/remote/) ------------------------------------------------------------

    def push(
        self,
        remote: str | None = None,
        refs: Iterable[str] | None = None,
        *,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> TransferReport:
        """Send a PostgreSQL remote (name, URL, or None for origin) the versions, chunks and tags it lacks.

        refs: what to push (with ancestors; tags named are pushed too), None = everything.
        A remote tag moves only forward along the lineage unless force; refusals raise
        PushRejectedError after everything else is pushed.
        """
        from .remote.transfer import push

        return push(self, remote, refs, force=force, progress=progress)

    def pull(
        self,
        remote: str | None = None,
        refs: Iterable[str] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> TransferReport:
        """Copy in what a PostgreSQL remote (name or URL) has and this file lacks (refs: what)."""
        from .remote.transfer import pull

        return pull(self, remote, refs, progress=progress)

    def fetch(
        self, refs: Iterable[str] | None = None, *, progress: ProgressCallback | None = None
    ) -> TransferReport:
        """In a lazy clone, fetch the parameters not fetched yet (of the versions refs name, or of
        every version) from its remote, so that restoring them works offline. Elsewhere a no-op."""
        from .remote.transfer import fetch

        return fetch(self, None if refs is None else ref_list(refs, "refs"), progress=progress)

    def remotes(self) -> list[Remote]:
        """The team remotes this file pushes to and pulls from, by name (URLs hold no password)."""
        from .remote import urls

        return urls.list_remotes(self.conn)

    def add_remote(self, name: str, url: str) -> Remote:
        """Store remote `name` at a PostgreSQL `url` (a password in it is removed: libpq's
        PGPASSWORD, ~/.pgpass or a service file supply it when connecting)."""
        from .remote import urls

        self._check_writable()
        return urls.add(self.conn, name, url)

    def remove_remote(self, name: str) -> None:
        """Forget remote `name` (nothing on the server changes)."""
        from .remote import urls

        self._check_writable()
        urls.remove(self.conn, name)
