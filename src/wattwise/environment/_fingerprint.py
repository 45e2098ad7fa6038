"""Data fingerprints: what a run read, by content hash and size.

A file's hash is the hash of its bytes (``b3sum FILE`` or ``sha256sum FILE`` gives the
same); a folder's is the hash of its manifest (see :mod:`wattwise._hashing`); an
array's or tensor's is the hash of its bytes in C order, with dtype and shape recorded
beside it. The algorithm is blake3 when installed (several GB/s, multi-threaded for large
inputs), sha256 otherwise, and is always recorded.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from wattwise.exceptions import InvalidParameterError


def _array_bytes(obj: Any) -> tuple[memoryview, str, list[int]] | None:
    numpy: Any = sys.modules.get("numpy")
    torch: Any = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        flat = tensor.reshape(-1).view(torch.uint8) if tensor.numel() else tensor.reshape(-1)
        return memoryview(flat.numpy()).cast("B"), str(tensor.dtype), list(tensor.shape)
    if numpy is not None and isinstance(obj, numpy.ndarray):
        if obj.dtype.hasobject:
            msg = (
                "Cannot fingerprint a NumPy array of dtype object: its bytes are pointers, "
                "not data. Convert it to a numeric or string dtype first."
            )
            raise InvalidParameterError(msg)
        array = numpy.ascontiguousarray(obj)
        return memoryview(array.reshape(-1).view(numpy.uint8)), array.dtype.str, list(obj.shape)
    return None


def fingerprint(obj: Any, *, name: str | None = None) -> dict[str, Any]:
    """Fingerprint a data set: a file, a folder, a NumPy array, a torch tensor or bytes.

    Args:
        obj: A path (``str`` or ``os.PathLike``) to a file or folder, an array, a tensor, or
            a bytes-like object.
        name: A label for the data set (default: the file or folder name, or ``array``).

    Returns:
        ``name``, ``kind`` (``file`` | ``directory`` | ``array`` | ``bytes``),
        ``algorithm``, ``hash`` (hex), ``size_bytes``; plus ``path`` and ``modified_at``
        for paths, ``n_files`` for folders, ``dtype``, ``shape`` and ``n_examples``
        (length of the first axis) for arrays; ``hash_s`` is the time hashing took (s).

    Raises:
        InvalidParameterError: The path does not exist, or the type is not supported.
    """
    from wattwise._hashing import best_algorithm, hash_bytes, hash_file, hash_tree

    algorithm = best_algorithm()
    t0 = time.perf_counter()
    out: dict[str, Any]
    if isinstance(obj, str | os.PathLike):
        path = Path(obj)
        if not path.exists():
            msg = (
                f"Cannot fingerprint data at {str(path)!r}: no such file or folder. "
                "Pass the path of the data the run reads."
            )
            raise InvalidParameterError(msg)
        stat = path.stat()
        base = {"path": str(obj), "resolved_path": str(path.resolve()),
                "modified_at": stat.st_mtime}  # fmt: skip
        if path.is_dir():
            digest, size, count = hash_tree(path, algorithm)
            out = {"kind": "directory", **base, "n_files": count}
        else:
            digest, size = hash_file(path, algorithm)
            out = {"kind": "file", **base}
        out = {"name": name or path.resolve().name, **out}
    elif isinstance(obj, bytes | bytearray | memoryview):
        view = memoryview(obj).cast("B")
        digest, size = hash_bytes(view, algorithm), view.nbytes
        out = {"name": name or "bytes", "kind": "bytes"}
    else:
        found = _array_bytes(obj)
        if found is None:
            msg = (
                f"Cannot fingerprint an object of type {type(obj).__qualname__!r}. Pass a path "
                "(str or pathlib.Path), a NumPy array, a torch tensor or bytes."
            )
            raise InvalidParameterError(msg)
        view, dtype, shape = found
        digest, size = hash_bytes(view, algorithm), view.nbytes
        out = {"name": name or "array", "kind": "array", "dtype": dtype, "shape": shape,
               "n_examples": shape[0] if shape else None}  # fmt: skip
    out.update(algorithm=algorithm, hash=digest, size_bytes=size,
               hash_s=round(time.perf_counter() - t0, 6))  # fmt: skip
    return out
