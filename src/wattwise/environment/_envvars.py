"""Environment variables a run records: an allow-list, never secrets.

Only variables named here (or added by the user through ``WATTWISE_CAPTURE_ENV``) are
stored, and a name that looks like a credential is refused even when allow-listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from wattwise.environment._redact import redact_text

#: Variables that change what a run computes or how fast, and carry no secret.
ALLOWED_ENV_VARS: tuple[str, ...] = (
    # devices
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUDA_LAUNCH_BLOCKING",
    "NVIDIA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    # determinism
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    # threads
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "KMP_AFFINITY",
    "TOKENIZERS_PARALLELISM",
    # frameworks
    "XLA_FLAGS",
    "JAX_PLATFORMS",
    "JAX_ENABLE_X64",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    # distributed jobs
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "SLURM_JOB_ID",
    "SLURM_NTASKS",
    "SLURM_CPUS_PER_TASK",
    # interpreter and locale
    "PYTHONOPTIMIZE",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "LANG",
    "LC_ALL",
    "TZ",
    # wattwise's own settings (never WATTWISE_CACHE or WATTWISE_STORE: URLs may hold keys)
    "WATTWISE_REGION",
    "WATTWISE_PUE",
    "WATTWISE_INTENSITY",
    "WATTWISE_INTENSITY_SCOPE",
    "WATTWISE_INTERVAL_S",
    "WATTWISE_FLUSH_S",
    "WATTWISE_METERS",
)

#: Recorded variables that ``wattwise reproduce`` sets again for the re-run: they change
#: results (hash order, reduction order) but do not depend on the machine.
RESTORED_ON_REPRODUCE: tuple[str, ...] = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
)

#: The user's additions to the allow-list: comma-separated names.
EXTRA_VARIABLE = "WATTWISE_CAPTURE_ENV"

_SECRET = re.compile(
    r"TOKEN(?!IZER)|SECRET|PASS(WORD|WD)?|PWD|KEY|CREDENTIAL|AUTH|COOKIE|SESSION|SIGNATURE|PRIVATE"
    r"|CERT|DSN|WEBHOOK",
    re.IGNORECASE,
)
_MAX_VALUE_CHARS = 4096


def is_secret_name(name: str) -> bool:
    """Whether a variable's name looks like it holds a credential (never recorded)."""
    return bool(_SECRET.search(name))


def allowed_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed variables that are set, name → value (values cut at 4096 chars).

    Names from ``WATTWISE_CAPTURE_ENV`` are added to :data:`ALLOWED_ENV_VARS`; any name
    that looks like a credential (``TOKEN``, ``SECRET``, ``PASSWORD``, ``KEY``, ``AUTH``
    ...) is dropped whatever the lists say, and secrets inside the values that are kept
    (``DATABASE_URL=postgres://u:PASS@h/db``, a token) are replaced by ``***``.
    """
    env = os.environ if environ is None else environ
    names = set(ALLOWED_ENV_VARS)
    names.update(n.strip() for n in env.get(EXTRA_VARIABLE, "").split(",") if n.strip())
    return {
        name: redact_text(env[name])[:_MAX_VALUE_CHARS]
        for name in sorted(names)
        if name in env and not is_secret_name(name)
    }
