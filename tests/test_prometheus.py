"""Live Prometheus metrics: the real endpoint scraped over HTTP, the real textfile, parsed
with prometheus_client's own parser; a port in use is one warning and the run goes on."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wattwise
from wattwise.exceptions import WattwiseWarning
from wattwise.testing import FakeMeter
from wattwise.tracking import add_run_observer

parser = pytest.importorskip("prometheus_client.parser")
prometheus = pytest.importorskip("wattwise.prometheus")

WATTS = {"cpu:0": 20.0, "dram:0": 3.0}


@pytest.fixture(autouse=True)
def _no_exporter_left() -> Iterator[None]:
    yield
    prometheus.disable()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, list[Any]]:
    """Samples by name, from the real endpoint, parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        text = reply.read().decode("utf-8")
    return parse(text)


def parse(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def by_component(samples: list[Any], run_id: str) -> dict[str, float]:
    return {s.labels["component"]: s.value for s in samples if s.labels["run"] == run_id}


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def busy_until(done: Any, timeout_s: float = 20.0) -> None:
    """Work until ``done()`` holds (a loaded machine samples late: no fixed sleep)."""
    end = time.perf_counter() + timeout_s
    while not done():
        assert time.perf_counter() < end, "the condition never held"
        busy(0.05)


def test_the_endpoint_serves_live_metrics_labelled_run_job_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("WATTWISE_PROMETHEUS_PORT", str(port))
    monkeypatch.setenv("WATTWISE_HOST_ID", "node-7")
    with wattwise.track("live", meters=[FakeMeter(WATTS)], interval_s=0.05) as run:
        busy_until(lambda: prometheus.active_exporter() is not None)  # up at the first sample
        busy_until(lambda: run.id in str(scrape(port).get("wattwise_run_running")))
        busy(0.2)
        live = scrape(port)
        energy = by_component(live["wattwise_energy_joules_total"], run.id)
        busy_until(lambda: by_component(scrape(port)["wattwise_energy_joules_total"],
                                        run.id)["cpu"] > energy["cpu"])  # fmt: skip
        busy(0.2)
        later = scrape(port)
    assert set(energy) == {"cpu", "dram"} and energy["cpu"] > 0
    (sample,) = [s for s in live["wattwise_run_running"] if s.labels["run"] == run.id]
    assert sample.value == 1.0 and sample.labels == {"run": run.id, "job": "", "host": "node-7"}
    # counters grow while the run goes; power is a rate the fake meter bounds
    assert by_component(later["wattwise_energy_joules_total"], run.id)["cpu"] > energy["cpu"]
    power = by_component(later["wattwise_power_watts"], run.id)
    assert 0 < power["cpu"] <= WATTS["cpu:0"] * 1.05
    # carbon per component = energy x PUE x intensity, as the run's own figure
    co2e = by_component(later["wattwise_co2e_grams_total"], run.id)
    factor = run.pue.value * run.intensity.g_per_kwh / 3.6e6
    later_energy = by_component(later["wattwise_energy_joules_total"], run.id)
    assert co2e["cpu"] == pytest.approx(later_energy["cpu"] * factor, rel=1e-9)
    (info,) = [s for s in later["wattwise_run_info"] if s.labels["run"] == run.id]
    assert info.labels["name"] == "live" and info.labels["status"] == "running"
    assert info.labels["region"] == "FR"
    (methods,) = [s for s in later["wattwise_component_info"]
                  if s.labels["run"] == run.id and s.labels["component"] == "cpu"]  # fmt: skip
    assert methods.labels["meter"] == "fake"
    # once ended: the final values, shown once, then the run leaves the page
    final = scrape(port)
    result = {c.component: c.energy_j for c in run.result.components}
    assert by_component(final["wattwise_energy_joules_total"], run.id) == pytest.approx(result)
    assert [s.value for s in final["wattwise_run_running"] if s.labels["run"] == run.id] == [0]
    gone = scrape(port)
    assert not [s for s in gone.get("wattwise_run_running", []) if s.labels["run"] == run.id]


def test_the_endpoint_listens_on_127_0_0_1_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_PROMETHEUS_PORT", str(free_port()))
    with wattwise.track("addr", meters=[FakeMeter(WATTS)], interval_s=0.05):
        busy_until(lambda: prometheus.active_exporter() is not None)
        exporter = prometheus.active_exporter()
        assert exporter is not None and exporter.addr == "127.0.0.1"


def test_a_port_in_use_is_one_warning_and_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        monkeypatch.setenv("WATTWISE_PROMETHEUS_PORT", str(holder.getsockname()[1]))
        with (
            pytest.warns(WattwiseWarning, match="Cannot serve Prometheus metrics") as seen,
            wattwise.track("busy-port", meters=[FakeMeter(WATTS)], interval_s=0.05) as run,
        ):
            busy(0.3)
    said = [str(w.message) for w in seen if "Prometheus" in str(w.message)]
    assert len(said) == 1 and "set WATTWISE_PROMETHEUS_PORT to a free port" in said[0]
    assert run.result.status == "finished" and run.result.energy_j > 0
    assert prometheus.active_exporter() is None


def test_a_bad_port_setting_is_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTWISE_PROMETHEUS_PORT", "ninety")
    with (
        pytest.warns(WattwiseWarning, match=r"'ninety' is not a port number") as seen,
        wattwise.track("bad", meters=[FakeMeter(WATTS)], interval_s=0.05) as run,
    ):
        busy(0.2)
    assert sum("port number" in str(w.message) for w in seen) == 1
    assert run.result.energy_j > 0


def test_the_textfile_is_written_atomically_and_keeps_the_final_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    monkeypatch.setenv("WATTWISE_PROMETHEUS_TEXTFILE", str(folder / "wattwise-{pid}.prom"))
    target = folder / f"wattwise-{__import__('os').getpid()}.prom"
    reads: list[str] = []
    stop = threading.Event()

    def reader() -> None:  # every read is a whole file: never a partial write
        while not stop.is_set():
            if target.exists():
                reads.append(target.read_text(encoding="utf-8"))
            time.sleep(0.005)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with wattwise.track("batch", meters=[FakeMeter(WATTS)], interval_s=0.05) as run:
            busy(0.5)
            busy_until(lambda: bool(reads), 60.0)  # a loaded machine writes late
    finally:
        stop.set()
        thread.join()
    prometheus.disable()  # waits for the last write
    assert reads, "the textfile was never written while the run went"
    for text in reads:
        assert text.endswith("\n")
        assert parse(text)  # parses completely
    final = parse(target.read_text(encoding="utf-8"))
    result = {c.component: c.energy_j for c in run.result.components}
    assert by_component(final["wattwise_energy_joules_total"], run.id) == pytest.approx(result)
    assert [s.value for s in final["wattwise_run_running"]] == [0.0]
    assert sorted(p.name for p in folder.iterdir()) == [target.name]  # no temporary left


def test_nothing_is_imported_unless_enabled(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        import wattwise
        from wattwise.testing import FakeMeter
        with wattwise.track("quiet", meters=[FakeMeter({"cpu:0": 5.0})], interval_s=0.05):
            sum(range(3000000))
        print(sorted(m for m in sys.modules
                     if m.startswith("prometheus_client") or m == "wattwise.prometheus"))
    """)
    env = {"PATH": "/usr/bin:/bin", "WATTWISE_REGION": "FR", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_an_observer_hears_each_sample_and_the_end() -> None:
    heard: list[Any] = []
    remove = add_run_observer(heard.append)
    try:
        with wattwise.track("heard", meters=[FakeMeter(WATTS)], interval_s=0.05) as run:
            busy_until(lambda: len([s for s in heard if s.run_id == run.id]) >= 2)
    finally:
        remove()
    mine = [s for s in heard if s.run_id == run.id]
    assert [s.status for s in mine[:-1]] == ["running"] * (len(mine) - 1) and len(mine) >= 3
    assert mine[-1].status == "finished" and mine[-1].energy_j == run.result.energy_j
    energies = [s.energy_j for s in mine]
    assert energies == sorted(energies)


def test_an_observer_that_raises_is_dropped_and_said_once() -> None:
    calls = []

    def broken(sample: Any) -> None:
        calls.append(sample)
        msg = "boom"
        raise RuntimeError(msg)

    remove = add_run_observer(broken)
    try:
        with (
            pytest.warns(WattwiseWarning, match="failed and was dropped"),
            wattwise.track("x", meters=[FakeMeter(WATTS)], interval_s=0.05) as run,
        ):
            busy(0.3)
    finally:
        remove()
    assert len(calls) == 1 and run.result.status == "finished"


def test_wattwise_run_leaves_the_final_values_in_the_textfile(tmp_path: Path) -> None:
    """A real `wattwise run` in its own process: the file holds the run's end at exit."""
    target = tmp_path / "wattwise.prom"
    project = Path.cwd()  # the test's own project (conftest), under tmp_path
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "WATTWISE_REGION": "FR",
           "HOME": str(tmp_path), "WATTWISE_CEILING_DIRECTORIES": str(tmp_path),
           "WATTWISE_PROMETHEUS_TEXTFILE": str(target)}  # fmt: skip
    work = "import time\nt = time.time()\nwhile time.time() - t < 1.0:\n    pass\n"
    cmd = [sys.executable, "-m", "wattwise", "run", "--", sys.executable, "-c", work]
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    final = parse(target.read_text(encoding="utf-8"))
    assert [s.value for s in final["wattwise_run_running"]] == [0.0]
    (info,) = final["wattwise_run_info"]
    assert info.labels["status"] == "finished" and info.labels["kind"] == "command"
    assert sum(s.value for s in final["wattwise_energy_joules_total"]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "wattwise.prom"]
    assert "wattwise: run" in done.stderr + done.stdout  # the command's summary, as ever
