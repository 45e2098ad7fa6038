"""Decide where a run happens: explicit, env, config, cloud hint, time zone, world."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from wattwise.carbon import _timezone
from wattwise.carbon._location import Location, world_location
from wattwise.carbon._regions import _index, parse_region_as
from wattwise.exceptions import ConfigError

REGION_ENV = "WATTWISE_REGION"
CLOUD_ENV = "WATTWISE_CLOUD"
_HOW_TO_SET = "pass --region or set WATTWISE_REGION to be exact"


def resolve_location(
    region: str | None = None,
    *,
    config_region: str | None = None,
    environ: Mapping[str, str] | None = None,
    tz_name: str | None = None,
    tzdata_dirs: Sequence[str | os.PathLike[str]] | None = None,
) -> Location:
    """Where the run happens, from the most to the least trustworthy source.

    Order: ``region`` (``how="explicit"``) → ``WATTWISE_REGION`` (``"env"``) →
    ``config_region`` (``"config"``) → ``WATTWISE_CLOUD=provider:region`` (``"cloud"``; no
    metadata-server calls) → a guess from the time zone (``"timezone"``, with a warning) →
    the world average (``"world"``, with a warning). There is never a silent default
    country: a guess or the world fallback always carries ``Location.warning``, which the
    caller shows (the tracker emits it as a :class:`~wattwise.exceptions.LocationWarning`).

    Args:
        region: A region given explicitly (``--region`` or ``track(region=...)``); any form
            :func:`parse_region` accepts. Empty strings count as not given.
        config_region: The region from the project configuration file.
        environ: Environment to read (default: ``os.environ``).
        tz_name: The IANA time-zone name to guess from (default: ``TZ`` in ``environ``,
            else the ``/etc/localtime`` link).
        tzdata_dirs: Directories holding ``zone.tab`` / ``zone1970.tab`` (default: ``TZDIR``
            and :data:`zoneinfo.TZPATH`).

    Returns:
        The location.

    Raises:
        RegionError: If an explicit, environment or configured region is unknown.
        ConfigError: If ``WATTWISE_CLOUD`` is not ``provider:region``.
    """
    env = os.environ if environ is None else environ
    if region and region.strip():
        return parse_region_as(region, how="explicit", origin=None)
    env_region = env.get(REGION_ENV, "").strip()
    if env_region:
        return parse_region_as(env_region, how="env", origin=f"{REGION_ENV}")
    if config_region and config_region.strip():
        return parse_region_as(config_region, how="config", origin="the configuration file")
    cloud = env.get(CLOUD_ENV, "").strip()
    if cloud:
        if ":" not in cloud:
            msg = (
                f"{CLOUD_ENV}={cloud!r} names no region. Set it to provider:region, "
                f"e.g. {CLOUD_ENV}=gcp:europe-west1."
            )
            raise ConfigError(msg)
        return parse_region_as(cloud, how="cloud", origin=CLOUD_ENV)
    name = tz_name if tz_name is not None else _timezone.local_tz_name(env)
    if name:
        country = _timezone.country_for_tz(name, tzdata_dirs=tzdata_dirs)
        if country and country in _index().zones:
            guessed = parse_region_as(country, how="timezone", origin=None)
            warning = f"Location guessed from the time zone {name!r} as {country}; {_HOW_TO_SET}."
            return dataclasses.replace(guessed, warning=warning)
    because = f" (the time zone {name!r} names no country)" if name else ""
    warning = (
        f"Location unknown{because}: using the world-average grid intensity. "
        "Pass --region (e.g. FR, US-CAL-CISO or gcp:europe-west1) or set WATTWISE_REGION."
    )
    return world_location(how="world", warning=warning)
