"""``loopml monitor check|run|report|alerts``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import loopml
from tests.cli import assert_clean_failure, invoke, table_line
from tests.evaluation._samples import binary_frame
from tests.monitoring.test_monitor import _log
from tests.registry._samples import trained

RULES = """
rules:
  - name: drift
    condition: drift.share > 0.2
    severity: critical
"""


def _home(tmp_path: Path, shift: float) -> Path:
    folder = tmp_path / "home"
    with loopml.Workspace.open(folder) as ws:
        version = ws.registry.register(trained(ws), name="churn")
        traffic = binary_frame(1500, seed=4)
        traffic["spend"] = traffic["spend"] + shift
        _log(ws, version, traffic, "cli")
    (tmp_path / "rules.yaml").write_text(RULES)
    return folder


@pytest.fixture
def drifted(tmp_path: Path) -> Path:
    return _home(tmp_path, shift=2.5)


def test_check_prints_the_drift_table_and_exits_1_when_an_alert_fires(
    drifted: Path, tmp_path: Path
) -> None:
    result = invoke(
        drifted, "monitor", "check", "models:/churn/1", "--window", "1h",
        "--rules", str(tmp_path / "rules.yaml"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    flagged = [line.split("│")[1].strip() for line in result.output.splitlines()
               if line.rstrip().endswith("yes │")]  # fmt: skip
    assert flagged == ["spend"]
    assert "Alert drift: fired" in result.output
    listed = invoke(drifted, "monitor", "alerts", "churn")
    assert "firing" in table_line(listed.output, "drift")


def test_check_json_and_a_quiet_model(tmp_path: Path) -> None:
    home = _home(tmp_path, shift=0.0)
    result = invoke(
        home, "monitor", "check", "models:/churn/1", "--window", "1h", "--json",
        "--rules", str(tmp_path / "rules.yaml"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["rows"] == 1500 and body["drift"]["drifted_features"] == []
    assert body["firing"] is False and body["alerts"] == []  # a quiet rule changes nothing


def test_run_evaluates_windows_and_stops(drifted: Path) -> None:
    result = invoke(drifted, "monitor", "run", "models:/churn/1", "--window", "1m",
                    "--max-windows", "3", "--catch-up", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Stopped after 3 window(s)." in result.output


def test_report_writes_an_offline_html_file(drifted: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = invoke(drifted, "monitor", "report", "models:/churn/1", "--window", "1h",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "spend" in html and "<script" in html
    assert "https://" not in html.replace("https://plot.ly", "")  # no remote resources


def test_bad_input_fails_cleanly(drifted: Path, tmp_path: Path) -> None:
    assert_clean_failure(
        invoke(drifted, "monitor", "check", "models:/churn/9", "--window", "1h"), "churn"
    )
    assert_clean_failure(
        invoke(drifted, "monitor", "check", "models:/churn/1", "--window", "soon"), "window"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    condition: drift.share >> 1\n")
    assert_clean_failure(
        invoke(drifted, "monitor", "check", "models:/churn/1", "--rules", str(bad)), "x"
    )
