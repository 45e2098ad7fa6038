"""Guess a country from the local time zone (IANA ``zone.tab`` / ``zone1970.tab``).

This is the last guess before the world average, and it is always reported as a guess.
No network, no locale: the time-zone name comes from ``TZ`` or the ``/etc/localtime``
link (or ``/etc/timezone``), and its country from the tz database's own tables.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

# Zones that name no country.
_NO_COUNTRY = frozenset(
    {"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu", "Factory"}
)
_TZ_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
_DEFAULT_LOCALTIME = Path("/etc/localtime")
_DEFAULT_TIMEZONE_FILE = Path("/etc/timezone")


def normalise_tz_name(value: str) -> str | None:
    """The IANA name in a ``TZ`` value or zoneinfo path, or ``None`` if it has none.

    ``":Europe/Paris"``, ``"/usr/share/zoneinfo/Europe/Paris"`` and ``"Europe/Paris"`` all
    give ``"Europe/Paris"``; POSIX rules such as ``"CET-1CEST"`` give ``None``.
    """
    name = value.strip().lstrip(":")
    if "zoneinfo/" in name:
        name = name.rsplit("zoneinfo/", 1)[1]
    for prefix in ("posix/", "right/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if not name or not _TZ_NAME.match(name) or name == "localtime":
        return None
    if "/" not in name and re.search(r"\d", name) and name not in _NO_COUNTRY:
        return None  # a POSIX rule like EST5EDT
    return name


def local_tz_name(
    environ: Mapping[str, str],
    *,
    localtime: Path = _DEFAULT_LOCALTIME,
    timezone_file: Path = _DEFAULT_TIMEZONE_FILE,
) -> str | None:
    """The local IANA time-zone name: ``TZ``, else the ``/etc/localtime`` link target.

    Falls back to ``/etc/timezone`` (Debian). Returns ``None`` when none is readable.
    """
    tz = environ.get("TZ")
    if tz:
        return normalise_tz_name(tz)
    try:
        if localtime.is_symlink():
            return normalise_tz_name(os.readlink(localtime))
    except OSError:
        pass
    try:
        text = timezone_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return normalise_tz_name(text) if text else None


def _search_dirs(tzdata_dirs: Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    if tzdata_dirs is not None:
        return [Path(d) for d in tzdata_dirs]
    import zoneinfo  # stdlib; imported here so that `import wattwise.carbon` stays cheap

    dirs: list[Path] = []
    if os.environ.get("TZDIR"):
        dirs.append(Path(os.environ["TZDIR"]))
    dirs += [Path(p) for p in zoneinfo.TZPATH]
    return dirs


@functools.cache
def _read_tab(path: Path) -> dict[str, str]:
    """Zone name -> first country code, from a ``zone.tab`` or ``zone1970.tab`` file."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        codes = fields[0].split(",")
        out.setdefault(fields[2].strip(), codes[0].strip().upper())
    return out


def country_for_tz(
    tz_name: str, *, tzdata_dirs: Sequence[str | os.PathLike[str]] | None = None
) -> str | None:
    """ISO alpha-2 country of an IANA time zone, or ``None`` if it names no country.

    Looks the name up in ``zone.tab`` (one country per zone), then ``zone1970.tab`` (first
    listed country), in each directory of ``tzdata_dirs`` (default: ``TZDIR`` and
    :data:`zoneinfo.TZPATH`). A backward-compatible link (``Asia/Calcutta``) is followed to
    its target when the tz directory holds it as a symbolic link.
    """
    name = normalise_tz_name(tz_name)
    if name is None or name in _NO_COUNTRY or name.startswith("Etc/"):
        return None
    for directory in _search_dirs(tzdata_dirs):
        candidates = [name]
        try:
            target = (directory / name).resolve()
            relative = target.relative_to(directory.resolve()).as_posix()
        except (OSError, ValueError):
            relative = None
        if relative and relative != name:
            candidates.append(relative)
        for tab in ("zone.tab", "zone1970.tab"):
            table = _read_tab(directory / tab)
            for candidate in candidates:
                if candidate in table:
                    return table[candidate]
    return None
