from __future__ import annotations

import dataclasses
import enum
import importlib.util
import sys
import textwrap
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wattwise.cache import cached, digest_value, source_digest
from wattwise.exceptions import InvalidParameterError


def load(tmp_path: Path, name: str, source: str) -> Any:
    """Import ``source`` as a fresh module named ``name`` and return its ``f``."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.f


BASE = '''
def f(x, y=2):
    """Add."""
    return x + y
'''
COSMETIC = '''
# a comment
def f(x,   y=2):
    """A different docstring."""

    return (x +
            y)  # trailing comment
'''
CHANGED = """
def f(x, y=2):
    return x - y
"""


def test_source_is_normalised_comments_and_docstrings_do_not_count(tmp_path: Path) -> None:
    base = source_digest(load(tmp_path, "mod_base", BASE))
    assert base.startswith("ast:")
    assert source_digest(load(tmp_path, "mod_cosmetic", COSMETIC)) == base
    assert source_digest(load(tmp_path, "mod_changed", CHANGED)) != base


def test_key_depends_on_identity_arguments_and_version(tmp_path: Path) -> None:
    f = cached(load(tmp_path, "mod_k1", BASE))
    g = cached(load(tmp_path, "mod_k2", BASE))  # same source, other module
    assert f.cache_key(1) == f.cache_key(1, 2) == f.cache_key(x=1, y=2) == f.cache_key(1, y=2)
    assert f.cache_key(1) != f.cache_key(2) != f.cache_key(1, 3)
    assert f.cache_key(1) != g.cache_key(1)
    assert cached(f.__wrapped__, version=2).cache_key(1) != f.cache_key(1)
    assert cached(f.__wrapped__, ignore=("y",)).cache_key(1, 5) == cached(
        f.__wrapped__, ignore=("y",)
    ).cache_key(1, 6)
    assert cached(f.__wrapped__, allow_pickle=True).cache_key(1) != f.cache_key(1)
    assert len(f.cache_key(1)) == 64


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Config:
    lr: float
    layers: tuple[int, ...]


Pair = namedtuple("Pair", "a b")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(1, 1.0, id="int-float"),
        pytest.param(1, True, id="int-bool"),
        pytest.param([1, 2], (1, 2), id="list-tuple"),
        pytest.param("1", 1, id="str-int"),
        pytest.param(0.0, -0.0, id="signed-zero"),
        pytest.param(b"ab", "ab", id="bytes-str"),
        pytest.param({1, 2}, [1, 2], id="set-list"),
        pytest.param(Pair(1, 2), (1, 2), id="namedtuple-tuple"),
        pytest.param(Color.RED, 1, id="enum-value"),
        pytest.param(np.zeros(4, np.float32), np.zeros(4, np.float64), id="dtype"),
        pytest.param(np.zeros((2, 3)), np.zeros((3, 2)), id="shape"),
        pytest.param(np.float64(1.0), np.array(1.0), id="scalar-0d"),
        pytest.param(Config(0.1, (1,)), Config(0.1, (2,)), id="dataclass"),
    ],
)
def test_different_values_give_different_digests(a: object, b: object) -> None:
    assert digest_value(a) != digest_value(b)


def test_equal_content_gives_equal_digests(tmp_path: Path) -> None:
    assert digest_value({"a": 1, "b": [2, 3]}) == digest_value({"b": [2, 3], "a": 1})
    assert digest_value({3, 1, 2}) == digest_value({1, 2, 3})
    assert digest_value(float("nan")) == digest_value(float("nan"))
    array = np.arange(12.0).reshape(3, 4)
    assert digest_value(np.asfortranarray(array)) == digest_value(array.copy())
    assert digest_value(array[:, ::2]) == digest_value(np.ascontiguousarray(array[:, ::2]))
    assert digest_value(Config(0.1, (1,))) == digest_value(Config(0.1, (1,)))
    one, two = tmp_path / "one.csv", tmp_path / "elsewhere" / "two.csv"
    two.parent.mkdir()
    one.write_text("x,y\n1,2\n")
    two.write_text("x,y\n1,2\n")
    assert digest_value(one) == digest_value(two)  # content, not name
    assert digest_value(str(one)) != digest_value(str(two))  # a str is text
    two.write_text("x,y\n1,3\n")
    assert digest_value(one) != digest_value(two)


def test_folders_are_hashed_by_their_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "x.txt").write_text("x")
    assert digest_value(a) == digest_value(b)
    (b / "sub" / "y.txt").write_text("y")
    assert digest_value(a) != digest_value(b)


@pytest.mark.torch
def test_tensors_are_hashed_by_content() -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert digest_value(t) == digest_value(t.clone()) == digest_value(t.t().t().contiguous())
    assert digest_value(t) != digest_value(t.double())
    assert digest_value(t) != digest_value(t.reshape(3, 2))
    assert digest_value(t.to(torch.bfloat16)) != digest_value(t.to(torch.float16))
    assert digest_value(torch.zeros(0)) != digest_value(torch.zeros(0, dtype=torch.int8))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(object(), "does not know this type", id="object"),
        pytest.param(np.array([object()]), "dtype object", id="object-array"),
        pytest.param(Path("no/such/file"), "does not exist", id="missing-path"),
    ],
)
def test_unsupported_arguments_are_clear_errors(value: object, match: str) -> None:
    @cached
    def f(model: object) -> int:
        return 1

    with pytest.raises(InvalidParameterError, match=match) as info:
        f(value)
    assert "argument 'model'" in str(info.value)


def test_self_referencing_values_are_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(InvalidParameterError, match="nested more than"):
        digest_value(loop)


def test_ignore_must_name_parameters() -> None:
    with pytest.raises(InvalidParameterError, match="'ignore' parameter"):
        cached(lambda x: x, ignore=("verbose",))


def test_lambdas_and_methods_can_be_cached() -> None:
    square = cached(lambda x: x * x)
    assert square.cache_key(3) != square.cache_key(4)

    class Model:
        @cached(ignore=("self",))
        def predict(self, x: int) -> int:
            return x + 1

    assert Model.predict.cache_key(Model(), 1) == Model.predict.cache_key(Model(), 1)
    assert Model().predict(1) == 2
