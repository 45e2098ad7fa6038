from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_support import insert_run, project_ledger

from wattwise.cli import main
from wattwise.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "report_demo.py"


def test_report_command_writes_html_md_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    ids = project_ledger()
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Wrote {Path('report.html').resolve()}: Project footprint, 11 run(s)")
    assert Path("report.html").read_text(encoding="utf-8").startswith("<!doctype html>")
    assert main(["report", "--format", "md", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("# Project footprint")
    assert main(["report", ids["real"][:8], "--format", "json", "-o", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scope"] == "run" and data["subject_id"] == ids["real"]
    assert main(["report", "--study", ids["study"][:8], "-o", "study.html",
                 "--title", "LR sweep"]) == 0  # fmt: skip
    assert "LR sweep" in Path("study.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["report", "--functional-unit", "1k inferences", "--count", "10",
                 "--format", "json", "-o", "-"]) == 0  # fmt: skip
    sci = json.loads(capsys.readouterr().out)["sci"]
    assert sci["functional_unit"]["name"] == "1k inferences"


def test_report_command_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wattwise: error: The ledger at") and "no runs yet" in err
    run = insert_run(open_store(), "r")
    assert main(["report", run[:8], "--project"]) == 2
    assert "--project covers every run" in capsys.readouterr().err
    assert main(["report", "-o", "/nonexistent-dir/x.html"]) == 1
    assert "Cannot write the report" in capsys.readouterr().err
    assert main(["report", "--share", "2"]) == 2
    assert "'share' parameter" in capsys.readouterr().err


def test_report_demo_example_writes_report_html(capsys: pytest.CaptureFixture[str]) -> None:
    project_ledger()
    spec = importlib.util.spec_from_file_location("report_demo", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == 0
    out = capsys.readouterr().out.strip()
    assert out == f"Report: {Path('report.html').resolve()}"
    assert "Project footprint" in Path("report.html").read_text(encoding="utf-8")


def test_importing_wattwise_and_report_loads_no_heavy_library() -> None:
    code = (
        "import sys, wattwise, wattwise.report, wattwise.integrations, wattwise.cli;"
        "heavy = [m for m in ('torch', 'matplotlib', 'mlflow', 'lightning', 'transformers',"
        " 'huggingface_hub', 'selenium', 'numpy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "[]"
