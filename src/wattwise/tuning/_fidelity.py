"""Energy as the pruner's fidelity, for those outside the driver: the unit's rule, and the
study record's fidelity in one line.

:func:`energy_step_j` is ``tune()``'s rule for the default unit, for code that replays a
study (``benchmarks/tune/replay.py``) without copying its numbers. :func:`fidelity_line` is
what ``wattwise show STUDY`` and the report print; it reads a
:class:`~wattwise.tuning.StudyRecord` leniently (a record written before the fidelity was
recorded, or by hand, gives None or the words it holds). See
``docs/explanation/tuning.md``, "Energy as the fidelity axis".

Importing this module costs nothing: the tuner is imported by :func:`energy_step_j` only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattwise.tuning._records import StudyRecord


def energy_step_j(trial_energy_j: float) -> float:
    """Joules of one pruner step when energy is the fidelity and no ``energy_step_j`` is
    given: ``trial_energy_j / ENERGY_STEPS_PER_TRAINING`` (1/32), as ``wattwise.tune()``
    derives it.

    ``trial_energy_j`` is the measured energy of the study's first *complete* trial (one
    training, its run's start to end). Until such a trial exists the unit is not known and
    reports are not shown to the pruner; once it is, a report made after ``energy_j``
    joules of its trial is shown at step ``int(energy_j / step_j)``, and only when that
    step is past the trial's previous one.

    Raises:
        InvalidParameterError: ``trial_energy_j`` is not a finite number > 0 (a trial
            measured at 0 J does not set the unit).
    """
    from wattwise._config import check_positive
    from wattwise.tuning._tuner import ENERGY_STEPS_PER_TRAINING

    energy = check_positive("trial_energy_j", trial_energy_j, "wattwise.tuning.energy_step_j")
    return energy / ENERGY_STEPS_PER_TRAINING


def fidelity_line(study: StudyRecord) -> str | None:
    """The study's pruner fidelity in words, as recorded; None when the record does not say
    (a study recorded before the fidelity was, or a record without the key).

    Examples: ``energy: 1 step = 15.6 J (1/32 of trial 0's 500 J, its first complete
    trial); pruner SuccessiveHalvingPruner``; ``energy: 1 step = 2 J (given); pruner
    HyperbandPruner``; ``report steps (the pruner sees each report's own step); pruner
    MedianPruner``.
    """
    from wattwise._units import energy

    fid = study.energy_fidelity
    enabled = fid.get("enabled")
    if not isinstance(enabled, bool):
        return None
    pruner = f"; pruner {study.pruner}" if study.pruner else ""
    if pruner and study.pruner_settings:
        pruner += _settings_text(study.pruner_settings)
    if not enabled:
        return "report steps (the pruner sees each report's own step)" + pruner
    step = _positive(fid.get("step_j"))
    source = fid.get("step_j_source")
    if step is None:
        why = "no trial completed with a measured energy, so no report reached the pruner"
        return f"energy: unit not known ({why}){pruner}"
    how = _derivation(fid)
    if how is None and isinstance(source, str) and source:
        how = source
    return f"energy: 1 step = {energy(step)}" + (f" ({how})" if how else "") + pruner


def pruner_settings(pruner: object) -> dict[str, Any]:
    """What an Optuna pruner was constructed with, as far as it can be read: each parameter
    of its class's ``__init__`` that the pruner keeps as ``_<name>`` with a plain value (a
    number, a string, a bool or None), e.g. ``{"min_resource": 6, "reduction_factor": 2,
    "min_early_stopping_rate": 0, "bootstrap_count": 0}`` for wattwise's default pruner.

    Optuna keeps its pruners' settings in private attributes; this reads them leniently
    (anything else, or a pruner of another library, gives fewer keys or none) so that the
    study record says where the rungs were, not only the pruner's class.
    """
    import inspect

    try:
        names = list(inspect.signature(type(pruner).__init__).parameters)[1:]
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(pruner, f"_{name}", None)
        if value is None or isinstance(value, (bool, int, str)):
            if value is not None:
                out[name] = value
        elif isinstance(value, float) and math.isfinite(value):
            out[name] = value
    return out


def _settings_text(settings: dict[str, Any]) -> str:
    """`` (min_resource 6, reduction_factor 2)``: by name, the zero-valued left out."""
    parts = [f"{k} {v}" for k, v in sorted(settings.items()) if isinstance(v, str) or v != 0]
    return f" ({', '.join(parts)})" if parts else ""


def _derivation(fid: dict[str, Any]) -> str | None:
    """``1/32 of trial 0's 500 J, its first complete trial`` from a derived unit's keys."""
    total = _positive(fid.get("calibrated_on_energy_j"))
    n = fid.get("steps_per_training")
    if total is None or isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        return None
    from wattwise._units import energy

    trial = fid.get("calibrated_on_trial")
    if isinstance(trial, int) and not isinstance(trial, bool):
        text = f"1/{n} of trial {trial}'s {energy(total)}, its first complete trial"
    else:
        text = f"1/{n} of {energy(total)}, its first complete trial's energy"
    if fid.get("from_earlier_session") is True:
        text += ", kept from an earlier session of the study"
    return text


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None
