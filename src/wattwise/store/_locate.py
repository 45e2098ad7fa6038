"""Where the ledger lives: ``.wattwise/ledger.db`` at the project root, found like git."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wattwise.exceptions import ConfigError

STATE_DIR = ".wattwise"
LEDGER_FILE = "ledger.db"


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project root for ``start`` (default: the working directory).

    Walks up like git: the nearest folder holding ``.wattwise/``; failing that the
    nearest holding ``.git``; failing that ``start`` itself. Like ``GIT_CEILING_DIRECTORIES``,
    ``WATTWISE_CEILING_DIRECTORIES`` (paths separated by ``os.pathsep``) stops the walk: a
    ceiling folder is still examined, the folders above it are not.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    chain = [here]
    ceilings = {
        Path(p).resolve()
        for p in os.environ.get("WATTWISE_CEILING_DIRECTORIES", "").split(os.pathsep)
        if p
    }
    for folder in here.parents:
        if chain[-1] in ceilings:
            break
        chain.append(folder)
    for marker in (STATE_DIR, ".git"):
        for folder in chain:
            if (folder / marker).exists():
                return folder
    return here


def ledger_path(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    start: str | os.PathLike[str] | None = None,
) -> Path:
    """The ledger file for an explicit URL, ``WATTWISE_STORE``, or the project root.

    Accepted forms: a file path, or ``sqlite:///path``.
    """
    env = os.environ if environ is None else environ
    text = url or env.get("WATTWISE_STORE") or ""
    if not text:
        return find_project_root(start) / STATE_DIR / LEDGER_FILE
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///") :])
    if "://" in text:
        scheme = text.split("://", 1)[0]
        msg = (
            f"Unsupported store URL scheme {scheme!r} in {text!r}. Use a file path or "
            "sqlite:///path/to/ledger.db."
        )
        raise ConfigError(msg)
    return Path(text)
