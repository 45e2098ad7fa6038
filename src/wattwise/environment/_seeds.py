"""``seed_generators``: seed every random generator in use and remember what was done.

This is the environment layer's half: it seeds and keeps the report (:func:`last_seeds`,
read by every run at its start). Recording the report into the active run is
:func:`wattwise.seed_everything`'s half (``wattwise.tracking``), so this module imports
nothing from the runs.

Libraries are seeded only if the program has already imported them: importing PyTorch
to seed it would cost seconds and memory in programs that never use it. A library that
is installed but not yet imported is listed under ``not_seeded`` with the fix (import it
first). Determinism flags are opt-in (``deterministic=True``) because deterministic
kernels can be slower, and slower means more energy.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import threading
import time
from typing import Any

from wattwise.exceptions import InvalidParameterError

_last: list[dict[str, Any]] = []
_lock = threading.Lock()

#: ``CUBLAS_WORKSPACE_CONFIG`` value that makes cuBLAS deterministic (CUDA >= 10.2).
CUBLAS_DETERMINISTIC = ":4096:8"


def last_seeds() -> dict[str, Any] | None:
    """The report of the latest ``seed_everything`` call in this process, or None."""
    with _lock:
        return dict(_last[-1]) if _last else None


def forget_seeds() -> None:
    """Forget the latest report: runs started from now on record no seeds (tests use it)."""
    with _lock:
        _last.clear()


def determinism_flags() -> dict[str, Any]:
    """The determinism settings in effect now, read back from the libraries imported."""
    flags: dict[str, Any] = {
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED"),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    torch: Any = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "are_deterministic_algorithms_enabled"):
        flags["torch.use_deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
        flags["torch.deterministic_warn_only"] = (
            torch.is_deterministic_algorithms_warn_only_enabled()
        )
        flags["torch.backends.cudnn.deterministic"] = bool(torch.backends.cudnn.deterministic)
        flags["torch.backends.cudnn.benchmark"] = bool(torch.backends.cudnn.benchmark)
    return flags


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        msg = (
            "The 'seed' parameter of seed_everything must be an int in the range "
            f"[0, 2**32). Got {seed!r} instead."
        )
        raise InvalidParameterError(msg)
    return seed


def seed_generators(
    seed: int, *, deterministic: bool = False, warn_only: bool = True
) -> dict[str, Any]:
    """Seed Python's ``random``, NumPy and PyTorch (those already imported); remember it.

    A run started later in this process records the latest report
    (:func:`last_seeds`); :func:`wattwise.seed_everything` also records it in the run
    active now.

    Args:
        seed: The seed, an int in ``[0, 2**32)``.
        deterministic: Also ask PyTorch for deterministic algorithms
            (``torch.use_deterministic_algorithms(True)``, cuDNN deterministic, cuDNN
            benchmark off) and set ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` if unset (it takes
            effect only if CUDA is not initialised yet). Off by default: these kernels can be
            slower and use more energy.
        warn_only: With ``deterministic``, an operation without a deterministic
            implementation warns instead of raising.

    Returns:
        ``seed``, ``seeded`` (libraries seeded), ``not_seeded`` (library → why),
        ``deterministic``, ``determinism_flags`` (as read back), ``notes``, ``at`` (Unix s).

    Raises:
        InvalidParameterError: ``seed`` is not an int in ``[0, 2**32)``.
    """
    seed = _check_seed(seed)
    seeded = ["random"]
    not_seeded: dict[str, str] = {}
    notes: list[str] = []
    random.seed(seed)
    numpy: Any = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
        seeded.append("numpy")
        notes.append(
            "numpy: the legacy global generator (np.random.*) is seeded; generators made with "
            "np.random.default_rng() need the seed passed explicitly"
        )
    torch: Any = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)  # seeds every CUDA device as well
        seeded.append("torch")
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
            torch.use_deterministic_algorithms(True, warn_only=warn_only)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
    tensorflow: Any = sys.modules.get("tensorflow")
    if tensorflow is not None and hasattr(tensorflow, "random"):
        tensorflow.random.set_seed(seed)
        seeded.append("tensorflow")
    for name in ("numpy", "torch"):
        if name not in seeded and importlib.util.find_spec(name) is not None:
            not_seeded[name] = (
                "installed but not imported when seed_everything ran; import it first"
            )
    if os.environ.get("PYTHONHASHSEED") is None:
        notes.append(
            "PYTHONHASHSEED is unset, so str/bytes hashing (set iteration order) varies per "
            "process; set it before Python starts (wattwise reproduce re-applies the "
            "recorded value)"
        )
    report: dict[str, Any] = {
        "seed": seed,
        "seeded": seeded,
        "not_seeded": not_seeded,
        "deterministic": deterministic,
        "determinism_flags": determinism_flags(),
        "notes": notes,
        "at": time.time(),
    }
    with _lock:
        _last[:] = [report]
    return report
