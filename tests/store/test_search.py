"""The run filter language: parsing, compiling to SQL, ordering, paging and bad filters."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

import loopml
from loopml.store.search import Field, parse_filter, parse_order_by


@pytest.fixture
def populated(workspace: loopml.Workspace) -> loopml.Workspace:
    rows = [
        ("rf-1", {"model": "rf", "depth": 4}, {"auc": 0.91, "loss": 0.30}, {"stage": "prod"}),
        ("rf-2", {"model": "rf", "depth": 12}, {"auc": 0.85, "loss": 0.20}, {"stage": "dev"}),
        ("gbm", {"model": "gbm", "depth": 3}, {"auc": 0.95, "val/loss": 0.1}, {}),
        ("lr", {"model": "lr", "depth": "none"}, {"auc": 0.70}, {"stage": "dev"}),
        ("empty", {}, {}, {}),
    ]
    for name, params, metrics, tags in rows:
        with workspace.start_run(experiment="search", run_name=name, tags=tags) as run:
            run.log_params(params)
            run.log_metrics(metrics)
    with workspace.start_run(experiment="other", run_name="elsewhere") as run:
        run.log_metric("auc", 0.99)
    return workspace


def names(ws: loopml.Workspace, filter: str | None = None, **kwargs: object) -> list[str]:
    frame = ws.search_runs("search", filter=filter, **kwargs)  # type: ignore[arg-type]
    return list(frame["run_name"])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("metrics.auc > 0.8", {"rf-1", "rf-2", "gbm"}),
        ("metrics.auc > 0.8 and params.model = 'rf'", {"rf-1", "rf-2"}),
        ("metrics.auc >= 0.95 or tags.stage = 'prod'", {"gbm", "rf-1"}),
        ("not params.model = 'rf'", {"gbm", "lr", "empty"}),
        ("params.depth > 3", {"rf-1", "rf-2"}),
        ("params.depth = 'none'", {"lr"}),
        ("params.model in ('gbm', 'lr')", {"gbm", "lr"}),
        ("params.model not in ('gbm', 'lr')", {"rf-1", "rf-2"}),
        ("run_name like 'rf-%'", {"rf-1", "rf-2"}),
        ("run_name ILIKE 'RF-%'", {"rf-1", "rf-2"}),
        ("metrics.`val/loss` < 0.5", {"gbm"}),
        ("tags.stage is null", {"gbm", "empty"}),
        (
            "metrics.loss is not null and (metrics.loss < 0.25 or tags.stage = 'prod')",
            {"rf-1", "rf-2"},
        ),
        (
            "status = 'FINISHED' and start_time > '2000-01-01'",
            {"rf-1", "rf-2", "gbm", "lr", "empty"},
        ),
        ("METRICS.auc < 0.8 AND attributes.status != 'FAILED'", {"lr"}),
    ],
)
def test_filter_selects_matching_runs(
    populated: loopml.Workspace, expression: str, expected: set[str]
) -> None:
    assert set(names(populated, expression)) == expected


def test_order_by_metric_descending_puts_missing_values_last(populated: loopml.Workspace) -> None:
    assert names(populated, order_by=["metrics.auc desc"]) == ["gbm", "rf-1", "rf-2", "lr", "empty"]
    assert names(populated, order_by=["metrics.auc"])[:4] == ["lr", "rf-2", "rf-1", "gbm"]


def test_top_k_by_a_filtered_metric(populated: loopml.Workspace) -> None:
    top = names(populated, "metrics.auc > 0.8", order_by=["metrics.auc desc"], max_results=2)
    assert top == ["gbm", "rf-1"]


def test_numeric_params_order_as_numbers(populated: loopml.Workspace) -> None:
    ordered = names(populated, "params.depth > 0", order_by=["params.depth desc"])
    assert ordered == ["rf-2", "rf-1", "gbm"]  # 12 > 4 > 3, not "4" > "3" > "12"


def test_paging_walks_through_every_run_once(populated: loopml.Workspace) -> None:
    pages = [
        names(populated, order_by=["run_name"], max_results=2, offset=offset)
        for offset in (0, 2, 4)
    ]
    assert pages == [["empty", "gbm"], ["lr", "rf-1"], ["rf-2"]]


def test_search_across_experiments(populated: loopml.Workspace) -> None:
    frame = populated.search_runs(["search", "other"], filter="metrics.auc > 0.96")
    assert list(frame["run_name"]) == ["elsewhere"]
    assert len(populated.search_runs(None)) == 6


def test_search_returns_run_objects_on_request(populated: loopml.Workspace) -> None:
    runs = populated.search_runs("search", filter="params.model = 'gbm'", output="runs")
    assert [run.metrics["auc"] for run in runs] == [0.95]


def test_frame_has_metric_param_and_tag_columns(populated: loopml.Workspace) -> None:
    frame = populated.search_runs("search", filter="run_name = 'rf-1'")
    row = frame.iloc[0]
    assert row["metrics.auc"] == 0.91
    assert row["params.depth"] == "4"
    assert row["tags.stage"] == "prod"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("metrics.auc >> 0.8", "column 14"),
        ("metrics.auc > 'high'", "compare it with a number"),
        ("colour = 'red'", "Unknown field 'colour'"),
        ("metrics.auc > 0.8 and", "Cannot read the filter"),
        ("start_time > 'yesterday'", "ISO date"),
    ],
)
def test_bad_filters_say_what_to_write(
    populated: loopml.Workspace, expression: str, message: str
) -> None:
    with pytest.raises(loopml.ValidationError, match=message):
        populated.search_runs("search", filter=expression)


def test_values_are_bound_never_pasted_into_sql(populated: loopml.Workspace) -> None:
    hostile = "params.model = 'x\\'; DROP TABLE runs; --'"
    assert names(populated, hostile) == []
    assert "runs" in inspect(populated.db.engine).get_table_names()
    assert len(names(populated)) == 5


def test_unknown_experiment_is_not_found(populated: loopml.Workspace) -> None:
    with pytest.raises(loopml.NotFoundError, match="experiments list"):
        populated.search_runs("no-such-experiment")


def test_bad_order_by_is_rejected(populated: loopml.Workspace) -> None:
    with pytest.raises(loopml.ValidationError, match="order_by"):
        populated.search_runs("search", order_by=["metrics.auc sideways"])


def test_parse_reads_quoted_keys_and_escapes() -> None:
    tree = parse_filter("tags.`my tag` = 'it\\'s'")
    assert tree == ("compare", Field("tags", "my tag"), "=", "it's")
    assert parse_order_by(["params.lr DESC", "start_time"]) == [
        (Field("params", "lr"), True),
        (Field("attributes", "start_time"), False),
    ]


def test_paging_by_a_metric_continues_into_runs_without_it(populated: loopml.Workspace) -> None:
    pages = [
        names(populated, order_by=["metrics.auc desc"], max_results=2, offset=offset)
        for offset in (0, 2, 4, 6)
    ]
    assert pages == [["gbm", "rf-1"], ["rf-2", "lr"], ["empty"], []]
    assert names(populated, order_by=["metrics.auc desc"], max_results=3, offset=3) == [
        "lr",
        "empty",
    ]
