"""Safe value formats for cache entries: JSON, NumPy ``.npy``, safetensors, bytes, files.

A value becomes a *spec* (JSON: structure and scalars) plus binary *members*:

* ``None``, ``bool``, ``int``, ``str`` and ``float`` (exact, ``float.hex``) stay in the
  spec; ``list``, ``tuple``, ``dict`` (any supported keys, order kept), ``set`` and
  ``frozenset`` are rebuilt as the same type;
* NumPy arrays and scalars → ``.npy`` members, written and read with
  ``allow_pickle=False`` (arrays of dtype object are refused);
* torch tensors → one safetensors member each (loaded on the CPU, then moved to the
  recorded device when it exists here);
* ``bytes``/``bytearray`` → raw members; a ``pathlib.Path`` to a file or folder → its
  files' bytes, given back as a path to a verified local copy.

Anything else is refused unless the cached function opted in with ``allow_pickle=True``
(private local cache only), in which case it becomes a ``pickle`` member. Decoding a spec
with a ``pickle`` member is refused when pickle is not allowed, before any byte of it is
read.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, NoReturn

from wattwise.exceptions import CacheCorruptError, CacheError

# numpy reads an .npy header with ast.literal_eval; on CPython 3.11 concurrent AST
# construction in threads can fail with "SystemError: AST constructor recursion depth
# mismatch" (python/cpython#106905, seen here with 3 threads loading one entry), so loads
# of arrays from this module take turns.
_NPY_LOAD_LOCK = threading.Lock()

Member = tuple[str, bytes]  # (kind, content)


class UnsupportedValueError(CacheError):
    """A result has no safe format and pickle was not allowed."""


class UnsafePickleError(CacheError):
    """Decoding met pickled data that the caller did not allow; it was not unpickled."""


def _unsupported(value: Any, where: str) -> UnsupportedValueError:
    kind = type(value)
    msg = (
        f"Cannot store {where} of type {kind.__module__}.{kind.__qualname__} in the cache: "
        "it has no safe format (JSON values, NumPy arrays, torch tensors, bytes, "
        "pathlib.Path). Return such values instead, or pass allow_pickle=True for a private "
        "local cache."
    )
    return UnsupportedValueError(msg)


class _Encoder:
    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self.members: list[Member] = []

    def add(self, kind: str, content: bytes) -> int:
        self.members.append((kind, content))
        return len(self.members) - 1

    def encode(self, value: Any, where: str = "the result", depth: int = 0) -> Any:
        if depth > 200:
            raise _unsupported(value, where)
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return {"t": "json", "v": value}
        if kind is float:
            return {"t": "float", "v": value.hex()}
        if kind is complex:
            return {"t": "complex", "v": [value.real.hex(), value.imag.hex()]}
        if kind in (list, tuple, set, frozenset):
            items = [self.encode(v, where, depth + 1) for v in value]
            return {"t": kind.__name__, "v": items}
        if kind is dict:
            return {
                "t": "dict",
                "v": [
                    [self.encode(k, where, depth + 1), self.encode(v, where, depth + 1)]
                    for k, v in value.items()
                ],
            }
        if kind in (bytes, bytearray):
            return {"t": kind.__name__, "m": self.add("bytes", bytes(value))}
        if isinstance(value, Path) and value.is_file():
            return {"t": "file", "name": value.name, "m": self.add("file", value.read_bytes())}
        if isinstance(value, Path) and value.is_dir():
            files = []
            for path in sorted(p for p in value.rglob("*") if p.is_file()):
                rel = path.relative_to(value).as_posix()
                files.append([rel, self.add("file", path.read_bytes())])
            return {"t": "dir", "name": value.name, "files": files}
        encoded = self._array(value)
        if encoded is not None:
            return encoded
        if self.allow_pickle:
            return {"t": "pickle", "m": self.add("pickle", pickle.dumps(value, protocol=5))}
        raise _unsupported(value, where)

    def _array(self, value: Any) -> Any:
        numpy: Any = sys.modules.get("numpy")
        torch: Any = sys.modules.get("torch")
        if numpy is not None and isinstance(value, numpy.ndarray | numpy.generic):
            array = numpy.asarray(value)
            if array.dtype.hasobject:
                return None
            buffer = io.BytesIO()
            numpy.save(buffer, array, allow_pickle=False)
            tag = "ndarray" if isinstance(value, numpy.ndarray) else "npscalar"
            return {"t": tag, "m": self.add("npy", buffer.getvalue())}
        if torch is not None and isinstance(value, torch.Tensor):
            if value.is_sparse or value.is_quantized or value.layout != torch.strided:
                return None
            from safetensors.torch import save

            tensor = value.detach().cpu().contiguous().clone()
            content = save({"tensor": tensor})
            return {
                "t": "tensor",
                "m": self.add("safetensors", content),
                "device": str(value.device),
                "requires_grad": bool(value.requires_grad),
            }
        return None


def encode(value: Any, *, allow_pickle: bool = False) -> tuple[Any, list[Member]]:
    """``(spec, members)`` for a value.

    Raises:
        UnsupportedValueError: A part has no safe format and pickle is not allowed.
    """
    encoder = _Encoder(allow_pickle)
    spec = encoder.encode(value)
    return spec, encoder.members


def _fail(detail: str) -> NoReturn:
    msg = f"the entry's value is malformed ({detail})"
    raise CacheCorruptError(msg)


class _Decoder:
    def __init__(
        self, members: list[tuple[str, memoryview]], files_dir: Path | None, allow_pickle: bool
    ) -> None:
        self.members = members
        self.files_dir = files_dir
        self.allow_pickle = allow_pickle

    def member(self, node: dict[str, Any], kind: str) -> memoryview:
        index = node.get("m")
        if not isinstance(index, int) or not 0 <= index < len(self.members):
            _fail(f"member index {index!r}")
        found, content = self.members[index]
        if found != kind:
            _fail(f"member {index} is {found!r}, expected {kind!r}")
        return content

    def decode(self, node: Any) -> Any:
        if not isinstance(node, dict) or "t" not in node:
            _fail("node without type")
        tag = node["t"]
        if tag == "json":
            return node["v"]
        if tag == "float":
            return float.fromhex(node["v"])
        if tag == "complex":
            return complex(float.fromhex(node["v"][0]), float.fromhex(node["v"][1]))
        if tag in ("list", "tuple", "set", "frozenset"):
            items = [self.decode(v) for v in node["v"]]
            return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict":
            return {self.decode(k): self.decode(v) for k, v in node["v"]}
        if tag in ("bytes", "bytearray"):
            data = bytes(self.member(node, "bytes"))
            return data if tag == "bytes" else bytearray(data)
        if tag in ("ndarray", "npscalar"):
            import numpy

            npy = io.BytesIO(self.member(node, "npy"))
            with _NPY_LOAD_LOCK:
                array = numpy.load(npy, allow_pickle=False)
            return array if tag == "ndarray" else array[()]
        if tag == "tensor":
            return self._tensor(node)
        if tag in ("file", "dir"):
            return self._materialise(node)
        if tag == "pickle":
            if not self.allow_pickle:  # the caller's checks come first; this is the backstop
                msg = "the entry holds pickled data and the caller did not allow pickle"
                raise UnsafePickleError(msg)
            return pickle.loads(self.member(node, "pickle"))
        _fail(f"unknown type {tag!r}")

    def _tensor(self, node: dict[str, Any]) -> Any:
        import torch
        from safetensors.torch import load

        tensor = load(bytes(self.member(node, "safetensors")))["tensor"]
        device = str(node.get("device", "cpu"))
        if device != "cpu":
            with contextlib.suppress(RuntimeError, AssertionError):  # not here: stay on CPU
                tensor = tensor.to(device)
        if node.get("requires_grad") and tensor.is_floating_point():
            tensor.requires_grad_(True)
        assert isinstance(tensor, torch.Tensor)
        return tensor

    def _materialise(self, node: dict[str, Any]) -> Path:
        if self.files_dir is None:
            _fail("file output without a place to write it")
        name = str(node.get("name") or "output")
        if name in (".", "..") or "/" in name or "\\" in name:
            _fail(f"file name {name!r}")
        self.files_dir.mkdir(parents=True, exist_ok=True)
        final = self.files_dir / name
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.files_dir))
        try:
            staged = scratch / name
            if node["t"] == "file":
                staged.write_bytes(self.member(node, "file"))
            else:
                staged.mkdir()
                for rel, index in node["files"]:
                    target = (staged / rel).resolve()
                    if not target.is_relative_to(staged.resolve()):
                        _fail(f"path {rel!r} leaves the output folder")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(self.member({"m": index}, "file"))
            if final.is_dir() and not final.is_symlink():
                parked = self.files_dir / f".old-{uuid.uuid4().hex}"
                os.replace(final, parked)
                shutil.rmtree(parked, ignore_errors=True)
            try:
                os.replace(staged, final)
            except OSError:
                if not final.exists():  # else a concurrent hit wrote the same content
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final


def has_pickle(spec: Any) -> bool:
    """Whether a spec contains a pickle node (checked before decoding anything)."""
    if isinstance(spec, dict):
        return spec.get("t") == "pickle" or any(has_pickle(v) for v in spec.values())
    if isinstance(spec, list):
        return any(has_pickle(v) for v in spec)
    return False


def decode(
    spec: Any,
    members: list[tuple[str, memoryview]],
    *,
    files_dir: Path | None = None,
    allow_pickle: bool = False,
) -> Any:
    """Rebuild a value. The caller has verified the entry and who could have written it.

    Args:
        spec: The entry's value spec.
        members: ``(kind, bytes)`` per member.
        files_dir: Where file and folder outputs are written back.
        allow_pickle: Unpickle ``pickle`` members; without it they are refused, unread.

    Raises:
        CacheCorruptError: The spec does not match the members.
        UnsafePickleError: The spec holds pickled data and ``allow_pickle`` is False.
    """
    try:
        return _Decoder(members, files_dir, allow_pickle).decode(spec)
    except (KeyError, IndexError, TypeError, ValueError, RecursionError) as err:
        msg = f"the entry's value is malformed ({type(err).__name__}: {err})"
        raise CacheCorruptError(msg) from err
