"""Live run metrics for Prometheus: an HTTP endpoint, or a textfile for node-exporter.

Opt-in, from the environment (``wattwise run`` and ``wattwise.track`` alike, no code
change) or from Python::

    WATTWISE_PROMETHEUS_PORT=9464        # http://127.0.0.1:9464/metrics while runs go
    WATTWISE_PROMETHEUS_ADDR=0.0.0.0     # listen on every interface (a Kubernetes pod)
    WATTWISE_PROMETHEUS_TEXTFILE=/var/lib/node_exporter/textfile/wattwise.prom

    import wattwise.prometheus
    wattwise.prometheus.enable(port=9464)          # or textfile="...prom"

It needs ``prometheus_client`` (``pip install 'wattwise[prometheus]'``), imported only when
enabled. Metrics, labelled ``run`` (the run id), ``job`` (the SLURM or torchrun job id, else
empty) and ``host``, and ``component`` (``cpu``, ``gpu``, ``dram``...) where it applies:

| metric | type | what |
|---|---|---|
| `wattwise_energy_joules_total` | counter | energy attributed to the run (IT energy) |
| `wattwise_energy_band_joules` | gauge | its uncertainty band (±) |
| `wattwise_power_watts` | gauge | mean power over the last sampling interval |
| `wattwise_co2e_grams_total` | counter | operational carbon (energy × PUE × grid intensity) |
| `wattwise_component_info` | gauge | 1, labels `method` and `meter` |
| `wattwise_run_duration_seconds` | gauge | time since the run started |
| `wattwise_run_running` | gauge | 1 while it runs, 0 once it has ended |
| `wattwise_grid_intensity_gco2e_per_kwh` | gauge | the grid intensity applied |
| `wattwise_pue_ratio` | gauge | the PUE applied |
| `wattwise_run_info` | gauge | 1, labels `name`, `kind`, `region`, `status` |

A run's series appear at its first sample and are updated at each (``interval_s``). Once it
ends, its final values (``wattwise_run_running 0``) stay for one more scrape (or one more
write of the textfile), then leave: a long study does not grow the page without end. The
endpoint lives as long as the process; for short jobs, whose end a scrape may miss, prefer
the textfile, which keeps the last values written.

The endpoint binds 127.0.0.1 unless told otherwise. The textfile is written atomically (a
hidden temporary file in the same folder, then renamed), by a thread of its own, so a slow
disk never holds the sampler up; ``{pid}`` and ``{host}`` in its path are replaced, so
processes sharing a folder (the ranks of a job) do not overwrite each other.

Never harms the job: a port in use, an unwritable path or a missing ``prometheus_client``
is one warning in the run's warnings and the run goes on unobserved. In a process started
by ``wattwise run`` (``WATTWISE_RUN_ID`` set) the environment settings are left to
``wattwise run`` itself, whose run already counts this process's energy.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattwise.exceptions import InvalidParameterError, WattwiseError
from wattwise.tracking import RunObserver

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from wattwise.tracking import LiveSample

PORT_ENV = "WATTWISE_PROMETHEUS_PORT"
ADDR_ENV = "WATTWISE_PROMETHEUS_ADDR"
TEXTFILE_ENV = "WATTWISE_PROMETHEUS_TEXTFILE"
#: The address the endpoint listens on unless told otherwise: this machine only.
DEFAULT_ADDR = "127.0.0.1"
#: How long :func:`disable` (and the process's exit) waits for the last textfile write: a
#: hung filesystem never holds the exit up longer.
FINAL_WRITE_WAIT_S = 1.0

_LABELS = ("run", "job", "host")


@dataclasses.dataclass
class _Series:
    sample: LiveSample
    power_w: dict[str, float]
    shown_by: set[str] = dataclasses.field(default_factory=set)


class _Board:
    """The latest sample of each run, shared by the endpoint and the textfile writer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, _Series] = {}
        self.readers: set[str] = set()

    def update(self, sample: LiveSample) -> None:
        with self.lock:
            old = self.runs.get(sample.run_id)
            power: dict[str, float] = {}
            for comp in sample.components:
                before = None
                if old is not None:
                    before = next((c for c in old.sample.components
                                   if c.component == comp.component), None)  # fmt: skip
                if before is not None and old is not None and sample.at > old.sample.at:
                    power[comp.component] = max(0.0, comp.energy_j - before.energy_j) / (
                        sample.at - old.sample.at
                    )
                elif sample.duration_s > 0:  # the first sample: the mean since the start
                    power[comp.component] = comp.energy_j / sample.duration_s
            self.runs[sample.run_id] = _Series(sample, power)

    def take(self, reader: str) -> list[_Series]:
        """The runs to show ``reader``; a run that has ended leaves once every reader
        has shown its final values."""
        with self.lock:
            shown = list(self.runs.values())
            for run_id, series in list(self.runs.items()):
                if series.sample.status == "running":
                    continue
                series.shown_by.add(reader)
                if self.readers <= series.shown_by:
                    del self.runs[run_id]
            return shown


def _families(series: list[_Series]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    comp_labels = [*_LABELS, "component"]
    energy = CounterMetricFamily(
        "wattwise_energy_joules",
        "Energy attributed to the run (IT energy, before PUE), joules",
        labels=comp_labels,
    )
    band = GaugeMetricFamily(
        "wattwise_energy_band_joules",
        "Uncertainty band (±) of wattwise_energy_joules_total, joules",
        labels=comp_labels,
    )
    power = GaugeMetricFamily(
        "wattwise_power_watts",
        "Mean power attributed to the run over the last sampling interval, watts",
        labels=comp_labels,
    )
    co2e = CounterMetricFamily(
        "wattwise_co2e_grams",
        "Operational carbon of the run (energy x PUE x grid intensity), grams CO2e",
        labels=comp_labels,
    )
    comp_info = GaugeMetricFamily(
        "wattwise_component_info",
        "How a component is measured (method: measured or estimated; meter)",
        labels=[*comp_labels, "method", "meter"],
    )
    duration = GaugeMetricFamily(
        "wattwise_run_duration_seconds",
        "Seconds since the run started (its whole duration once it has ended)",
        labels=list(_LABELS),
    )
    running = GaugeMetricFamily(
        "wattwise_run_running", "1 while the run runs, 0 once it has ended", labels=list(_LABELS)
    )
    intensity = GaugeMetricFamily(
        "wattwise_grid_intensity_gco2e_per_kwh",
        "Grid carbon intensity applied to the run, gCO2e per kWh",
        labels=list(_LABELS),
    )
    pue = GaugeMetricFamily(
        "wattwise_pue_ratio", "Power usage effectiveness applied to the run", labels=list(_LABELS)
    )
    info = GaugeMetricFamily(
        "wattwise_run_info",
        "The run's name, kind, grid zone and status (value 1)",
        labels=[*_LABELS, "name", "kind", "region", "status"],
    )
    for item in series:
        s = item.sample
        ids = [s.run_id, s.job or "", s.host]
        for c in s.components:
            labels = [*ids, c.component]
            energy.add_metric(labels, c.energy_j)
            if c.band_j is not None:
                band.add_metric(labels, c.band_j)
            if c.component in item.power_w:
                power.add_metric(labels, item.power_w[c.component])
            co2e.add_metric(labels, c.co2e_g)
            comp_info.add_metric([*labels, c.method, c.meter], 1.0)
        duration.add_metric(ids, s.duration_s)
        running.add_metric(ids, 1.0 if s.status == "running" else 0.0)
        intensity.add_metric(ids, s.intensity_g_per_kwh)
        pue.add_metric(ids, s.pue)
        info.add_metric([*ids, s.name, s.kind, s.region, s.status], 1.0)
    yield from (energy, band, power, co2e, comp_info, duration, running, intensity, pue,
                info)  # fmt: skip


class _View:
    """A prometheus_client collector: the board as one reader sees it."""

    def __init__(self, board: _Board, reader: str) -> None:
        self._board = board
        self._reader = reader
        board.readers.add(reader)

    def collect(self) -> Iterator[Any]:
        yield from _families(self._board.take(self._reader))

    def describe(self) -> list[Any]:  # no collect() at registration: it would take a show
        return []


def _textfile_path(text: str) -> Path:
    return Path(text.replace("{pid}", str(os.getpid())).replace("{host}", socket.gethostname()))


class PrometheusExporter(RunObserver):
    """The run observer behind :func:`enable` (one per process): it hears samples only.

    Args:
        port: Serve ``/metrics`` on this port (None: no endpoint).
        addr: The address to listen on.
        textfile: Write the metrics to this file for node-exporter (None: no file).
        warn: ``(kind, text)``: how a later fault (a failed write) is said once.

    Raises:
        WattwiseError: ``prometheus_client`` is missing, or the port cannot be bound.
    """

    def __init__(
        self, *, port: int | None = None, addr: str = DEFAULT_ADDR,
        textfile: str | os.PathLike[str] | None = None,
        warn: Callable[[str, str], None] | None = None, from_environment: bool = False,
    ) -> None:  # fmt: skip
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as err:
            msg = (
                "Live Prometheus metrics need prometheus_client, which is not installed. "
                "Install it with: pip install 'wattwise[prometheus]'."
            )
            raise WattwiseError(msg) from err
        self.port, self.addr = port, addr
        self.textfile = _textfile_path(os.fspath(textfile)) if textfile else None
        self.from_environment = from_environment
        self._warn = warn
        self._board = _Board()
        self._server: Any = None
        self._wake = threading.Event()
        self._dirty = False
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._file_registry: CollectorRegistry | None = None
        if port is not None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_View(self._board, "http"))
            try:
                self._server, _ = start_http_server(port, addr=addr, registry=registry)
            except OSError as err:
                msg = (
                    f"Cannot serve Prometheus metrics on {addr}:{port}: {err.strerror or err}. "
                    f"Another process (another rank, or 'wattwise run' above this one) may "
                    f"hold it: set {PORT_ENV} to a free port, or use {TEXTFILE_ENV}."
                )
                raise WattwiseError(msg) from err
            self.port = int(self._server.server_address[1])
        if self.textfile is not None:
            self._file_registry = CollectorRegistry(auto_describe=False)
            self._file_registry.register(_View(self._board, "textfile"))
            self._writer = threading.Thread(target=self._write_loop,
                                            name="wattwise-prometheus", daemon=True)  # fmt: skip
            self._writer.start()
            # At exit the last values (a run's end) reach the file: a daemon thread would be
            # cut mid-write. Bounded by FINAL_WRITE_WAIT_S.
            atexit.register(self.close)

    def sampled(self, sample: LiveSample) -> None:
        """Take a run's sample (the observer event: returns at once)."""
        self._board.update(sample)
        self._dirty = True
        self._wake.set()

    __call__ = sampled  # an observer of samples, as a plain callable is

    def closing(self) -> None:
        """At exit, after the open runs ended: the textfile gets their final values."""
        self.close()

    def __repr__(self) -> str:
        where = [f"http://{self.addr}:{self.port}/metrics"] if self.port is not None else []
        where += [str(self.textfile)] if self.textfile is not None else []
        return f"<PrometheusExporter {' and '.join(where) or 'off'}>"

    def _write_loop(self) -> None:
        failed = False
        while True:
            self._wake.wait()
            self._wake.clear()
            stopping = self._stop.is_set()
            if not self._dirty:  # woken to stop, nothing new: the file keeps its values
                return
            self._dirty = False
            try:
                self.write_textfile()
                failed = False
            except Exception as err:  # one warning per streak of failures
                if not failed and self._warn is not None:
                    with contextlib.suppress(Exception):
                        self._warn("prometheus:textfile", f"cannot write the Prometheus "
                                   f"textfile {self.textfile}: {err}")  # fmt: skip
                failed = True
            if stopping:
                return

    def write_textfile(self) -> None:
        """Write the metrics now (atomically: a hidden temporary file, then renamed)."""
        from prometheus_client import generate_latest

        if self.textfile is None or self._file_registry is None:
            return
        text = generate_latest(self._file_registry)
        tmp = self.textfile.with_name(f".{self.textfile.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.textfile)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def close(self) -> None:
        """Stop the endpoint; write the textfile a last time (waiting at most
        :data:`FINAL_WRITE_WAIT_S`)."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.shutdown()
                self._server.server_close()
            self._server = None
        if self._writer is not None:
            self._stop.set()
            self._wake.set()
            self._writer.join(FINAL_WRITE_WAIT_S)
            self._writer = None
            with contextlib.suppress(Exception):
                atexit.unregister(self.close)


_lock = threading.Lock()
_active: PrometheusExporter | None = None


def active_exporter() -> PrometheusExporter | None:
    """The exporter observing this process's runs, or None."""
    return _active


def enable(
    *, port: int | None = None, addr: str = DEFAULT_ADDR,
    textfile: str | os.PathLike[str] | None = None,
    warn: Callable[[str, str], None] | None = None, from_environment: bool = False,
) -> PrometheusExporter:  # fmt: skip
    """Expose the live metrics of this process's runs (replacing any earlier exporter).

    Args:
        port: Serve ``http://<addr>:<port>/metrics`` (0: a free port, see ``.port``).
        addr: The address to listen on (default 127.0.0.1: this machine only).
        textfile: Also (or instead) write them to this ``.prom`` file for node-exporter's
            textfile collector; ``{pid}`` and ``{host}`` are replaced.
        warn: ``(kind, text)``: how a later write failure is said (once).
        from_environment: Set up from the environment (:func:`disable` with
            ``only_from_environment`` stops only these).

    Returns:
        The exporter.

    Raises:
        InvalidParameterError: Neither ``port`` nor ``textfile``, or a port out of range.
        WattwiseError: ``prometheus_client`` is missing, or the port cannot be bound.
    """
    global _active
    if port is None and not textfile:
        msg = ("wattwise.prometheus.enable() needs port=, textfile= or both: where the "
               "metrics go.")  # fmt: skip
        raise InvalidParameterError(msg)
    if port is not None and (isinstance(port, bool) or not 0 <= port <= 65535):
        msg = f"The 'port' parameter must be an int in [0, 65535]. Got {port!r} instead."
        raise InvalidParameterError(msg)
    with _lock:
        if _active is not None:
            _active.close()
            _active = None
        _active = PrometheusExporter(port=port, addr=addr, textfile=textfile, warn=warn,
                                     from_environment=from_environment)  # fmt: skip
        return _active


def disable(*, only_from_environment: bool = False) -> None:
    """Stop the exporter: the endpoint closes, the textfile is written a last time (and
    kept: node-exporter goes on reading the final values)."""
    global _active
    with _lock:
        if _active is None or (only_from_environment and not _active.from_environment):
            return
        exporter, _active = _active, None
    exporter.close()


def settings_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``enable()``'s arguments from ``WATTWISE_PROMETHEUS_*`` (empty: not asked for).

    Raises:
        InvalidParameterError: ``WATTWISE_PROMETHEUS_PORT`` is not a port number.
    """
    env = os.environ if environ is None else environ
    port_text = env.get(PORT_ENV, "").strip()
    textfile = env.get(TEXTFILE_ENV, "").strip()
    out: dict[str, Any] = {}
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            msg = (
                f"{PORT_ENV}={port_text!r} is not a port number: it must be an integer from 1 "
                f"to 65535. Set it to a free port (9464 is Prometheus' usual for exporters), "
                "or unset it."
            )
            raise InvalidParameterError(msg)
        out["port"] = int(port_text)
        out["addr"] = env.get(ADDR_ENV, "").strip() or DEFAULT_ADDR
    if textfile:
        out["textfile"] = textfile
    return out


def enable_from_environment(*, warn: Callable[[str, str], None]) -> PrometheusExporter | None:
    """Enable what ``WATTWISE_PROMETHEUS_*`` asks for; a fault is one ``warn`` and no more.

    Called by :mod:`wattwise.tracking` on a run's first sample. In a process started by
    ``wattwise run`` (``WATTWISE_RUN_ID`` set) it does nothing: ``wattwise run`` serves.
    """
    if os.environ.get("WATTWISE_RUN_ID"):
        return None
    try:
        settings = settings_from_environment()
        if not settings:
            return None
        exporter = enable(warn=warn, from_environment=True, **settings)
    except WattwiseError as err:
        warn("prometheus", f"live Prometheus metrics are off: {err}")
        return None
    if exporter.textfile is not None and exporter.textfile.suffix != ".prom":
        warn(
            "prometheus:suffix",
            f"{TEXTFILE_ENV}={exporter.textfile}: node-exporter's "
            "textfile collector reads only *.prom files; name it so to have it read",
        )
    return exporter
