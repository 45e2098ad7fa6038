"""Moving a ledger: ``wattwise ledger export`` and ``wattwise ledger import``.

The format is JSON Lines (UTF-8), gzip-compressed when the file name ends in ``.gz``:

* line 1, the header: ``{"format": "wattwise-ledger", "version": 1, "exported_at": ...,
  "tool_version": ..., "source": ..., "runs": N}``;
* one line per run: ``{"type": "run", "run": {column: value}, "components": [...],
  "metrics": [[step, key, value, logged_at], ...], "samples": [[t_s, component, power_w,
  energy_j], ...], "annotations": [{"key", "value", "append", "written_at"}], "artifacts":
  [{"name", "sha256", "size_bytes", "created_at", "content_b64"}], "reuse": [event, ...]}``;
  ``reuse`` holds the cache hits this run consumed;
* one ``{"type": "reuse", "event": {...}}`` line per cache hit outside any run of the ledger.

It is lossless: every column of every table is written as stored (times as Unix seconds,
floats as Python's shortest exact repr), annotations apart from the record they merge into,
artifacts as base64 with their sha256. Ids are global: run ids are random UUIDs
(``uuid4().hex``, 122 random bits) given when a run starts, so the same id in two ledgers
is the same run, and an import can merge a colleague's ledger into one's own. Cache hits
have no id; one is the same hit as another when every field is equal.

Import is idempotent: a run the ledger already has is updated only when the file holds a
later state of it (a newer ``heartbeat_at``: its columns, components, metrics and samples
are replaced by the file's); annotations, artifacts and cache hits are added when missing.
Importing the same file twice, or a colleague's ledger that shares runs, adds nothing twice.

Text follows the ledger's rule (:mod:`wattwise.store._records`): every text is valid
Unicode, a lone surrogate (``os.fsdecode`` of bytes that are not UTF-8) written as the
escape that shows it (``\\xNN`` or ``\\uDXXX``). A ledger already holds its text that way,
so an export carries the escaped text; a file that holds a lone surrogate all the same (the
JSON escape ``"\\udcff"``, from another tool or a backend that kept it) is imported with the
same escapes, so ``"a\\udcff"`` is the run name ``a\\xff`` whichever way it came in, and an
export never fails on such text: it writes the escape.

The file is untrusted input: it is parsed as JSON only (never unpickled), every field is
checked for its type, artifacts for their sha256, and a bad line stops the import with one
line naming the line and the field. Runs are written in batches of whole runs, each batch
one transaction; what came before a bad line stays imported, and importing the fixed file
again adds only the rest.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from wattwise.exceptions import StoreError, WattwiseError
from wattwise.store._model import ComponentEnergy, RunRecord, RunStatus, job_id_of
from wattwise.store._records import valid
from wattwise.store._reuse import ReuseEvent

if TYPE_CHECKING:
    import sqlite3

    from wattwise.store._sqlite import SQLiteRunStore

FORMAT = "wattwise-ledger"
VERSION = 1
#: The names ``wattwise.store`` exports them under.
EXPORT_FORMAT, EXPORT_VERSION = FORMAT, VERSION
#: Runs written per transaction on import: a writer waiting for the ledger (a tracked run
#: flushing) waits for one batch at most, never for the whole import.
BATCH_RUNS = 200
#: Rows (metrics, samples) per batch, whichever limit comes first.
BATCH_ROWS = 200_000

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: A JSON escape of a surrogate (a lone one, or half of a pair): the line may need
#: :func:`~wattwise.store._records.valid` (most lines have none and are not walked).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_COLUMNS = ("tags", "params", "record")
_STATUSES = frozenset(s.value for s in RunStatus)
_NUMBER = (int, float)
#: Type of each run column the format knows: (python types, nullable).
_RUN_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), False),
    "name": ((str,), False),
    "kind": ((str,), False),
    "status": ((str,), False),
    "parent_id": ((str,), True),
    "study_id": ((str,), True),
    "started_at": ((int, float), False),
    "ended_at": ((int, float), True),
    "heartbeat_at": ((int, float), False),
    "duration_s": ((int, float), False),
    "exit_code": ((int,), True),
    "host": ((str,), False),
    "pid": ((int,), False),
    "energy_j": ((int, float), False),
    "energy_band_j": ((int, float), False),
    "machine_energy_j": ((int, float), False),
    "co2e_g": ((int, float), False),
    "co2e_band_g": ((int, float), False),
    "region": ((str,), True),
    "tags": ((list,), False),
    "params": ((dict,), False),
    "record": ((dict,), False),
    "user": ((str,), True),
    "role": ((str,), True),
    # Derived from record["job"]["id"] (the ledger's index): accepted, and recomputed.
    "job_id": ((str,), True),
}
_REUSE_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "at": ((int, float), False),
    "cache_key": ((str,), False),
    "function": ((str,), False),
    "producer_run_id": ((str,), True),
    "consumer_run_id": ((str,), True),
    "energy_avoided_j": ((int, float), False),
    "co2e_avoided_g": ((int, float), False),
    "duration_avoided_s": ((int, float), False),
    "method": ((str,), False),
    "basis": ((str,), False),
    "cache_url": ((str,), False),
    "user": ((str,), True),
}
_REUSE_NAMES = tuple(f.name for f in dataclasses.fields(ReuseEvent))
#: What makes two cache hits the same hit: every field but ``user`` (which the ledger fills
#: in from the consuming run, so an older export's hit matches its migrated copy).
_REUSE_IDENTITY = tuple(n for n in _REUSE_NAMES if n != "user")


class LedgerFileError(WattwiseError):
    """A ledger export file is malformed (the CLI exits 1 with its one line)."""


@dataclasses.dataclass
class ExportSummary:
    """What an export wrote."""

    runs: int = 0
    metrics: int = 0
    samples: int = 0
    artifacts: int = 0
    reuse: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON shape."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ImportSummary:
    """What an import did. ``runs_unchanged`` were in the ledger already, as recent."""

    runs_added: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    metrics: int = 0
    samples: int = 0
    annotations: int = 0
    artifacts: int = 0
    reuse_added: int = 0
    reuse_present: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON shape."""
        return dataclasses.asdict(self)


# -- export -----------------------------------------------------------------------


def export_ledger(
    store: Any, out: IO[str], *, source: str | None = None, runs: Sequence[str] | None = None
) -> ExportSummary:
    """Write the whole ledger (or the runs with ids in ``runs``) to ``out`` as JSON Lines.

    Args:
        store: The ledger to read (it is only read).
        out: A text stream.
        source: Where the ledger is, for the header (default: the store's url or path).
        runs: Ids of the runs to export (default: all). Cache hits outside any run are
            exported only with the whole ledger.

    Returns:
        Counts of what was written.
    """
    reader = _reader_for(store)
    where = source if source is not None else _describe(store)
    ids = reader.run_ids() if runs is None else list(runs)
    header = {
        "format": FORMAT, "version": VERSION, "exported_at": time.time(),
        "tool_version": _tool_version(), "source": where, "runs": len(ids),
    }  # fmt: skip
    out.write(_dumps(header) + "\n")
    summary = ExportSummary()
    known = set(ids)
    for chunk in _chunks(ids, 500):
        for line in reader.bundles(chunk):
            summary.runs += 1
            summary.metrics += len(line["metrics"])
            summary.samples += len(line["samples"])
            summary.artifacts += len(line["artifacts"])
            summary.reuse += len(line["reuse"])
            out.write(_dumps(line) + "\n")
    if runs is None:
        for event in reader.reuse_outside(known):
            summary.reuse += 1
            out.write(_dumps({"type": "reuse", "event": event}) + "\n")
    return summary


def export_to_path(store: Any, path: str, *, source: str | None = None) -> ExportSummary:
    """Export to a file (``.gz``: compressed), written whole or not at all; ``-``: stdout."""
    if path == "-":
        import sys

        return export_ledger(store, sys.stdout, source=source)
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with _open_text(partial, "w") as handle:
            summary = export_ledger(store, handle, source=source)
        partial.replace(target)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink()
        msg = (
            f"Cannot write the export to {target}: {err.strerror or err}. Pass -o with a "
            "writable path."
        )
        raise StoreError(msg) from err
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return summary


# -- import -----------------------------------------------------------------------


def import_ledger(store: Any, lines: Iterable[str], *, name: str = "<input>") -> ImportSummary:
    """Add the runs of an export to ``store``, skipping what it already holds.

    Args:
        store: The ledger to write.
        lines: The export's lines (a text file, or any iterable of lines).
        name: The file's name, for error messages.

    Returns:
        Counts of what was added, updated and already there.

    Raises:
        LedgerFileError: The file is not a ledger export, is of a newer version, or a line
            is malformed (nothing of that line's batch is written).
    """
    writer = _writer_for(store)
    summary = ImportSummary()
    numbered = enumerate(lines, start=1)
    header_seen = False
    batch: list[tuple[int, dict[str, Any]]] = []
    rows = 0

    def flush() -> None:
        nonlocal rows
        if batch:
            writer.write(batch, summary)
            batch.clear()
            rows = 0

    for number, raw in numbered:
        if not raw.strip():
            continue
        entry = _parse(raw, number, name)
        if not header_seen:
            _check_header(entry, number, name)
            header_seen = True
            continue
        kind = entry.get("type")
        if kind == "run":
            bundle = _check_bundle(entry, number, name)
            batch.append((number, bundle))
            rows += len(bundle["metrics"]) + len(bundle["samples"])
        elif kind == "reuse":
            event = _check_fields(entry.get("event"), _REUSE_FIELDS, number, name, "event")
            batch.append((number, {"reuse_only": event}))
        else:
            _fail(name, number, f"unknown line type {kind!r} (expected 'run' or 'reuse')")
        if len(batch) >= BATCH_RUNS or rows >= BATCH_ROWS:
            flush()
    if not header_seen:
        msg = (
            f"{name} is empty: a ledger export starts with a header line "
            f'{{"format": "{FORMAT}", ...}}. Create one with: wattwise ledger export -o FILE'
        )
        raise LedgerFileError(msg)
    flush()
    return summary


def import_from_path(store: Any, path: str) -> ImportSummary:
    """Import a file (``.gz``: compressed); ``-``: standard input."""
    if path == "-":
        import sys

        return import_ledger(store, sys.stdin, name="standard input")
    source = Path(path)
    try:
        with _open_text(source, "r") as handle:
            return import_ledger(store, handle, name=str(source))
    except FileNotFoundError as err:
        msg = f"No file {source}: check the path (create one with 'wattwise ledger export')."
        raise LedgerFileError(msg) from err
    except IsADirectoryError as err:
        msg = f"{source} is a folder; give the export file in it."
        raise LedgerFileError(msg) from err
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib_error()) as err:
        msg = (
            f"{source} is not a ledger export ({type(err).__name__}: {err}). Give a file "
            "written by 'wattwise ledger export' (UTF-8 JSON Lines, or gzip of it)."
        )
        raise LedgerFileError(msg) from err
    except OSError as err:
        msg = f"Cannot read {source}: {err.strerror or err}. Check the path and permissions."
        raise LedgerFileError(msg) from err


def zlib_error() -> type[Exception]:
    """zlib's error type (a truncated or damaged ``.gz`` raises it)."""
    import zlib

    return zlib.error


# -- checking untrusted lines ------------------------------------------------------


def _fail(name: str, number: int, what: str) -> NoReturn:
    msg = (
        f"{name} line {number}: {what}. The file is damaged or not a wattwise ledger export; "
        "runs before this line's batch were imported, and importing a fixed file again adds "
        "only the rest."
    )
    raise LedgerFileError(msg)


def _parse(raw: str, number: int, name: str) -> dict[str, Any]:
    try:
        entry = json.loads(raw)
    except (ValueError, RecursionError) as err:
        _fail(name, number, f"not JSON ({err})")
    if not isinstance(entry, dict):
        _fail(name, number, f"expected a JSON object, got {type(entry).__name__}")
    if _SURROGATE_ESCAPE.search(raw):  # a lone surrogate becomes its escape, as on a write
        entry = valid(entry)
    return entry


def _check_header(entry: Mapping[str, Any], number: int, name: str) -> None:
    if entry.get("format") != FORMAT:
        msg = (
            f"{name} is not a wattwise ledger export: its first line has format "
            f"{entry.get('format')!r}, expected {FORMAT!r}. Create one with: "
            "wattwise ledger export -o FILE"
        )
        raise LedgerFileError(msg)
    version = entry.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail(name, number, f"header version {version!r} is not a whole number >= 1")
    if version > VERSION:
        msg = (
            f"{name} is a ledger export of version {version}, newer than this wattwise reads "
            f"({VERSION}). Upgrade wattwise: pip install -U wattwise."
        )
        raise LedgerFileError(msg)


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if object in types:
        return not (isinstance(value, float) and not math.isfinite(value))
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, types)


def _check_fields(
    data: Any, fields: Mapping[str, tuple[tuple[type, ...], bool]], number: int, name: str,
    what: str, *, optional: Iterable[str] = (),
) -> dict[str, Any]:  # fmt: skip
    if not isinstance(data, dict):
        _fail(name, number, f"{what} must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        _fail(name, number, f"{what} has unknown fields {unknown} (a newer wattwise wrote it?)")
    may_miss = set(optional)
    for field, (types, nullable) in fields.items():
        if field not in data:
            if field in may_miss or nullable:
                continue
            _fail(name, number, f"{what} lacks the field {field!r}")
        value = data[field]
        if value is None and nullable:
            continue
        if not _type_ok(value, types):
            kinds = " or ".join(t.__name__ for t in types)
            _fail(name, number, f"{what} field {field!r} is {value!r:.60}, expected {kinds}")
    return data


def _check_bundle(entry: Mapping[str, Any], number: int, name: str) -> dict[str, Any]:
    allowed = {"type", "run", "components", "metrics", "samples", "annotations", "artifacts",
               "reuse"}  # fmt: skip
    unknown = sorted(set(entry) - allowed)
    if unknown:
        _fail(name, number, f"unknown fields {unknown} (a newer wattwise wrote it?)")
    run = _check_fields(entry.get("run"), _RUN_FIELDS, number, name, "run",
                        optional=("user", "role"))  # fmt: skip
    if not _ID.fullmatch(run["id"]):
        _fail(name, number, f"run id {run['id']!r:.80} is not an id (letters, digits, _.:-)")
    if run["status"] not in _STATUSES:
        _fail(name, number, f"run status {run['status']!r:.40} is not one of {sorted(_STATUSES)}")
    if not all(isinstance(t, str) for t in run["tags"]):
        _fail(name, number, "run tags must be strings")
    components = _list(entry, "components", number, name)
    comp_fields = {
        "component": ((str,), False), "energy_j": ((int, float), False),
        "machine_energy_j": ((int, float), False), "band_j": ((int, float), True),
        "method": ((str,), False), "meter": ((str,), False), "source": ((str,), False),
        "info": ((dict,), False),
    }  # fmt: skip
    for comp in components:
        _check_fields(comp, comp_fields, number, name, "component")
    # Millions of points: checked with exact types (bool is not a number here) and
    # ``x - x == 0``, which is False for inf and NaN.
    for m in _list(entry, "metrics", number, name):
        if not (
            type(m) is list and len(m) == 4 and (m[0] is None or type(m[0]) is int)
            and type(m[1]) is str and type(m[2]) in _NUMBER and type(m[3]) in _NUMBER
            and m[2] - m[2] == 0 and m[3] - m[3] == 0
        ):  # fmt: skip
            _fail(name, number, f"metric {m!r:.80} is not [step, key, value, logged_at]")
    for p in _list(entry, "samples", number, name):
        if not (
            type(p) is list and len(p) == 4 and type(p[0]) in _NUMBER and type(p[1]) is str
            and type(p[2]) in _NUMBER and type(p[3]) in _NUMBER
            and p[0] - p[0] == 0 and p[2] - p[2] == 0 and p[3] - p[3] == 0
        ):  # fmt: skip
            _fail(name, number, f"sample {p!r:.80} is not [t_s, component, power_w, energy_j]")
    note_fields = {"key": ((str,), False), "value": ((object,), True),
                   "append": ((bool,), False), "written_at": ((int, float), False)}  # fmt: skip
    for note in _list(entry, "annotations", number, name):
        _check_fields(note, note_fields, number, name, "annotation")
    art_fields = {"name": ((str,), False), "sha256": ((str,), False),
                  "size_bytes": ((int,), False), "created_at": ((int, float), False),
                  "content_b64": ((str,), False)}  # fmt: skip
    for art in _list(entry, "artifacts", number, name):
        _check_fields(art, art_fields, number, name, "artifact")
        try:
            content = base64.b64decode(art["content_b64"], validate=True)
        except (binascii.Error, ValueError):
            _fail(name, number, f"artifact {art['name']!r:.60} content is not base64")
        if hashlib.sha256(content).hexdigest() != art["sha256"] or len(content) != art[
            "size_bytes"
        ]:
            _fail(name, number, f"artifact {art['name']!r:.60} does not match its sha256 or size")
        art["content"] = content
    for event in _list(entry, "reuse", number, name):
        _check_fields(event, _REUSE_FIELDS, number, name, "cache hit")
    return dict(entry)


def _list(entry: Mapping[str, Any], key: str, number: int, name: str) -> list[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        _fail(name, number, f"{key} must be a list, got {type(value).__name__}")
    return value


# -- backends -----------------------------------------------------------------------


def _reader_for(store: Any) -> _SQLiteRows | _ApiRows:
    from wattwise.store._sqlite import SQLiteRunStore

    if isinstance(store, SQLiteRunStore):
        return _SQLiteRows(store)
    return _ApiRows(store)


def _writer_for(store: Any) -> _SQLiteRows | _ApiRows:
    return _reader_for(store)


class _SQLiteRows:
    """Rows of an SQLite ledger read and written as stored (the lossless path).

    Reads and writes go through the store's bulk path (``bulk_read``, ``bulk_write``), so
    errors are the store's one-line ``StoreError`` and a write is one ``BEGIN IMMEDIATE``
    transaction.
    """

    def __init__(self, store: SQLiteRunStore) -> None:
        self.store = store

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        return self.store.bulk_read(fn)

    def run_ids(self) -> list[str]:
        rows = self._read(
            lambda c: c.execute("SELECT id FROM runs ORDER BY started_at, id").fetchall()
        )
        return [r[0] for r in rows]

    def bundles(self, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        yield from self._read(lambda conn: _sqlite_bundles(conn, ids))

    def reuse_outside(self, known: set[str]) -> list[dict[str, Any]]:
        names = ", ".join(_q(n) for n in _REUSE_NAMES)
        rows = self._read(
            lambda c: c.execute(f"SELECT {names} FROM reuse ORDER BY seq").fetchall()
        )
        return [
            dict(zip(_REUSE_NAMES, row, strict=True)) for row in rows
            if row[_REUSE_NAMES.index("consumer_run_id")] not in known
        ]  # fmt: skip

    def write(self, batch: Sequence[tuple[int, dict[str, Any]]], summary: ImportSummary) -> None:
        def op(conn: sqlite3.Connection) -> None:
            columns = [d[0] for d in conn.execute("SELECT * FROM runs LIMIT 0").description]
            for _number, bundle in batch:
                if "reuse_only" in bundle:
                    _sqlite_add_reuse(conn, bundle["reuse_only"], summary)
                else:
                    _sqlite_add_bundle(conn, columns, bundle, summary)

        try:
            self.store.bulk_write(op)
        except StoreError as err:
            first = batch[0][0]
            msg = f"{err} (import stopped at the batch starting on line {first})"
            raise StoreError(msg) from err


def _sqlite_bundles(conn: sqlite3.Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in ids)
    cur = conn.execute(f"SELECT * FROM runs WHERE id IN ({marks})", list(ids))
    names = [d[0] for d in cur.description]
    out: dict[str, dict[str, Any]] = {}
    for row in cur.fetchall():
        run = dict(zip(names, row, strict=True))
        run.pop("job_id", None)  # derived from the record: recomputed on import
        for col in _JSON_COLUMNS:
            run[col] = json.loads(run[col])
        out[run["id"]] = {
            "type": "run", "run": run, "components": [], "metrics": [], "samples": [],
            "annotations": [], "artifacts": [], "reuse": [],
        }  # fmt: skip
    for r in conn.execute(
        "SELECT run_id, component, energy_j, machine_energy_j, band_j, method, meter, source, "
        f"info FROM components WHERE run_id IN ({marks}) ORDER BY run_id, component", list(ids),
    ):  # fmt: skip
        out[r[0]]["components"].append({
            "component": r[1], "energy_j": r[2], "machine_energy_j": r[3], "band_j": r[4],
            "method": r[5], "meter": r[6], "source": r[7], "info": json.loads(r[8]),
        })  # fmt: skip
    for r in conn.execute(
        f"SELECT run_id, step, key, value, logged_at FROM metrics WHERE run_id IN ({marks}) "
        "ORDER BY seq", list(ids),
    ):  # fmt: skip
        out[r[0]]["metrics"].append([r[1], r[2], r[3], r[4]])
    for r in conn.execute(
        f"SELECT run_id, t_s, component, power_w, energy_j FROM samples WHERE run_id IN "
        f"({marks}) ORDER BY rowid", list(ids),
    ):  # fmt: skip
        out[r[0]]["samples"].append([r[1], r[2], r[3], r[4]])
    for r in conn.execute(
        f"SELECT run_id, key, value, is_append, written_at FROM annotations WHERE run_id IN "
        f"({marks}) ORDER BY seq", list(ids),
    ):  # fmt: skip
        out[r[0]]["annotations"].append(
            {"key": r[1], "value": json.loads(r[2]), "append": bool(r[3]), "written_at": r[4]}
        )
    for r in conn.execute(
        "SELECT a.run_id, a.name, a.sha256, a.size_bytes, a.created_at, b.content FROM "
        f"artifacts AS a JOIN blobs AS b ON b.sha256 = a.sha256 WHERE a.run_id IN ({marks}) "
        "ORDER BY a.run_id, a.name", list(ids),
    ):  # fmt: skip
        out[r[0]]["artifacts"].append({
            "name": r[1], "sha256": r[2], "size_bytes": r[3], "created_at": r[4],
            "content_b64": base64.b64encode(bytes(r[5])).decode("ascii"),
        })  # fmt: skip
    names_sql = ", ".join(_q(n) for n in _REUSE_NAMES)
    for row in conn.execute(
        f"SELECT {names_sql} FROM reuse WHERE consumer_run_id IN ({marks}) ORDER BY seq",
        list(ids),
    ):  # fmt: skip
        event = dict(zip(_REUSE_NAMES, row, strict=True))
        out[event["consumer_run_id"]]["reuse"].append(event)
    return [out[i] for i in ids if i in out]


def _q(column: str) -> str:
    """A column name quoted (``user`` is a reserved word in SQL)."""
    return '"' + column.replace('"', '""') + '"'


def _encode_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sqlite_add_bundle(
    conn: sqlite3.Connection, columns: Sequence[str], bundle: dict[str, Any],
    summary: ImportSummary,
) -> None:  # fmt: skip
    run = bundle["run"]
    run_id = run["id"]
    missing = sorted(k for k in run if k not in columns and k != "job_id")
    if missing:
        msg = (
            f"Run {run_id[:12]} has fields {missing} this ledger has no column for; upgrade "
            "wattwise (pip install -U wattwise) before importing this file."
        )
        raise LedgerFileError(msg)
    values = {k: (_encode_json(v) if k in _JSON_COLUMNS else v) for k, v in run.items()}
    if "job_id" in columns:
        values["job_id"] = job_id_of(run["record"])
    row = conn.execute("SELECT heartbeat_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    replace = False
    if row is None:
        cols = list(values)
        conn.execute(
            f"INSERT INTO runs ({', '.join(_q(c) for c in cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})",
            [values[c] for c in cols],
        )
        summary.runs_added += 1
        replace = True
    elif run["heartbeat_at"] > row[0]:
        cols = [c for c in values if c != "id"]
        conn.execute(
            f"UPDATE runs SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE id = ?",
            [*(values[c] for c in cols), run_id],
        )
        for table in ("components", "metrics", "samples"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        summary.runs_updated += 1
        replace = True
    else:
        summary.runs_unchanged += 1
    if replace:
        conn.executemany(
            "INSERT INTO components (run_id, component, energy_j, machine_energy_j, band_j, "
            "method, meter, source, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, c["component"], c["energy_j"], c["machine_energy_j"], c["band_j"],
              c["method"], c["meter"], c["source"], _encode_json(c["info"]))
             for c in bundle["components"]],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO metrics (run_id, step, key, value, logged_at) VALUES (?, ?, ?, ?, ?)",
            [(run_id, *m) for m in bundle["metrics"]],
        )
        conn.executemany(
            "INSERT INTO samples (run_id, t_s, component, power_w, energy_j) "
            "VALUES (?, ?, ?, ?, ?)",
            [(run_id, *s) for s in bundle["samples"]],
        )
        summary.metrics += len(bundle["metrics"])
        summary.samples += len(bundle["samples"])
    for note in bundle["annotations"]:
        args = (run_id, note["key"], _encode_json(note["value"]), int(note["append"]),
                note["written_at"])  # fmt: skip
        if conn.execute(
            "SELECT 1 FROM annotations WHERE run_id = ? AND key = ? AND value = ? "
            "AND is_append = ? AND written_at = ?", args,
        ).fetchone() is None:  # fmt: skip
            conn.execute(
                "INSERT INTO annotations (run_id, key, value, is_append, written_at) "
                "VALUES (?, ?, ?, ?, ?)", args,
            )  # fmt: skip
            summary.annotations += 1
    for art in bundle["artifacts"]:
        have = conn.execute(
            "SELECT sha256 FROM artifacts WHERE run_id = ? AND name = ?", (run_id, art["name"])
        ).fetchone()
        if have is not None and (have[0] == art["sha256"] or not replace):
            continue
        conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size_bytes, content) VALUES (?, ?, ?)",
            (art["sha256"], art["size_bytes"], art["content"]),
        )
        conn.execute("DELETE FROM artifacts WHERE run_id = ? AND name = ?", (run_id, art["name"]))
        conn.execute(
            "INSERT INTO artifacts (run_id, name, sha256, size_bytes, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (run_id, art["name"], art["sha256"], art["size_bytes"], art["created_at"]),
        )
        summary.artifacts += 1
    for event in bundle["reuse"]:
        _sqlite_add_reuse(conn, event, summary)


def _sqlite_add_reuse(
    conn: sqlite3.Connection, event: Mapping[str, Any], summary: ImportSummary
) -> None:
    values = [event.get(n) for n in _REUSE_IDENTITY]
    same = " AND ".join(f"{n} IS ?" for n in _REUSE_IDENTITY)
    if conn.execute(f"SELECT 1 FROM reuse WHERE {same}", values).fetchone() is not None:
        summary.reuse_present += 1
        return
    conn.execute(
        f"INSERT INTO reuse ({', '.join(_REUSE_IDENTITY)}, \"user\") "
        f"VALUES ({', '.join('?' for _ in _REUSE_IDENTITY)}, "
        'coalesce(?, (SELECT "user" FROM runs WHERE id = ?)))',
        [*values, event.get("user"), event.get("consumer_run_id")],
    )
    summary.reuse_added += 1


class _ApiRows:
    """Any other backend, through the store's public API.

    Reads see what the API shows: annotations merged into the record (exported that way,
    with an empty ``annotations`` list) and artifact times as stored. Writes use
    ``insert_run``/``flush_run``/``put_artifact``/``add_reuse``, one transaction each.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._runs: dict[str, RunRecord] | None = None

    def _all(self) -> dict[str, RunRecord]:
        if self._runs is None:  # read once: the export walks them in chunks
            # In the fast path's order (start time, then id), so both write the same file.
            runs = sorted(self.store.list_runs(), key=lambda r: (r.started_at, r.id))
            self._runs = {r.id: r for r in runs}
        return self._runs

    def run_ids(self) -> list[str]:
        return list(self._all())

    def bundles(self, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        runs = self._all()
        for run_id in ids:
            run = runs.get(run_id)
            if run is None:
                continue
            data = {f.name: getattr(run, f.name) for f in dataclasses.fields(RunRecord)
                    if f.name != "components"}  # fmt: skip
            data["status"] = str(run.status)
            for extra in ("user", "role"):
                if hasattr(run, extra):
                    data[extra] = getattr(run, extra)
            arts = []
            for art in self.store.artifacts(run.id):
                content = self.store.get_artifact(run.id, art["name"]) or b""
                arts.append({**art, "content_b64": base64.b64encode(content).decode("ascii")})
            yield {
                "type": "run", "run": data,
                "components": [dataclasses.asdict(c) for c in run.components],
                "metrics": [list(m) for m in self.store.metrics(run.id)],
                "samples": [list(s) for s in self.store.samples(run.id)],
                "annotations": [], "artifacts": arts,
                "reuse": [e.to_dict() for e in self.store.reuse_events(consumer_run_id=run.id)],
            }  # fmt: skip

    def reuse_outside(self, known: set[str]) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.store.reuse_events() if e.consumer_run_id not in known]

    def write(self, batch: Sequence[tuple[int, dict[str, Any]]], summary: ImportSummary) -> None:
        from wattwise.exceptions import RunNotFoundError

        present = {e for e in (_reuse_key(x.to_dict()) for x in self.store.reuse_events())}
        for _number, bundle in batch:
            if "reuse_only" in bundle:
                self._reuse(bundle["reuse_only"], present, summary)
                continue
            run = dict(bundle["run"])
            try:
                existing = self.store.get_run(run["id"])
            except RunNotFoundError:
                existing = None
            if existing is None or existing.id != run["id"]:
                record = RunRecord(
                    **{k: v for k, v in run.items() if k in _RECORD_FIELDS},
                    components=[ComponentEnergy(**c) for c in bundle["components"]],
                )
                record.status = RunStatus(run["status"])
                self.store.insert_run(record)
                self.store.flush_run(
                    run["id"], {}, samples=[tuple(s) for s in bundle["samples"]],
                    metrics=[tuple(m) for m in bundle["metrics"]],
                )  # fmt: skip
                summary.runs_added += 1
                summary.metrics += len(bundle["metrics"])
                summary.samples += len(bundle["samples"])
                for note in bundle["annotations"]:
                    self.store.annotate_run(run["id"], note["key"], note["value"],
                                            append=note["append"])  # fmt: skip
                    summary.annotations += 1
                for art in bundle["artifacts"]:
                    self.store.put_artifact(run["id"], art["name"], art["content"],
                                            created_at=art["created_at"])  # fmt: skip
                    summary.artifacts += 1
            else:
                summary.runs_unchanged += 1
            for event in bundle["reuse"]:
                self._reuse(event, present, summary)

    def _reuse(self, event: Mapping[str, Any], present: set[tuple[Any, ...]],
               summary: ImportSummary) -> None:  # fmt: skip
        key = _reuse_key(event)
        if key in present:
            summary.reuse_present += 1
            return
        fields: dict[str, Any] = {n: event.get(n) for n in _REUSE_NAMES}
        self.store.add_reuse(ReuseEvent(**fields))
        present.add(key)
        summary.reuse_added += 1


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord)) - {"components"}


def _reuse_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(n) for n in _REUSE_IDENTITY)


# -- helpers -----------------------------------------------------------------------


def _dumps(data: Any) -> str:
    """One line of the file; a lone surrogate (a backend that kept one) as its escape."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(valid(data), ensure_ascii=False, separators=(",", ":"))
    return text


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _describe(store: Any) -> str:
    url = getattr(store, "url", None)
    if isinstance(url, str):
        return url
    path = getattr(store, "path", None)
    return str(path) if path is not None else type(store).__name__


def _tool_version() -> str:
    from wattwise import __version__

    return __version__


def _open_text(path: Path, mode: str) -> IO[str]:
    if path.name.endswith(".gz") or (mode == "w" and path.name.endswith(".gz.partial")):
        raw = gzip.GzipFile(path, mode + "b", compresslevel=6)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    return open(path, mode, encoding="utf-8", newline="\n")
