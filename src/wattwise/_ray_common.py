"""What :mod:`wattwise.ray_tune` and its Ray Tune classes share: result keys, the study id,
the ledger's URL. Imports no Ray.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from wattwise.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from wattwise.store import BaseRunStore

#: Result key: the trial's energy so far, in joules (measured in the trial's worker).
ENERGY_KEY = "wattwise/energy_j"
#: Result key: the trial's emissions so far, in gCO2e.
CO2E_KEY = "wattwise/co2e_g"
#: Result key: the trial's run id in the ledger.
RUN_KEY = "wattwise/run_id"
#: Result key: the Ray node id the trial runs on.
NODE_KEY = "wattwise/node_id"
#: Result key: the study run id the trial belongs to (see :func:`study_id_for`).
STUDY_KEY = "wattwise/study_id"

_NAMESPACE = uuid.UUID("8a5c3c52-8f0e-4a53-9a33-7f2d0b7e6a11")  # wattwise's Ray Tune studies


def study_id_for(job_id: str, experiment: str) -> str:
    """The study run id of a Ray Tune experiment: the same in the driver and every worker.

    Derived from the Ray job id and the experiment's name (``uuid5``), so that trials on
    any node name their study without a message from the driver.
    """
    return uuid.uuid5(_NAMESPACE, f"ray-tune:{job_id}:{experiment}").hex


def ledger_url(store: BaseRunStore | str | None, owner: str) -> str:
    """The URL of the ledger that trials on other processes and nodes must write to.

    Resolved in the driver (Ray Tune changes a trial's working folder, so the project's
    default ledger would not be found from there), without opening it: a ledger that hangs
    (a dead mount) or is locked holds up no Ray Tune loop here.

    Raises:
        InvalidParameterError: ``store`` is a ``memory://`` ledger, which other processes
            cannot see.
    """
    from wattwise.store import BaseRunStore, get_store

    ledger = store if isinstance(store, BaseRunStore) else get_store(store, defer=True)
    try:
        url = str(ledger.url)
    finally:
        if not isinstance(store, BaseRunStore):
            ledger.close()
    if url.startswith("memory://"):
        msg = (
            f"The 'store' of {owner} is {url!r}, a ledger in this process's memory, but Ray "
            "Tune trials run in other processes. Give a file path or a postgresql:// URL."
        )
        raise InvalidParameterError(msg)
    return url
