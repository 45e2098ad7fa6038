"""Cache keys: function identity and normalised source, arguments by content, a version.

The key is the blake3 digest (64 hex) of a canonical, type-tagged, length-prefixed
encoding of:

1. the format tag ``wattwise-cache-key/1``;
2. the function's ``module:qualname``;
3. the digest of its normalised source: the ``ast`` of its definition with decorators and
   docstring removed, dumped without line numbers, so comments, blank lines, formatting
   and docstrings do not count but every token of code does (when the source cannot be
   read, the code object: bytecode, constants and names, which depends on the Python
   version);
4. the user's ``version`` (``None`` when not given);
5. whether pickle was allowed (a pickled and a safe entry never share a key);
6. every argument, bound to the signature with defaults applied, in parameter order, by
   name, except the ignored ones. Values are encoded by content: ``None``, ``bool``,
   ``int``, ``float`` (exact, via ``float.hex``), ``complex``, ``str``, bytes-like,
   ``list``/``tuple`` (distinct), ``dict`` (order ignored), ``set``/``frozenset``,
   ``range``, dates and times, ``Decimal``, ``Fraction``, ``UUID``, enums, dataclass
   instances and named tuples (with their class), functions (by identity and normalised
   source), NumPy arrays and scalars (dtype, shape, bytes in C order), torch tensors
   (dtype, shape, bytes; not the device), ``pathlib.Path`` (content of the file or folder,
   not its name). A ``str`` is a string, never read as a path.

Not part of the key: global variables and helper functions the function calls, library
versions. Change ``version=`` when they change what the function returns.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import inspect
import struct
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from wattwise.cache._hashing import Hasher, feed_file, hash_tree, new_hasher
from wattwise.exceptions import InvalidParameterError

KEY_FORMAT = "wattwise-cache-key/1"
_ALGORITHM = "blake3"
_MAX_DEPTH = 200


def _len(n: int) -> bytes:
    return struct.pack(">Q", n)


def _atom(hasher: Hasher, tag: bytes, payload: bytes) -> None:
    hasher.update(tag + _len(len(payload)) + payload)


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


def _code_fingerprint(code: types.CodeType) -> str:
    parts: list[str] = [code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)]
    for const in code.co_consts:
        nested = isinstance(const, types.CodeType)
        parts.append(_code_fingerprint(const) if nested else repr(const))
    return "\0".join(parts)


def normalised_source(fn: Callable[..., Any]) -> tuple[str, str]:
    """``(kind, text)``: the function's AST dump (``ast``), or its code (``bytecode``).

    Comments, whitespace, decorators and the docstring are not in the AST dump.
    """
    target = inspect.unwrap(fn)
    try:
        source = textwrap.dedent(inspect.getsource(target))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        tree = None
    if tree is not None:
        name = getattr(target, "__name__", "")
        defs = [
            node for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        ]  # fmt: skip
        lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)]
        node: ast.AST | None = None
        if defs:
            func = defs[0]
            func.decorator_list = []
            func.body = _strip_docstring(func.body)
            node = func
        elif name == "<lambda>" and len(lambdas) == 1:
            node = lambdas[0]
        if node is not None:
            return "ast", ast.dump(node, annotate_fields=True, include_attributes=False)
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType):
        return "bytecode", _code_fingerprint(code)
    msg = (
        f"Cannot read the source or code of {fn!r}, so it cannot be cached by content. "
        "Cache a Python function defined with def."
    )
    raise InvalidParameterError(msg)


def function_identity(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a function."""
    target = inspect.unwrap(fn)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    return f"{module}:{qualname}"


def source_digest(fn: Callable[..., Any]) -> str:
    """Digest (hex) of :func:`normalised_source`, with its kind."""
    kind, text = normalised_source(fn)
    hasher = new_hasher(_ALGORITHM)
    hasher.update(f"{kind}\0{text}".encode())
    return f"{kind}:{hasher.hexdigest()}"


class _Encoder:
    """Feeds a canonical encoding of a value into a hasher."""

    def __init__(self, where: str) -> None:
        self.where = where

    def feed(self, hasher: Hasher, value: Any, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            msg = (
                f"Cannot hash {self.where}: it is nested more than {_MAX_DEPTH} levels deep "
                "(or contains itself). Pass a flatter value or leave it out with ignore=."
            )
            raise InvalidParameterError(msg)
        kind = type(value)
        if value is None:
            _atom(hasher, b"N", b"")
        elif kind is bool:
            _atom(hasher, b"b", b"1" if value else b"0")
        elif isinstance(value, enum.Enum):
            _atom(hasher, b"E", self._class_name(value).encode())
            self.feed(hasher, value.value, depth + 1)
        elif kind is int:
            _atom(hasher, b"i", str(value).encode())
        elif kind is float:
            _atom(hasher, b"f", value.hex().encode())
        elif kind is complex:
            _atom(hasher, b"c", f"{value.real.hex()},{value.imag.hex()}".encode())
        elif kind is str:
            _atom(hasher, b"s", value.encode("utf-8", "surrogatepass"))
        elif kind in (bytes, bytearray, memoryview):
            view = memoryview(value).cast("B")
            hasher.update(b"y" + _len(view.nbytes))
            hasher.update(view)
        elif isinstance(value, tuple) and hasattr(value, "_fields"):
            _atom(hasher, b"T", self._class_name(value).encode())
            self.feed(hasher, dict(zip(value._fields, value, strict=True)), depth + 1)
        elif isinstance(value, list | tuple):
            hasher.update((b"l" if isinstance(value, list) else b"t") + _len(len(value)))
            for item in value:
                self.feed(hasher, item, depth + 1)
        elif isinstance(value, dict | types.MappingProxyType):
            pairs = sorted(
                self._digest(k, depth) + self._digest(v, depth) for k, v in value.items()
            )
            hasher.update(b"d" + _len(len(pairs)) + b"".join(pairs))
        elif isinstance(value, set | frozenset):
            items = sorted(self._digest(item, depth) for item in value)
            hasher.update(b"S" + _len(len(items)) + b"".join(items))
        elif kind is range:
            _atom(hasher, b"r", f"{value.start},{value.stop},{value.step}".encode())
        elif isinstance(value, dt.datetime | dt.date | dt.time):
            _atom(hasher, b"D", f"{kind.__name__}:{value.isoformat()}".encode())
        elif isinstance(value, dt.timedelta):
            _atom(hasher, b"R", repr(value).encode())
        elif isinstance(value, decimal.Decimal | fractions.Fraction | uuid.UUID):
            _atom(hasher, b"x", f"{kind.__name__}:{value}".encode())
        elif isinstance(value, Path):
            self._path(hasher, value)
        elif isinstance(value, types.FunctionType):
            text = f"{function_identity(value)}\0{source_digest(value)}"
            _atom(hasher, b"F", text.encode())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            _atom(hasher, b"C", self._class_name(value).encode())
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            self.feed(hasher, fields, depth + 1)
        elif not self._array(hasher, value):
            msg = (
                f"Cannot hash {self.where} of type {kind.__module__}.{kind.__qualname__}: "
                "cached() hashes arguments by content and does not know this type. Leave it "
                "out of the key with ignore=(...) if it does not change the result, or pass "
                "a supported value (numbers, strings, containers, NumPy arrays, torch "
                "tensors, pathlib.Path, dataclasses)."
            )
            raise InvalidParameterError(msg)

    def _digest(self, value: Any, depth: int) -> bytes:
        sub = new_hasher(_ALGORITHM)
        self.feed(sub, value, depth + 1)
        return sub.digest()

    @staticmethod
    def _class_name(value: Any) -> str:
        kind = type(value)
        return f"{kind.__module__}.{kind.__qualname__}"

    def _path(self, hasher: Hasher, path: Path) -> None:
        if path.is_file():
            size = path.stat().st_size
            hasher.update(b"P" + _len(size))
            feed_file(hasher, path, _ALGORITHM)
        elif path.is_dir():
            digest, _, _ = hash_tree(path, _ALGORITHM)
            _atom(hasher, b"Q", digest.encode())
        else:
            msg = (
                f"Cannot hash {self.where}: the path {str(path)!r} does not exist. cached() "
                "hashes pathlib.Path arguments by the content of the file or folder; pass a "
                "str to hash the text of the path instead."
            )
            raise InvalidParameterError(msg)

    def _array(self, hasher: Hasher, value: Any) -> bool:
        numpy: Any = sys.modules.get("numpy")
        torch: Any = sys.modules.get("torch")
        if numpy is not None and isinstance(value, numpy.ndarray | numpy.generic):
            array = numpy.asarray(value)
            if array.dtype.hasobject:
                msg = (
                    f"Cannot hash {self.where}: a NumPy array of dtype object holds pointers, "
                    "not data. Convert it to a numeric or string dtype, or ignore it."
                )
                raise InvalidParameterError(msg)
            array = numpy.ascontiguousarray(array)
            tag = b"A" if isinstance(value, numpy.ndarray) else b"a"
            header = f"{numpy.lib.format.dtype_to_descr(array.dtype)!r}|{array.shape}"
            _atom(hasher, tag, header.encode())
            view = memoryview(array.reshape(-1).view(numpy.uint8))
            hasher.update(_len(view.nbytes))
            hasher.update(view)
            return True
        if torch is not None and isinstance(value, torch.Tensor):
            if value.is_sparse or value.is_quantized or value.layout != torch.strided:
                msg = (
                    f"Cannot hash {self.where}: sparse and quantized tensors are not "
                    "supported. Convert it with .to_dense() / .dequantize(), or ignore it."
                )
                raise InvalidParameterError(msg)
            tensor = value.detach().cpu().contiguous().reshape(-1)
            _atom(hasher, b"V", f"{value.dtype}|{tuple(value.shape)}".encode())
            raw = tensor.view(torch.uint8) if tensor.numel() else tensor
            view = memoryview(raw.numpy()).cast("B")
            hasher.update(_len(view.nbytes))
            hasher.update(view)
            return True
        return False


def digest_value(value: Any, *, where: str = "the value") -> str:
    """Content digest (hex) of one value, encoded as for a cache key."""
    hasher = new_hasher(_ALGORITHM, size_hint=1 << 30)
    _Encoder(where).feed(hasher, value)
    return hasher.hexdigest()


@dataclasses.dataclass(frozen=True)
class KeyParts:
    """What a key was made of, kept in the entry so two keys can be compared.

    Attributes:
        function: ``module:qualname``.
        source: ``ast:<digest>`` or ``bytecode:<digest>``.
        version: The user's version, or None.
        allow_pickle: Whether pickle was allowed.
        arguments: Argument name → ``(type name, content digest)``.
        ignored: Names left out of the key.
    """

    function: str
    source: str
    version: str | None
    allow_pickle: bool
    arguments: Mapping[str, tuple[str, str]]
    ignored: tuple[str, ...]

    def key(self) -> str:
        """The cache key (64 hex)."""
        hasher = new_hasher(_ALGORITHM)
        encoder = _Encoder("the key")
        encoder.feed(
            hasher,
            [KEY_FORMAT, self.function, self.source, self.version, self.allow_pickle,
             [[name, digest] for name, (_, digest) in self.arguments.items()]],
        )  # fmt: skip
        return hasher.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "function": self.function,
            "source": self.source,
            "version": self.version,
            "allow_pickle": self.allow_pickle,
            "arguments": {k: {"type": t, "digest": d} for k, (t, d) in self.arguments.items()},
            "ignored": list(self.ignored),
        }


def key_parts(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    version: str | None = None,
    ignore: Iterable[str] = (),
    allow_pickle: bool = False,
    source: str | None = None,
    signature: inspect.Signature | None = None,
) -> KeyParts:
    """The parts of the key of ``fn(*args, **kwargs)`` (see module doc).

    Args:
        fn: The function.
        args: Positional arguments.
        kwargs: Keyword arguments.
        version: The user's version of the function.
        ignore: Parameter names to leave out of the key.
        allow_pickle: Whether the result may be pickled.
        source: A precomputed :func:`source_digest` of ``fn``.
        signature: A precomputed ``inspect.signature(fn)``.

    Raises:
        InvalidParameterError: The arguments do not match the signature, or one cannot be
            hashed by content.
    """
    sig = signature or inspect.signature(fn)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as err:
        msg = f"Cannot call {function_identity(fn)} with these arguments: {err}."
        raise InvalidParameterError(msg) from err
    bound.apply_defaults()
    skip = set(ignore)
    arguments: dict[str, tuple[str, str]] = {}
    for name, value in bound.arguments.items():
        if name in skip:
            continue
        kind = type(value)
        arguments[name] = (
            f"{kind.__module__}.{kind.__qualname__}",
            digest_value(value, where=f"argument {name!r} of {function_identity(fn)}"),
        )
    return KeyParts(
        function=function_identity(fn), source=source or source_digest(fn),
        version=None if version is None else str(version), allow_pickle=allow_pickle,
        arguments=arguments, ignored=tuple(sorted(skip)),
    )  # fmt: skip
