"""The Great Expectations side of benchmarks/data.py, run in GX's own venv (pandas < 3).

    benchmarks/.venv-gx/bin/python benchmarks/_gx_checks.py --data F.parquet --contract C.json

Reads the Parquet file into a pandas DataFrame, turns the loopml contract (its JSON
form) into an expectation suite with one expectation per contract check, validates the
frame through an ephemeral context's pandas datasource, and prints one JSON line: the
seconds of ``batch.validate(suite)``, the peak RSS increase during it, and the
unexpected count of every expectation keyed like loopml's checks ("min:age").
"""

from __future__ import annotations

import os

os.environ["GX_ANALYTICS_ENABLED"] = "false"  # before great_expectations is imported
os.environ["DO_NOT_TRACK"] = "1"

import argparse
import gc
import importlib.metadata
import json
import logging
import time
from pathlib import Path
from typing import Any

from _common import proc_status, release_memory, reset_peak

RESULT_FORMAT = "SUMMARY"  # GX's default for a validation


def _gx_type(frame: Any, column: str) -> str:
    """The type name GX's expect_column_values_to_be_of_type reports for a column."""
    dtype = frame[column].dtype
    if str(dtype) == "category":
        return "CategoricalDtypeType"
    return str(dtype)


def expectations(contract: dict[str, Any], frame: Any) -> list[Any]:
    import great_expectations.expectations as gxe
    import pandas as pd

    found = []

    def add(check: str, column: str, expectation: type, **kwargs: Any) -> None:
        found.append(expectation(column=column, meta={"check": check}, **kwargs))

    for name, spec in contract["columns"].items():
        kind = spec["type"]
        add("type", name, gxe.ExpectColumnValuesToBeOfType, type_=_gx_type(frame, name))
        if spec.get("nullable") is False:
            add("not_null", name, gxe.ExpectColumnValuesToNotBeNull)
        for bound, keyword in (("min", "min_value"), ("max", "max_value")):
            if bound in spec:
                value = spec[bound]
                if kind == "datetime":
                    value = pd.Timestamp(value)
                add(bound, name, gxe.ExpectColumnValuesToBeBetween, **{keyword: value})
        if "categories" in spec:
            add("categories", name, gxe.ExpectColumnValuesToBeInSet,
                value_set=list(spec["categories"]))  # fmt: skip
        if "regex" in spec:
            add("regex", name, gxe.ExpectColumnValuesToMatchRegex,
                regex=f"^(?:{spec['regex']})$")  # fmt: skip
        if spec.get("unique"):
            add("unique", name, gxe.ExpectColumnValuesToBeUnique)
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--contract", type=Path, required=True)
    args = parser.parse_args()
    contract = json.loads(args.contract.read_text())

    import pyarrow.parquet as pq

    frame = pq.read_table(args.data).to_pandas()
    rss_loaded = release_memory()

    setup = time.perf_counter()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="contract"))
    for expectation in expectations(contract, frame):
        suite.add_expectation(expectation)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    setup_s = time.perf_counter() - setup

    baseline = release_memory()
    reset_peak()
    gc.disable()
    start = time.perf_counter()
    result = batch.validate(suite, result_format=RESULT_FORMAT)
    seconds = time.perf_counter() - start
    gc.enable()
    peak = proc_status("VmHWM")

    counts: dict[str, int] = {}
    errors = []
    for item in result.results:
        config = item.expectation_config
        key = f"{config.meta['check']}:{config.kwargs['column']}"
        if item.exception_info.get("raised_exception"):
            errors.append(f"{key}: {item.exception_info.get('exception_message')}")
        if config.meta["check"] == "type":
            counts[key] = 0 if item.success else len(frame)
        else:
            counts[key] = int(item.result.get("unexpected_count") or 0)
    if errors:
        raise SystemExit("expectations raised: " + "; ".join(errors))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "setup_s": setup_s,
                "rss_loaded": rss_loaded,
                "rss_before": baseline,
                "peak_rss_increase": max(0, peak - baseline),
                "expectations": len(result.results),
                "success": bool(result.success),
                "result_format": RESULT_FORMAT,
                "counts": counts,
                "versions": {
                    name: importlib.metadata.version(name)
                    for name in ("great_expectations", "pandas", "numpy", "pyarrow")
                },
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
