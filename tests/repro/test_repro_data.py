from __future__ import annotations

import hashlib
from pathlib import Path

import blake3
import numpy as np
import pytest

import wattwise
from wattwise.exceptions import InvalidParameterError, RunStateError
from wattwise.repro import fingerprint, use_data
from wattwise.store import open_store
from wattwise.testing import FakeMeter


def test_file_fingerprint_is_the_hash_of_its_bytes(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"a,b\n1,2\n" * 1000)
    found = fingerprint(data)
    assert found["kind"] == "file" and found["name"] == "train.csv"
    assert found["algorithm"] == "blake3"
    assert found["hash"] == blake3.blake3(data.read_bytes()).hexdigest()
    assert found["size_bytes"] == 8000 and found["path"] == str(data)


def test_large_file_uses_the_parallel_path_and_gives_the_same_hash(tmp_path: Path) -> None:
    data = tmp_path / "big.bin"
    payload = np.random.default_rng(0).integers(0, 255, 3 << 20, dtype=np.uint8).tobytes()
    data.write_bytes(payload)
    assert fingerprint(data)["hash"] == blake3.blake3(payload).hexdigest()


def test_folder_fingerprint_follows_content_not_times(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    first = fingerprint(root)
    assert first["kind"] == "directory" and first["n_files"] == 2 and first["size_bytes"] == 2
    (root / "a.txt").touch()
    assert fingerprint(root)["hash"] == first["hash"]
    (root / "sub" / "b.txt").write_text("B")
    assert fingerprint(root)["hash"] != first["hash"]


def test_array_and_bytes_fingerprints() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    found = fingerprint(array, name="x")
    assert found["hash"] == blake3.blake3(array.tobytes()).hexdigest()
    assert (found["dtype"], found["shape"], found["n_examples"]) == ("<f4", [3, 4], 3)
    assert fingerprint(np.asfortranarray(array))["hash"] == found["hash"]
    assert fingerprint(b"abc")["hash"] == blake3.blake3(b"abc").hexdigest()


def test_sha256_is_the_fallback_without_blake3(monkeypatch: pytest.MonkeyPatch) -> None:
    import wattwise._hashing as hashing

    monkeypatch.setattr(hashing, "has_blake3", lambda: False)
    found = fingerprint(b"abc")
    assert found["algorithm"] == "sha256"
    assert found["hash"] == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        pytest.param("missing.csv", "no such file", id="missing-path"),
        pytest.param(object(), r"Cannot fingerprint an object", id="unsupported"),
        pytest.param(np.array([object()]), "dtype object", id="object-array"),
    ],
)
def test_fingerprint_refusals(obj: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        fingerprint(obj)


def test_run_use_data_appends_to_the_record(tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("x")
    with wattwise.track("data", meters=[FakeMeter({"cpu:0": 5.0})]) as run:
        run.use_data(data)
        use_data(np.zeros(4), name="zeros")  # module-level form, same run
    record = open_store().get_run(run.id).record
    assert [d["name"] for d in record["data"]] == ["d.txt", "zeros"]


def test_use_data_outside_a_run_says_what_to_do() -> None:
    with pytest.raises(RunStateError, match=r"wattwise\.track"):
        use_data(b"x")
