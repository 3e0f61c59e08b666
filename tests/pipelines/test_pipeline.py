"""Defining pipelines, the DAG they trace to, typed outputs, caching and tracking."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import loopml
from loopml.errors import ValidationError
from loopml.pipelines import Node, Pipeline, get_run, list_runs, run_pipeline, step, step_output
from loopml.pipelines.step import code_hash
from tests.pipelines import steps


def test_the_dag_is_traced_from_how_outputs_feed_inputs() -> None:
    graph = steps.stats.graph({"n": 5})

    assert [n.name for n in graph.nodes] == [
        "numbers",
        "total",
        "count",
        "total_2",
        "count_2",
        "mean",
    ]
    assert graph.by_name["mean"].inputs == {"total": "total_2", "count": "count_2"}
    assert graph.by_name["numbers"].params == {"n": 5, "seed": 0}
    assert graph.downstream(["total_2"]) == {"total_2", "mean"}


def test_a_run_computes_the_result_and_stores_every_step(ws: loopml.Workspace) -> None:
    run = run_pipeline(ws, steps.stats, {"n": 20, "seed": 3})

    expected = [(i * 7 + 3) % 11 for i in range(20)]
    assert run.status == "SUCCEEDED"
    assert run.result == {"total": sum(expected), "count": 20, "mean": sum(expected) / 20}
    # total_2 and count_2 compute what total and count did: the cache serves them.
    statuses = [s.status for s in run.steps]
    assert statuses == ["SUCCEEDED"] * 3 + ["CACHED", "CACHED", "SUCCEEDED"]
    assert run.step("total_2").cached_from == run.step("total").step_run_id
    frame = run.step("numbers")
    assert frame.outputs is not None and frame.outputs["kind"] == "parquet"
    assert frame.outputs["rows"] == 20 and frame.logs == "making 20 rows\n"
    assert run.step("total").outputs == {
        "kind": "json",
        "type": "int",
        "value": sum(expected),
        "sha256": run.step("total").outputs["sha256"],  # type: ignore[index]
    }
    loaded = step_output(ws, run.run_id, "numbers")
    assert isinstance(loaded, pd.DataFrame) and loaded["x"].tolist() == expected
    stored = get_run(ws, run.run_id[:8])
    assert stored.params == {"n": 20, "seed": 3} and stored.target == "tests.pipelines.steps:stats"
    assert stored.graph["steps"][5]["inputs"] == {"total": "total_2", "count": "count_2"}


def test_a_second_run_is_served_from_the_cache(ws: loopml.Workspace) -> None:
    first = run_pipeline(ws, steps.stats, {"n": 10})
    second = run_pipeline(ws, steps.stats, {"n": 10})
    changed = run_pipeline(ws, steps.stats, {"n": 11})
    forced = run_pipeline(ws, steps.stats, {"n": 10}, cache=False)

    assert second.result == first.result and second.cache_hits == 6
    assert [s.cache_key for s in second.steps] == [s.cache_key for s in first.steps]
    assert second.step("mean").cached_from == first.step("mean").step_run_id
    # n changed the first step and so every input hash: only the in-run repeats hit.
    assert [s.step for s in changed.steps if s.status == "CACHED"] == ["total_2", "count_2"]
    assert forced.cache_hits == 0 and forced.result == first.result
    assert [r.run_id for r in list_runs(ws)] == [
        forced.run_id,
        changed.run_id,
        second.run_id,
        first.run_id,
    ]


def test_a_step_can_opt_out_of_the_cache(ws: loopml.Workspace) -> None:
    calls: list[int] = []

    @step(cache=False)
    def always(n: int) -> int:
        calls.append(n)
        return n

    @step
    def once(n: int) -> int:
        calls.append(-n)
        return n

    pipe = Pipeline(lambda: [always(1), once(2)], name="optout")
    run_pipeline(ws, pipe)
    second = run_pipeline(ws, pipe)

    assert calls == [1, -2, 1]
    assert [s.status for s in second.steps] == ["SUCCEEDED", "CACHED"]


def test_the_code_hash_ignores_formatting_but_not_logic() -> None:
    def a(x: int) -> int:
        """Doc."""
        return x + 1  # a comment

    def b(x: int) -> int:
        return x + 1

    def c(x: int) -> int:
        return x + 2

    b.__name__ = b.__qualname__ = "a"
    assert code_hash(a) != code_hash(c)
    assert code_hash(a, "v2") != code_hash(a)


def test_a_cycle_is_refused_before_anything_runs(ws: loopml.Workspace) -> None:
    nodes = [
        Node("a", steps.upper, inputs={"value": "c"}),
        Node("b", steps.upper, inputs={"value": "a"}),
        Node("c", steps.upper, inputs={"value": "b"}),
        Node("d", steps.source, params={"word": "x"}),
    ]
    with pytest.raises(ValidationError, match=r"cycle: a -> b -> c -> a"):
        run_pipeline(ws, Pipeline(nodes=nodes, name="loop"))
    assert list_runs(ws) == []


def test_an_output_type_that_does_not_fit_the_next_input_is_refused(
    ws: loopml.Workspace,
) -> None:
    with pytest.raises(
        ValidationError, match=r"total.*frame: DataFrame.*'text', which returns str"
    ):
        run_pipeline(ws, steps.mistyped)
    assert list_runs(ws) == []


def test_unknown_params_and_targets_are_refused(ws: loopml.Workspace, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="do not fit pipeline 'stats'"):
        run_pipeline(ws, steps.stats, {"rows": 3})
    with pytest.raises(ValidationError, match="no 'nope'"):
        run_pipeline(ws, "tests.pipelines.steps:nope")
    with pytest.raises(ValidationError, match="module:function"):
        run_pipeline(ws, "stats")


def test_a_pipeline_is_found_by_file_path(ws: loopml.Workspace, tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        "from loopml.pipelines import pipeline, step\n\n"
        "@step\ndef square(x: int) -> int:\n    return x * x\n\n"
        "@pipeline\ndef flow(x: int = 3):\n    return square(square(x))\n"
    )
    run = run_pipeline(ws, f"{path}:flow", {"x": 2})

    assert run.result == 16 and run.target == f"{path.resolve()}:flow"


def test_models_are_stored_as_bundles_and_other_objects_pickled(ws: loopml.Workspace) -> None:
    from sklearn.linear_model import LinearRegression

    @step
    def fit() -> LinearRegression:
        frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        return LinearRegression().fit(frame, [1.0, 3.0, 5.0, 7.0])

    @step
    def predict(model: LinearRegression) -> float:
        return float(model.predict(pd.DataFrame({"x": [10.0]}))[0])

    @step
    def pair() -> tuple[int, int]:
        return (1, 2)

    pipe = Pipeline(lambda: {"y": predict(fit()), "pair": pair()}, name="models")
    run = run_pipeline(ws, pipe)
    again = run_pipeline(ws, pipe, cache=False)

    assert run.result["y"] == pytest.approx(21.0) and run.result["pair"] == (1, 2)
    assert run.step("fit").outputs["kind"] == "bundle"  # type: ignore[index]
    assert run.step("pair").outputs["kind"] == "pickle"  # type: ignore[index]
    assert again.step("pair").outputs["sha256"] == run.step("pair").outputs["sha256"]  # type: ignore[index]


def test_a_step_that_trains_links_the_version_lineage_to_the_pipeline_run(
    ws: loopml.Workspace,
) -> None:
    from tests.training import customers

    ws.data.ingest(customers(), name="churn")
    run = run_pipeline(ws, steps.train_and_register, reason="new data", trigger="manual")

    assert run.status == "SUCCEEDED", run.error
    [tracking] = run.step("fit_model").tracking_runs
    assert ws.get_run(tracking).tags["loopml.pipeline_run"] == run.run_id
    lineage = ws.registry.lineage(run.result)
    assert lineage.pipeline is not None
    assert lineage.pipeline["run_id"] == run.run_id
    assert lineage.pipeline["step"] == "fit_model"
    assert lineage.pipeline["reason"] == "new data"
    assert run.run_id[:12] in str(lineage.to_dict()) and "pipeline" in lineage.to_dot()


def test_runs_links_and_the_cache_on_every_metadata_backend(workspace: loopml.Workspace) -> None:
    first = run_pipeline(workspace, steps.tracking, {"value": 4})
    second = run_pipeline(workspace, steps.tracking, {"value": 4})

    tracking_run = first.result
    assert first.step("tracked").tracking_runs == [tracking_run]
    assert workspace.get_run(tracking_run).metrics == {"value": 4.0}
    assert second.result == tracking_run and second.cache_hits == 1
    assert [r.run_id for r in list_runs(workspace, pipeline="tracking")] == [
        second.run_id,
        first.run_id,
    ]


def test_a_value_that_does_not_fit_the_declared_input_fails_the_step(
    ws: loopml.Workspace,
) -> None:
    run = run_pipeline(ws, steps.mistyped_at_run_time)  # no return hint: seen at run time

    assert run.status == "FAILED"
    assert run.step("untyped").status == "SUCCEEDED"
    assert run.step("total").error == (
        "TypeError: step 'total' declares frame: DataFrame, but step 'untyped' returned "
        "str; change one of the type hints, or convert the value in a step between them"
    )


def test_runs_in_threads_of_one_process_link_their_own_tracking_runs(
    ws: loopml.Workspace,
) -> None:
    import sys
    from concurrent.futures import ThreadPoolExecutor

    stdout = sys.stdout
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda v: run_pipeline(ws, steps.tracking, {"value": v}), range(1, 7)))

    for run in runs:
        assert run.status == "SUCCEEDED", run.error
        [linked] = run.step("tracked").tracking_runs
        assert linked == run.result
        assert ws.get_run(linked).tags["loopml.pipeline_run"] == run.run_id
        value = run.params["value"]  # each step's output and logs, none of the others'
        assert run.step("tracked").logs == f"WARNING tests.steps: tracked {value}\nvalue {value}\n"
    assert len({run.result for run in runs}) == 6
    assert sys.stdout is stdout


def test_an_output_freed_from_the_artifact_store_is_computed_again(ws: loopml.Workspace) -> None:
    first = run_pipeline(ws, steps.stats, {"n": 8})
    frame = first.step("numbers").outputs
    assert frame is not None
    ws.artifacts.delete(frame["sha256"])  # as `loopml gc` does to unreferenced blobs

    second = run_pipeline(ws, steps.stats, {"n": 8})

    assert second.step("numbers").status == "SUCCEEDED"  # a miss: its output is gone
    assert second.step("total").status == "CACHED"  # the same frame hashes the same
    assert second.result == first.result and ws.artifacts.exists(frame["sha256"])


def test_gc_keeps_the_artifacts_step_outputs_are_stored_in(ws: loopml.Workspace) -> None:
    run = run_pipeline(ws, steps.stats, {"n": 12})
    frame = run.step("numbers").outputs
    assert frame is not None and frame["kind"] == "parquet"

    ws.gc(grace_seconds=0)

    assert ws.artifacts.exists(frame["sha256"])
    assert len(step_output(ws, run.run_id, "numbers")) == 12
    again = run_pipeline(ws, steps.stats, {"n": 12})
    assert again.step("numbers").status == "CACHED"  # the cached output is still there
