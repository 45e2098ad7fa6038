"""BoAmps export: valid against Boavizta's own schemas (shipped here, resolved offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from report_support import HARDWARE, insert_run, tracked_run

from wattwise.cli import main
from wattwise.exceptions import InvalidParameterError
from wattwise.report import boamps_report, select_runs
from wattwise.report._boamps import missing_fields
from wattwise.store import open_store

SCHEMAS = Path(__file__).parent / "boamps_schema"
TASK = {
    "taskStage": "training",
    "taskFamily": "image classification",
    "algorithms": [{"algorithmType": "neural network", "algorithmName": "cnn",
                    "framework": "pytorch"}],
    "dataset": [{"dataUsage": "input", "dataType": "image", "dataQuantity": 1797}],
}  # fmt: skip
CONTEXT = {
    "task": TASK,
    "header": {"licensing": "CC-BY-4.0", "publisher": {"name": "lab", "confidentialityLevel":
                                                        "public"}},
    "infrastructure": {"components": [{"componentType": "cpu", "family": "xeon"}]},
}  # fmt: skip


def validate(report: dict[str, Any]) -> None:
    """Against report_schema.json and its $refs, with jsonschema when installed; else the
    required fields and types, field by field."""
    try:
        import jsonschema
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4
    except ImportError:
        _validate_by_hand(report)
        return
    resources = []
    for path in SCHEMAS.glob("*_schema.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append(
            (schema["id"], Resource.from_contents(schema, default_specification=DRAFT4))
        )
    registry: Registry[Any] = Registry().with_resources(resources)
    main_schema = json.loads((SCHEMAS / "report_schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(main_schema, registry=registry)
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def _validate_by_hand(report: dict[str, Any]) -> None:
    assert {"task", "measures", "infrastructure"} <= set(report)
    assert report["header"]["reportDatetime"]
    for measure in report["measures"]:
        assert isinstance(measure["measurementMethod"], str)
        assert isinstance(measure["powerConsumption"], float)
    for comp in report["infrastructure"]["components"]:
        assert isinstance(comp["nbComponent"], int) and comp["componentType"]
    assert report["infrastructure"]["infraType"] in ("publicCloud", "privateCloud",
                                                     "onPremise", "other")  # fmt: skip


def test_the_schemas_reject_what_they_should() -> None:
    pytest.importorskip("jsonschema")
    with pytest.raises(AssertionError, match="taskFamily"):
        validate({"task": {**TASK, "taskFamily": None}, "measures": [], "infrastructure": {}})
    # the $ref'd schemas apply too (resolved to the files here, not fetched)
    with pytest.raises(AssertionError, match="'1' is not of type 'number'"):
        validate(
            {
                "task": TASK,
                "measures": [{"measurementMethod": "x", "powerConsumption": "1"}],
                "infrastructure": {
                    "infraType": "onPremise",
                    "components": [{"componentType": "cpu", "nbComponent": 1}],
                },
            }
        )


def test_a_real_run_exports_a_valid_report_with_the_ledgers_figures() -> None:
    run_id = tracked_run("cnn", seconds=0.4)
    store = open_store()
    run = store.get_run(run_id)
    report = boamps_report(select_runs(store).counted, context=CONTEXT, now=1_800_000_000.0)
    validate(report)
    (measure,) = report["measures"]
    assert measure["measurementMethod"] == "wattwise"
    assert measure["powerConsumption"] == pytest.approx(run.energy_j / 3.6e6)  # kWh, no PUE
    assert measure["measurementDuration"] == pytest.approx(run.duration_s)
    assert measure["cpuTrackingMode"] == "fake"
    threads = run.record["hardware"]["cpu"]["threads"]
    assert measure["averageUtilizationCpu"] == pytest.approx(
        run.record["cpu_time_s"] / run.duration_s / threads, abs=1e-4
    )
    header = report["header"]
    assert header["reportId"].replace("-", "") == run_id
    assert header["reportDatetime"] == "2027-01-15 08:00:00"
    assert header["formatVersion"] == "1.1.0" and "reportStatus" not in header
    assert header["publisher"]["name"] == "lab"  # the context's, merged in
    assert report["task"] == TASK
    assert report["software"]["language"] == "python"
    assert report["environment"]["country"] == "France"
    assert (
        report["environment"]["powerSourceCarbonIntensity"] == run.record["intensity"]["g_per_kwh"]
    )
    cpu = next(c for c in report["infrastructure"]["components"] if c["componentType"] == "cpu")
    assert cpu["family"] == "xeon" and cpu["componentName"]  # user detail + what was found
    machine = sum(c.machine_energy_j for c in run.components if c.component == "cpu")
    mine = sum(c.energy_j for c in run.components if c.component == "cpu")
    assert cpu["share"] == pytest.approx(mine / machine, abs=1e-4)
    # the fake meter's band is 40 %: 'low' (BoAmps: within ±50 %)
    assert report["quality"] == "low"


def test_several_runs_are_one_report_with_a_measure_each() -> None:
    store = open_store()
    gpus = {**HARDWARE, "gpus": [{"name": "NVIDIA A100-SXM4-40GB", "memory_mib": 40960}] * 2}
    insert_run(store, "a", energy_j=3.6e6, intensity=50.0, hardware=gpus)
    insert_run(store, "b", energy_j=1.8e6, intensity=20.0)
    report = boamps_report(select_runs(store).counted, context=CONTEXT)
    validate(report)
    assert sorted(m["powerConsumption"] for m in report["measures"]) == pytest.approx([0.5, 1.0])
    # energy-weighted: (1 kWh x 50 + 0.5 kWh x 20) / 1.5 kWh
    assert report["environment"]["powerSourceCarbonIntensity"] == pytest.approx(40.0)
    gpu = next(c for c in report["infrastructure"]["components"] if c["componentType"] == "gpu")
    assert gpu["nbComponent"] == 2 and gpu["memorySize"] == 40.0
    assert gpu["manufacturer"] == "nvidia"


def test_without_a_task_the_report_is_a_draft_that_says_what_it_lacks() -> None:
    store = open_store()
    insert_run(store, "r")
    report = boamps_report(select_runs(store).counted)
    assert report["header"]["reportStatus"] == "draft" and "task" not in report
    assert missing_fields(report) == ["task (taskStage, taskFamily, algorithms, dataset)"]
    partial = boamps_report(select_runs(store).counted,
                            context={"task": {"taskStage": "training", "algorithms": [{}],
                                              "dataset": [{"dataUsage": "input"}]}})  # fmt: skip
    assert missing_fields(partial) == ["task.taskFamily", "task.dataset[0].dataType"]
    # no hardware recorded: BoAmps needs at least one component, which wattwise cannot name
    bare = insert_run(store, "bare", hardware={})
    lacking = boamps_report([store.get_run(bare)], context={"task": TASK})
    assert missing_fields(lacking) == ["infrastructure.components (no hardware was recorded)"]
    assert lacking["header"]["reportStatus"] == "draft"


def test_the_context_cannot_replace_measures_or_add_foreign_keys(tmp_path: Path) -> None:
    store = open_store()
    insert_run(store, "r")
    runs = select_runs(store).counted
    with pytest.raises(InvalidParameterError, match="sets 'measures'"):
        boamps_report(runs, context={"measures": []})
    with pytest.raises(InvalidParameterError, match="'tasks', which BoAmps reports do not"):
        boamps_report(runs, context={"tasks": {}})
    bad = tmp_path / "ctx.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    assert main(["export", "--format", "boamps", "--boamps-context", str(bad)]) == 2


def test_export_command_writes_json_and_notes_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store()
    insert_run(store, "r")
    assert main(["export", "--format", "boamps"]) == 0
    captured = capsys.readouterr()
    draft = json.loads(captured.out)  # standard output holds the document alone
    assert draft["header"]["reportStatus"] == "draft"
    assert "BoAmps draft: it lacks task" in captured.err
    # The note is enough on its own (an installed wattwise has no docs/): its example works.
    assert "docs/" not in captured.err
    example = tmp_path / "example.json"
    example.write_text(captured.err.split("e.g. ", 1)[1].split(", and pass it", 1)[0])
    assert main(["export", "--format", "boamps", "--boamps-context", str(example)]) == 0
    assert "lacks task" not in capsys.readouterr().err
    context = tmp_path / "context.json"
    context.write_text(json.dumps(CONTEXT), encoding="utf-8")
    target = tmp_path / "report.json"  # .json means boamps for export
    assert main(["export", "-o", str(target), "--boamps-context", str(context)]) == 0
    out = capsys.readouterr().out
    assert "Wrote" in out and "draft" not in out
    validate(json.loads(target.read_text(encoding="utf-8")))
