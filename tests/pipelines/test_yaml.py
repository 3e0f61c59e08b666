"""YAML pipelines of built-in steps, and malformed ones (the error names the field)."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopml
from loopml.errors import ValidationError
from loopml.pipelines import list_runs, run_pipeline
from tests.training import customers

PIPELINE = """\
name: churn-training
params:
  source: {source}
  threshold: 0.6
steps:
  - name: ingest
    uses: ingest
    with: {{source: "${{params.source}}", name: churn}}
  - name: train
    uses: train
    with:
      model: sklearn.linear_model.LogisticRegression
      model_params: {{max_iter: 300}}
      data: ${{steps.ingest}}
      target: churned
      features: [spend]
  - name: gate
    uses: gate
    with:
      candidate: ${{steps.train}}
      policy: {{checks: ["accuracy >= ${{params.threshold}}"], data: churn@1, target: churned}}
  - name: register
    uses: register
    with: {{model: "${{steps.gate}}", name: churn}}
  - name: promote
    uses: promote
    with: {{model: "${{steps.register}}", alias: staging}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def test_a_yaml_pipeline_runs_the_lifecycle_and_records_lineage(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "churn.csv"
    customers().to_csv(source, index=False)
    path = write(tmp_path, PIPELINE.format(source=source))

    run = run_pipeline(ws, path, trigger="manual")

    assert run.status == "SUCCEEDED", run.error
    assert run.target == str(path.resolve())
    assert run.step("ingest").outputs["value"] == "churn@1"  # type: ignore[index]
    trained = run.step("train").outputs["value"]  # type: ignore[index]
    version = ws.registry.get("models:/churn@staging")
    assert version.run.id == trained["run_id"]
    lineage = ws.registry.lineage("models:/churn@staging")
    assert lineage.pipeline is not None and lineage.pipeline["step"] == "train"
    assert lineage.pipeline["pipeline"] == "churn-training"
    gate = run.step("gate").outputs["value"]  # type: ignore[index]
    assert gate["passed"] is True and gate["model"] == trained["model"]

    strict = run_pipeline(ws, path, {"threshold": 0.99})
    assert strict.status == "FAILED"
    assert "gate" in (strict.error or "") and "accuracy >= 0.99" in (strict.error or "")
    assert strict.step("train").status == "CACHED"  # same data, code and params
    assert [strict.step(s).status for s in ("register", "promote")] == ["SKIPPED", "SKIPPED"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: []\n", "`name` is required"),
        ("name: x\n", "`steps` is required"),
        ("name: x\nstep: []\n", "unknown field(s) ['step']"),
        ("name: x\nsteps:\n  - uses: train\n", "steps[0].name is required"),
        ("name: x\nsteps:\n  - name: a\n", "steps[0] (a).uses is required"),
        ("name: x\nsteps:\n  - name: a\n    uses: fit\n", "steps[0] (a).uses: unknown built-in"),
        (
            "name: x\nsteps:\n  - name: a\n    uses: train\n    with: {modle: x}\n",
            "steps[0] (a).with.modle: step 'train' has no such argument",
        ),
        (
            "name: x\nsteps:\n  - name: a\n    uses: train\n    retries: many\n",
            "steps[0] (a).retries must be a non-negative number",
        ),
        (
            "name: x\nsteps:\n  - name: a\n    uses: evaluate\n    with: {model: '${steps.b}'}\n",
            "steps[0] (a).with refers to ${steps.b}, which is not a step",
        ),
        (
            "name: x\nsteps:\n  - name: a\n    uses: ingest\n    with: {source: '${params.p}'}\n",
            "refers to ${params.p}, which `params` does not declare",
        ),
        ("name: x\nsteps: [\n", "is not valid YAML"),
    ],
)
def test_a_malformed_yaml_pipeline_names_the_field(
    ws: loopml.Workspace, tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        run_pipeline(ws, write(tmp_path, text))
    assert message in str(caught.value)
    assert list_runs(ws) == []


def test_a_cycle_in_yaml_is_refused(ws: loopml.Workspace, tmp_path: Path) -> None:
    text = (
        "name: x\nsteps:\n"
        "  - {name: a, uses: evaluate, with: {model: '${steps.b}', data: d, target: t}}\n"
        "  - {name: b, uses: evaluate, with: {model: '${steps.a}', data: d, target: t}}\n"
    )
    with pytest.raises(ValidationError, match=r"cycle: a -> b -> a"):
        run_pipeline(ws, write(tmp_path, text))


def test_unknown_params_of_a_yaml_pipeline_are_refused(
    ws: loopml.Workspace, tmp_path: Path
) -> None:
    path = write(tmp_path, PIPELINE.format(source="x.csv"))
    with pytest.raises(ValidationError, match=r"unknown param\(s\) \['treshold'\]"):
        run_pipeline(ws, path, {"treshold": 1})
