"""A study kept in an Optuna storage: opening it, and picking up where a session stopped.

``wattwise tune --storage sqlite:///study.db --resume`` keeps the Optuna study in Optuna's
own storage (any RDB URL, or a storage object), so an interrupted search can go on. The
ledger keeps one study run per session (a run is one process's measured interval); the
Optuna study's user attribute :data:`STUDY_RUNS_ATTR` lists them, oldest first, and each
session's study record names the ones before it.

On resume, trials a dead session left ``RUNNING`` (its process was killed) are told
``FAIL`` once the ledger shows their run, or their session's study run, is no longer
running; their runs are marked crashed with the energy they had flushed. Trials of a
session that is still running elsewhere are left alone.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import InvalidParameterError, RunNotFoundError, SearchError
from wattwise.store import BaseRunStore, RunRecord, RunStatus

if TYPE_CHECKING:
    import optuna

#: Trial user attribute: energy of the trial's run, in joules (before PUE).
ENERGY_ATTR = "wattwise_energy_j"
#: Trial user attribute: half-width of the energy's uncertainty band, in joules.
ENERGY_BAND_ATTR = "wattwise_energy_band_j"
#: Trial user attribute: emissions of the trial's run, in gCO2e.
CO2E_ATTR = "wattwise_co2e_g"
#: Trial user attribute: half-width of the emissions' band, in gCO2e.
CO2E_BAND_ATTR = "wattwise_co2e_band_g"
#: Trial user attribute: the trial's run id in the ledger (set when the trial starts).
RUN_ATTR = "wattwise_run_id"
#: Trial user attribute: the study run (session) the trial belongs to.
STUDY_RUN_ATTR = "wattwise_study_run_id"
#: Study user attribute: every session's study run id, oldest first.
STUDY_RUNS_ATTR = "wattwise_study_run_ids"

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):[^@/]*@")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: the only form ever written or shown."""
    return _USERINFO.sub(r"\1:***@", url)


def storage_label(study: optuna.Study) -> str:
    """Where a study lives, for records: its RDB URL without password, a journal file's
    backend and path (``JournalFileBackend(/path/journal.log)``), or the storage's type."""
    storage = getattr(study, "_storage", None)  # Optuna has no public accessor
    inner = getattr(storage, "_backend", storage)  # the cache around an RDB, a journal's file
    url = getattr(inner, "url", None)
    if isinstance(url, str):
        return redact_url(url)
    if inner is None:
        return "unknown"
    path = getattr(inner, "_file_path", None)
    return f"{type(inner).__name__}({path})" if isinstance(path, str) else type(inner).__name__


def open_study(
    *,
    storage: Any,
    resume: bool,
    study_name: str,
    direction: str,
    sampler: Any,
    pruner: Any,
) -> optuna.Study:
    """Create the study (in memory, or in ``storage``), or load it to resume.

    Raises:
        InvalidParameterError: ``resume`` without a storage; a storage URL that cannot be
            parsed or opened; a study of that name already there without ``resume``; a
            resumed study with another direction.
        SearchError: The storage's server cannot be reached.
    """
    import optuna

    if resume and storage is None:
        msg = (
            "resume=True continues a study kept in an Optuna storage, and none was given. "
            "Pass storage= (on the command line --storage sqlite:///study.db)."
        )
        raise InvalidParameterError(msg)
    shown = redact_url(storage) if isinstance(storage, str) else type(storage).__name__
    if isinstance(storage, str) and not storage.strip():
        msg = "The study storage is empty. Give an SQLAlchemy URL such as sqlite:///study.db."
        raise InvalidParameterError(msg)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=study_name, direction=direction,  # type: ignore[arg-type]
            sampler=sampler, pruner=pruner, storage=storage, load_if_exists=resume,
        )  # fmt: skip
    except optuna.exceptions.DuplicatedStudyError:
        msg = (
            f"A study named {study_name!r} already exists in {shown}. Pass --resume "
            "(resume=True) to continue it, or choose another --study-name."
        )
        raise InvalidParameterError(msg) from None
    except Exception as err:
        raise _storage_error(err, storage, shown) from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    if study.direction.name.lower() != direction:
        msg = (
            f"Study {study_name!r} in {shown} is a {study.direction.name.lower()} study; got "
            f"direction {direction!r}. Resume it with the same --direction, or choose "
            "another --study-name."
        )
        raise InvalidParameterError(msg)
    return study


def _storage_error(err: Exception, storage: Any, shown: str) -> Exception:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(storage, str):
        text = text.replace(storage, shown)
    name = type(err).__name__
    usage = name in ("ArgumentError", "NoSuchModuleError", "ValueError") or isinstance(
        err, ImportError
    )
    if name == "OperationalError" and shown.startswith("sqlite"):
        usage = True  # a sqlite file whose folder does not exist or cannot be written
    if usage:
        msg = (
            f"The study storage {shown!r} cannot be opened ({name}: {text}). Give an "
            "SQLAlchemy URL such as sqlite:///study.db (its folder must exist), or "
            "postgresql://user@host/db with its driver installed."
        )
        return InvalidParameterError(msg)
    msg = (
        f"The study storage {shown!r} cannot be reached ({name}: {text}). Check that its "
        "server runs and accepts connections, then rerun with --resume."
    )
    return SearchError(msg)


@dataclasses.dataclass
class Resumed:
    """What earlier sessions of a resumed study left, as this session starts.

    Attributes:
        trials: Trials already in the study (every state), counted against ``n_trials``.
        orphans: Numbers of trials a dead session left running, now told ``FAIL``.
        energy_j: What earlier sessions spent: their trials and their study runs, in J.
        co2e_g: The same in gCO2e.
        previous_study_run_ids: Earlier sessions' study runs, oldest first.
    """

    trials: int = 0
    orphans: list[int] = dataclasses.field(default_factory=list)
    energy_j: float = 0.0
    co2e_g: float = 0.0
    previous_study_run_ids: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return dataclasses.asdict(self)


def _ledger_run(store: BaseRunStore, run_id: Any) -> RunRecord | None:
    if not isinstance(run_id, str) or not run_id:
        return None
    try:
        return store.get_run(run_id)
    except RunNotFoundError:
        return None


def take_over(study: optuna.Study, store: BaseRunStore) -> Resumed:
    """Account earlier sessions of ``study`` and fail the trials dead sessions left running.

    A ``RUNNING`` trial is a dead session's when its run (or, if it never started, its
    session's study run) is in this ledger and no longer running once the ledger has
    reaped crashed runs. Such a trial is told ``FAIL`` and its run annotated as crashed.
    """
    import optuna

    from wattwise.tuning._records import TrialRecord

    state = Resumed()
    previous = study.user_attrs.get(STUDY_RUNS_ATTR)
    state.previous_study_run_ids = [str(x) for x in previous] if isinstance(previous, list) else []
    trials = study.get_trials(deepcopy=False)
    state.trials = len(trials)
    if not trials and not state.previous_study_run_ids:
        return state
    store.reap()
    for frozen in trials:
        attrs = frozen.user_attrs
        run = _ledger_run(store, attrs.get(RUN_ATTR))
        if frozen.state is optuna.trial.TrialState.RUNNING:
            owner = run if run is not None else _ledger_run(store, attrs.get(STUDY_RUN_ATTR))
            if owner is None or owner.status is RunStatus.RUNNING:
                continue  # not ours to judge, or its session still runs
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            state.orphans.append(frozen.number)
            if run is not None:
                record = run.record
                extra = record.setdefault("extra", {})
                extra[TrialRecord.KEY] = TrialRecord(
                    number=frozen.number, state="fail", params=dict(frozen.params),
                    error="its session ended before the trial did (the process was killed)",
                    crashed=True,
                ).to_record()  # fmt: skip
                store.flush_run(
                    run.id, {"record": record, "params": {**run.params, **frozen.params}}
                )
                run = store.get_run(run.id)
        if isinstance(attrs.get(ENERGY_ATTR), (int, float)):
            state.energy_j += float(attrs[ENERGY_ATTR])
            state.co2e_g += float(attrs.get(CO2E_ATTR) or 0.0)
        elif run is not None:
            state.energy_j += run.energy_j
            state.co2e_g += run.co2e_g
    for run_id in state.previous_study_run_ids:
        run = _ledger_run(store, run_id)
        if run is not None:
            state.energy_j += run.energy_j
            state.co2e_g += run.co2e_g
    return state
