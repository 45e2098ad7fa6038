"""Kinds of run: what a run is for, and how its energy is attributed.

A :class:`RunKind` is the public extension point for workflows that make runs of their
own (tuning's study driver, the cache's fills): it says where the run's cost goes in the
project's footprint (its *role*, written into the record), which components it never
meters, how its attribution is explained, and which process tree it is measured on.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from wattwise.exceptions import InvalidParameterError
from wattwise.store import ROLES
from wattwise.tracking._proctree import ProcessTree

#: ``(root_pid, is_child) -> ProcessTree``: the tree a run's CPU time and memory come from.
TreeFactory = Callable[[int, bool], ProcessTree]


def process_tree(root_pid: int, is_child: bool) -> ProcessTree:
    """The default tree: ``root_pid`` and all its descendants."""
    return ProcessTree(root_pid, is_child=is_child)


@dataclasses.dataclass(frozen=True)
class RunKind:
    """What kind of run this is (``Run(kind=...)`` takes one or a registered name).

    Attributes:
        name: Stored as the run's ``kind`` (``python``, ``command``, ``trial``, ``study``,
            ``cache-fill``, or a workflow's own).
        role: What a finished run of this kind is, for the footprint (one of
            ``wattwise.store.ROLES``): ``final`` (the work itself), ``trial``/``study``/
            ``tuning`` (the search that led to it; all count as tuning), ``cache-fill``
            (producing a reusable artifact, not a final run) or ``reproduce``. Written into
            the run's ``role`` column and record. A ``final`` kind run inside a study
            (``study_id``) is ``tuning``; re-running another run (``reproduces``),
            ``reproduce``.
        excluded_components: Components this kind never meters (their energy is
            attributed to other runs, e.g. the GPUs of a study's trials).
        attribution_note: A sentence put in the record (``attribution_note``) saying how
            this kind is attributed, when it differs from the process-tree rule.
        make_tree: ``(root_pid, is_child) -> ProcessTree``: the tree whose CPU time and
            memory are attributed to the run (default: the process and its descendants).
    """

    name: str
    role: str = "final"
    excluded_components: tuple[str, ...] = ()
    attribution_note: str | None = None
    make_tree: TreeFactory = process_tree

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            msg = f"A run kind needs a non-empty name. Got {self.name!r} instead."
            raise InvalidParameterError(msg)
        if self.role not in ROLES:
            msg = (
                f"Run kind {self.name!r} has role {self.role!r}; a role is one of "
                f"{', '.join(ROLES)}. Pick the one its finished runs count as."
            )
            raise InvalidParameterError(msg)


PYTHON = RunKind("python")
COMMAND = RunKind("command")
TRIAL = RunKind("trial", role="trial")
STUDY = RunKind("study", role="study")
CACHE_FILL = RunKind("cache-fill", role="cache-fill")

_kinds: dict[str, RunKind] = {k.name: k for k in (PYTHON, COMMAND, TRIAL, STUDY, CACHE_FILL)}
_kinds_lock = threading.Lock()


def register_run_kind(kind: RunKind) -> RunKind:
    """Make ``Run(kind=kind.name)`` mean ``kind`` in this process (a workflow registers its
    kinds when imported); returns ``kind``."""
    with _kinds_lock:
        _kinds[kind.name] = kind
    return kind


def run_kind(kind: RunKind | str) -> RunKind:
    """The :class:`RunKind` for a kind or a name; an unregistered name is a ``final`` kind
    measured on its process tree."""
    if isinstance(kind, RunKind):
        return kind
    with _kinds_lock:
        found = _kinds.get(kind)
    return found if found is not None else RunKind(kind)


def role_for(kind: RunKind, study_id: str | None, reproduces: str | None = None) -> str:
    """The role written into a run's record: the kind's; for a ``final`` kind, ``tuning``
    inside a study and ``reproduce`` when it re-runs another run."""
    if kind.role != "final":
        return kind.role
    if study_id is not None:
        return "tuning"
    return "reproduce" if reproduces else "final"
