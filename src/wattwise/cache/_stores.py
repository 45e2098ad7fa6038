"""Where cache entries live: a local folder, or any fsspec URL.

Each entry is one file, ``entries/<key[:2]>/<key>.wwc``. A writer puts the whole entry in
``tmp/<key>.<random>.part`` and then renames it over the final name: on a local disk that
is ``os.replace``, atomic, so a reader sees the old entry or the new one, never half of
one; two producers of one key each rename a complete entry and the last one stays. On
fsspec stores ``mv`` does the same: a rename on local and memory file systems; on an
object store (S3 and its kin) a server-side copy of the uploaded temporary object, and a
copy, like any PUT, makes the final object appear whole or not at all.

Object stores have no folders: nothing is created on them (s3fs's ``makedirs`` would
create a missing *bucket*, so a typo in a bucket name would silently start a new cache);
a missing bucket is a one-line error on write and a miss on read. Their listings are read
fresh each time (another user's process may have written since). Whatever a file-system
package raises (botocore's ``NoCredentialsError`` or ``EndpointConnectionError`` are not
``OSError``) becomes a :class:`~wattwise.exceptions.CacheError`, so an unreachable or
misconfigured store costs the cache, never the job.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import os
import stat
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from wattwise.cache._trust import PathProblem, read_checked
from wattwise.exceptions import CacheError

SUFFIX = ".wwc"
_TMP = "tmp"
_ENTRIES = "entries"


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """One stored entry file: its key, size in bytes and modification time (Unix s)."""

    key: str
    size_bytes: int
    modified_at: float


def entry_name(key: str) -> str:
    """Relative name of an entry file."""
    return f"{_ENTRIES}/{key[:2]}/{key}{SUFFIX}"


class BaseStore(abc.ABC):
    """Byte storage for entries. Implementations must make ``write`` atomic."""

    url: str

    @abc.abstractmethod
    def read(self, key: str) -> bytes | None:
        """The entry file's bytes, or None if absent."""

    @abc.abstractmethod
    def read_head(self, key: str, size: int) -> bytes | None:
        """The first ``size`` bytes of the entry file, or None if absent."""

    def read_private(self, key: str) -> tuple[bytes | None, PathProblem | None]:
        """The entry file's bytes (None if absent), and why someone else could have written
        it (None when only the current user or root could have): asked before unpickling.

        A store that cannot tell who may write it says so.
        """
        problem = PathProblem(
            f"{self.url} is a store whose writers wattwise cannot check",
            "Use the default local cache (.wattwise/cache) for pickled results",
        )
        return self.read(key), problem

    @abc.abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Write an entry atomically (temporary file, then rename)."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove an entry; True if it existed."""

    @abc.abstractmethod
    def files(self) -> list[StoredFile]:
        """Every entry file."""

    @abc.abstractmethod
    def list_temporary(self) -> list[tuple[str, int, float]]:
        """Leftover temporary files: ``(name, size_bytes, modified_at)``."""

    @abc.abstractmethod
    def delete_temporary(self, name: str) -> None:
        """Remove a leftover temporary file."""


def redact_url(url: str) -> str:
    """``url`` without a password in its user part (``ftp://me:secret@host`` →
    ``ftp://me:***@host``): the form shown in messages and written to the ledger."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


#: fsspec protocols of object stores: keys without folders (whose ``makedirs`` would create
#: a bucket or container), listings that go stale. Others (file, memory, sftp, smb, hdfs
#: ...) have real folders, made before a write.
_OBJECT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl",
                               "oss", "oci", "tos", "r2"})  # fmt: skip


def _key_of(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    if not base.endswith(SUFFIX):
        return None
    key = base[: -len(SUFFIX)]
    return key if len(key) == 64 and all(c in "0123456789abcdef" for c in key) else None


def _read_regular(path: Path, size: int = -1) -> bytes | None:
    """Up to ``size`` bytes (all: -1) of a regular file; None if it is absent or is not a
    regular file (a FIFO or a device planted at an entry's path must not block or flood the
    reader: opened without blocking, and never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(size)


class LocalStore(BaseStore):
    """Entries in a local folder, written with ``os.replace``.

    Args:
        root: The folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / entry_name(key)

    def read(self, key: str) -> bytes | None:
        """The entry file's bytes, or None if absent (or not a regular file)."""
        try:
            return _read_regular(self._path(key))
        except OSError as err:
            raise _io_error("read", self.url, err) from err  # noqa: EM101

    def read_head(self, key: str, size: int) -> bytes | None:
        """The first ``size`` bytes, or None if absent (or not a regular file)."""
        try:
            return _read_regular(self._path(key), size)
        except OSError as err:
            raise _io_error("read", self.url, err) from err  # noqa: EM101

    def read_private(self, key: str) -> tuple[bytes | None, PathProblem | None]:
        """The bytes, read from the descriptor whose owner and mode were checked, and the
        first component of the entry's real path that someone else could write (see
        ``wattwise.cache._trust``)."""
        try:
            return read_checked(self.root, self._path(key))
        except OSError as err:
            raise _io_error("read", self.url, err) from err  # noqa: EM101

    def write(self, key: str, data: bytes) -> None:
        """Write to ``tmp/`` then ``os.replace`` into place (atomic)."""
        final = self._path(key)
        tmp = self.root / _TMP / f"{key}.{uuid.uuid4().hex}.part"
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    tmp.unlink()
        except OSError as err:
            raise _io_error("write", self.url, err) from err  # noqa: EM101

    def delete(self, key: str) -> bool:
        """Remove an entry; True if it existed."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        except OSError as err:
            raise _io_error("delete from", self.url, err) from err  # noqa: EM101
        return True

    def files(self) -> list[StoredFile]:
        """Every entry file."""
        out = []
        for path in sorted((self.root / _ENTRIES).glob(f"*/*{SUFFIX}")):
            key = _key_of(path.name)
            if key is None:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            out.append(StoredFile(key, stat.st_size, stat.st_mtime))
        return out

    def list_temporary(self) -> list[tuple[str, int, float]]:
        """Leftover ``.part`` files."""
        out = []
        for path in sorted((self.root / _TMP).glob("*.part")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            out.append((path.name, stat.st_size, stat.st_mtime))
        return out

    def delete_temporary(self, name: str) -> None:
        """Remove a leftover ``.part`` file."""
        (self.root / _TMP / Path(name).name).unlink(missing_ok=True)


def _timestamp(info: dict[str, Any]) -> float:
    for field in ("mtime", "created", "LastModified", "last_modified", "updated"):
        value = info.get(field)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dt.datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


class FsspecStore(BaseStore):
    """Entries under an fsspec URL (``s3://bucket/cache``, ``memory://team``, ``file:///nfs``).

    Args:
        url: The URL; the protocol's package must be installed (s3fs for ``s3://`` ...).
            Credentials belong in ``storage_options`` or the environment, not the URL; a
            password in the URL is masked wherever the URL is shown or recorded.
        storage_options: Passed to the file system (credentials, ``endpoint_url`` ...).
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = redact_url(url)
        try:
            import fsspec
        except ImportError as err:
            msg = (
                f"The cache URL {self.url!r} needs the 'fsspec' package, which is not "
                "installed. Install it with: pip install 'wattwise[cache]' (and "
                "'wattwise[s3]' for s3:// URLs)."
            )
            raise CacheError(msg) from err
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except ImportError as err:
            msg = (
                f"Cannot open the cache at {self.url!r}: {err}. Install the file system's "
                "package (pip install 'wattwise[s3]' for s3://; gcsfs, adlfs ...) or fix the URL."
            )
            raise CacheError(msg) from err
        except Exception as err:  # any backend's own error type: a bad URL or option
            msg = (
                f"Cannot open the cache at {self.url!r}: {_reason(err)}. Fix the URL or the "
                "storage options."
            )
            raise CacheError(msg) from err
        self.root = str(root).rstrip("/")
        protocol = self.fs.protocol
        self.protocols: tuple[str, ...] = (
            tuple(protocol) if isinstance(protocol, tuple | list) else (str(protocol),)
        )
        #: Keys without folders (S3, GCS, Azure ...): no makedirs, fresh listings.
        self.is_object_store = bool(_OBJECT_PROTOCOLS.intersection(self.protocols))

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def read(self, key: str) -> bytes | None:
        """The entry file's bytes, or None if absent."""
        try:
            data: bytes = self.fs.cat_file(self._path(entry_name(key)))
        except FileNotFoundError:
            return None
        except Exception as err:  # backends raise their own types
            raise _io_error("read", self.url, err) from err  # noqa: EM101
        return data

    def read_head(self, key: str, size: int) -> bytes | None:
        """The first ``size`` bytes, or None if absent.

        A ranged read (``cat_file`` with an end), not ``open``: s3fs opens a file with the
        size and ETag it listed earlier, so an object another process replaced since
        fails with "no longer exists"; a ranged GET reads whatever is there now.
        """
        path = self._path(entry_name(key))
        try:
            try:
                head: bytes = self.fs.cat_file(path, start=0, end=size)
            except FileNotFoundError:
                raise
            except OSError:
                # S3 refuses any range of an empty object (416): look before failing
                if self.is_object_store and self.fs.info(path, refresh=True).get("size") == 0:
                    return b""
                raise
        except FileNotFoundError:
            return None
        except Exception as err:  # backends raise their own types
            raise _io_error("read", self.url, err) from err  # noqa: EM101
        return head

    def read_private(self, key: str) -> tuple[bytes | None, PathProblem | None]:
        """As :meth:`LocalStore.read_private` for ``file://`` URLs; ``memory://`` is written
        only by this process; any other store's writers cannot be checked."""
        if "memory" in self.protocols:
            return self.read(key), None
        if "file" in self.protocols or "local" in self.protocols:
            return LocalStore(self.root).read_private(key)
        return super().read_private(key)

    def write(self, key: str, data: bytes) -> None:
        """Write ``tmp/<key>.<random>.part``, then ``mv`` it into place."""
        tmp = self._path(f"{_TMP}/{key}.{uuid.uuid4().hex}.part")
        final = self._path(entry_name(key))
        try:
            if not self.is_object_store:
                self.fs.makedirs(self._path(_TMP), exist_ok=True)
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, final)
        except Exception as err:  # backends raise their own types
            try:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            except Exception:  # gc removes a leftover later
                pass
            raise _io_error("write", self.url, err) from err  # noqa: EM101

    def delete(self, key: str) -> bool:
        """Remove an entry; True if it existed."""
        path = self._path(entry_name(key))
        try:
            if self.is_object_store and not self.fs.exists(path):
                return False  # deleting a missing key is no error on S3: ask first
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        except Exception as err:  # backends raise their own types
            raise _io_error("delete from", self.url, err) from err  # noqa: EM101
        finally:
            if self.is_object_store:
                self.fs.invalidate_cache()
        return True

    def _find(self, folder: str) -> dict[str, dict[str, Any]]:
        path = self._path(folder)
        try:
            if self.is_object_store:  # others write here too: list afresh (the whole
                self.fs.invalidate_cache()  # cache: a path drops only itself and parents)
            if not self.fs.exists(path):
                return {}
            found: dict[str, dict[str, Any]] = self.fs.find(path, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as err:  # backends raise their own types
            raise _io_error("list", self.url, err) from err  # noqa: EM101
        return found

    def files(self) -> list[StoredFile]:
        """Every entry file."""
        out = []
        for name, info in sorted(self._find(_ENTRIES).items()):
            key = _key_of(name)
            if key is not None:
                out.append(StoredFile(key, int(info.get("size") or 0), _timestamp(info)))
        return out

    def list_temporary(self) -> list[tuple[str, int, float]]:
        """Leftover ``.part`` files."""
        return [
            (name.rsplit("/", 1)[-1], int(info.get("size") or 0), _timestamp(info))
            for name, info in sorted(self._find(_TMP).items())
            if name.endswith(".part")
        ]

    def delete_temporary(self, name: str) -> None:
        """Remove a leftover ``.part`` file."""
        path = self._path(f"{_TMP}/{name.rsplit('/', 1)[-1]}")
        try:
            if self.fs.exists(path):
                self.fs.rm_file(path)
        except FileNotFoundError:
            return
        except Exception as err:  # backends raise their own types
            raise _io_error("delete from", self.url, err) from err  # noqa: EM101


def _reason(err: BaseException) -> str:
    """One line for a backend's error: its text, and its type when that says more."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError):
        return text
    return f"{text} ({type(err).__name__})"


def _io_error(action: str, url: str, err: BaseException) -> CacheError:
    msg = (
        f"Cannot {action} the cache at {url}: {_reason(err)}. Check the path, its "
        "permissions (or credentials and endpoint), or point WATTWISE_CACHE at another "
        "location."
    )
    return CacheError(msg)
