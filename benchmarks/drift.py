"""Data drift: loopml's drift report beside Evidently's DataDriftPreset and a bare numpy/scipy loop.

    bash benchmarks/setup.sh                                  # once (adds .venv-evidently)
    benchmarks/.venv/bin/python benchmarks/drift.py           # full sizes (~8-12 min)
    benchmarks/.venv/bin/python benchmarks/drift.py --quick   # smoke run (~1-2 min)

One seeded table of 25 columns (20 numeric: normal, lognormal, uniform, exponential,
Poisson counts, one with 2 % missing values; 5 categorical strings of 3 to 12 values) as
a reference and a current window of the same size, 100,000 and 1,000,000 rows each,
written once per run to Parquet in a temporary folder. The current window has drift in 3
columns (``x00`` mean +0.5 sd, ``x08`` log-sd x1.5, ``c0`` a different category mix) and
a negligible shift in one more (``x01`` mean +0.01 sd: a drift detector should not flag
it, an uncorrected p-value at a million rows does).

Each side runs in its own process, loads both Parquet files into pandas DataFrames
(timed apart, not in the figure), then is timed on the drift computation alone:

- loopml: ``drift(reference, current)`` plus ``to_frame()`` and ``to_points()`` (the full
  report: every statistic of every column, the test choice, the correction);
- loopml, streaming: the same report with neither side in memory: the reference
  summarised from Parquet row batches, the current window given as the Parquet file;
  then (after the timing) its HTML page, whose size is reported;
- Evidently 0.7.23 (``benchmarks/.venv-evidently``, pandas < 3): ``Report([DataDriftPreset()])
  .run(current, reference)`` on ``Dataset.from_pandas`` with the column types declared,
  then ``snapshot.dict()``; a column drifted when its ``ValueDrift`` crossed its threshold;
- numpy/scipy: a bare loop, per numeric column ``scipy.stats.ks_2samp`` and a 10-bin PSI
  on reference deciles, per categorical column value counts, ``scipy.stats.chisquare``
  and PSI; a column drifted when its p-value < 0.05 (uncorrected, as such loops are).

Peak memory is each process's maximum resident set size, as the parent reaps it
(``os.wait4``: the child's ``ru_maxrss``), loading included; the RSS after loading is
reported too. loopml and the loop repeat ``--repeats`` times (each a new process,
alternating order); Evidently as often at 100,000 rows and once at 1,000,000 (~3 min).
Children run in a network namespace of their own when the machine allows (``unshare``).
Progress goes to stderr; one JSON line with every figure goes to stdout.
"""

from __future__ import annotations

import os

# No usage reporting from anything imported below, nor from the child processes.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["EVIDENTLY_DISABLE_TELEMETRY"] = "1"

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import mb, proc_status, release_memory, reset_peak, say, summary, without_network

HERE = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = HERE / ".venv-evidently" / "bin" / "python"
SEED = 20261123
NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
DRIFTED = ["x00", "x08", "c0"]  # injected; x01's shift is negligible on purpose
TARGETS = {"evidently_over_loopml_min": 30.0, "loopml_over_numpy_max": 1.0, "rss_share_max": 0.5}

# -- the data ------------------------------------------------------------------------------


def make_frame(rows: int, seed: int, drifted: bool) -> Any:
    """25 seeded columns; with ``drifted`` the current window's shifts."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        if i < 8:
            values = rng.normal(10.0 * i, 1.0 + i, rows)
        elif i < 12:
            values = rng.lognormal(1.0, 0.5 * (1.5 if drifted and name == "x08" else 1.0), rows)
        elif i < 15:
            values = rng.uniform(-1.0, 1.0 + i, rows)
        elif i < 17:
            values = rng.exponential(3.0, rows)
        else:
            values = rng.poisson(2.0 + i, rows).astype(np.float64)
        if drifted and name == "x00":
            values = values + 0.5 * 1.0  # x00 has sd 1
        if drifted and name == "x01":
            values = values + 0.01 * 2.0  # x01 has sd 2: a hundredth of it
        if name == "x05":
            values[rng.random(rows) < 0.02] = np.nan
        columns[name] = values
    for i, name in enumerate(CATEGORICAL):
        size = 3 + 2 * i + (i == 4)
        labels = [f"{name}_{k}" for k in range(size)]
        weights = np.arange(size, 0, -1, dtype=np.float64)
        if drifted and name == "c0":
            weights = weights[::-1].copy()
        columns[name] = rng.choice(labels, rows, p=weights / weights.sum())
    return pd.DataFrame(columns)


def child_write(spec: dict[str, Any]) -> dict[str, Any]:
    """Writes both sides' Parquet files (in a child: a parent holding the data would count
    in every later child's peak RSS, which Linux carries over from the fork)."""
    return write_data(Path(spec["folder"]), int(spec["rows"]))


def write_data(folder: Path, rows: int) -> dict[str, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    for side, seed, drifted in (("reference", SEED, False), ("current", SEED + 1, True)):
        frame = make_frame(rows, seed + rows, drifted)
        path = folder / f"{side}-{rows}.parquet"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, path, row_group_size=131_072)  # bounds what streaming reads
        paths[side] = str(path)
    return paths


# -- the children --------------------------------------------------------------------------


def _settle() -> int:
    """Hands memory freed while loading back to the system and sets the peak (VmHWM) back
    to the current RSS, which it returns."""
    release_memory()
    with contextlib.suppress(OSError):
        reset_peak()
    return proc_status("VmRSS")


def _timed(run: Any) -> dict[str, Any]:
    """Runs ``run()`` after settling memory: seconds, RSS before, peak RSS increase, and the
    process's own peak (``peak_self``, loading included: a check on the parent's figure)."""
    loading_peak = proc_status("VmHWM")
    rss = _settle()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = proc_status("VmHWM")
    return {**result, "seconds": seconds, "rss_after_load": rss, "peak_increase": peak - rss,
            "peak_self": max(loading_peak, peak)}  # fmt: skip


def _load(spec: dict[str, Any], arrow: bool = False) -> tuple[Any, Any, float]:
    """Both sides as pandas DataFrames (or Arrow tables), the same way for every tool:
    pyarrow reads the file and hands its buffers over to pandas as it converts them."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    tables = [pq.read_table(spec[side]) for side in ("reference", "current")]
    if not arrow:
        tables = [table.to_pandas(self_destruct=True, split_blocks=True) for table in tables]
    return tables[0], tables[1], time.perf_counter() - start


def _loopml_imports() -> float:
    started = time.perf_counter()
    # scipy.stats is imported lazily by loopml; import it here, outside the timing, as
    # the other sides import their libraries.
    import scipy.special
    import scipy.stats

    import loopml.monitoring.drift

    assert scipy.stats and scipy.special and loopml.monitoring.drift
    return time.perf_counter() - started


def child_loopml(spec: dict[str, Any]) -> dict[str, Any]:
    from loopml.monitoring.drift import drift

    imported = _loopml_imports()
    reference, current, load_s = _load(spec, arrow=spec["kind"] == "loopml_arrow")

    def run() -> dict[str, Any]:
        report = drift(reference, current)
        frame = report.to_frame()
        points = report.to_points("bench", 1, dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2))
        drifted = sorted(report.drifted_features)
        return {"drifted": drifted, "tests": len(frame), "points": len(points)}

    return {"import_s": imported, "load_s": load_s, **_timed(run)}


def child_loopml_stream(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from loopml.data.summary import summarize_chunks
    from loopml.monitoring.drift import drift

    imported = _loopml_imports()
    reports = []

    def run() -> dict[str, Any]:
        batches = pq.ParquetFile(spec["reference"]).iter_batches(batch_size=131_072)
        report = drift(summarize_chunks(batches), [spec["current"]])
        report.to_frame()
        reports.append(report)
        return {"drifted": sorted(report.drifted_features)}

    result = {"import_s": imported, "load_s": 0.0, **_timed(run)}
    start = time.perf_counter()
    page = reports[0].to_html()  # after the timing: the report page, from the summaries
    return {**result, "html_s": time.perf_counter() - start, "html_bytes": len(page.encode())}


def child_numpy(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from scipy.stats import chisquare, ks_2samp

    reference, current, load_s = _load(spec)

    def run() -> dict[str, Any]:
        drifted, psi = [], {}
        for name in NUMERIC:
            ref = reference[name].to_numpy(np.float64)
            cur = current[name].to_numpy(np.float64)
            ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
            if ks_2samp(ref, cur).pvalue < 0.05:
                drifted.append(name)
            edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, 11)))
            edges[0], edges[-1] = -np.inf, np.inf
            expected = np.clip(np.histogram(ref, edges)[0] / len(ref), 1e-4, None)
            actual = np.clip(np.histogram(cur, edges)[0] / len(cur), 1e-4, None)
            psi[name] = float(((actual - expected) * np.log(actual / expected)).sum())
        for name in CATEGORICAL:
            ref_counts = reference[name].value_counts()
            cur_counts = current[name].value_counts().reindex(ref_counts.index, fill_value=0)
            expected = np.clip(ref_counts.to_numpy() / ref_counts.sum(), 1e-4, None)
            actual_counts = cur_counts.to_numpy()
            f_exp = expected / expected.sum() * actual_counts.sum()
            if chisquare(actual_counts, f_exp).pvalue < 0.05:
                drifted.append(name)
            actual = np.clip(actual_counts / actual_counts.sum(), 1e-4, None)
            psi[name] = float(((actual - expected) * np.log(actual / expected)).sum())
        over = sorted(name for name, value in psi.items() if value > 0.1)
        return {"drifted": sorted(drifted), "psi_over_0.1": over}

    return {"load_s": load_s, **_timed(run)}


def child_evidently(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter() - started
    reference, current, load_s = _load(spec)
    methods: set[str] = set()

    def run() -> dict[str, Any]:
        definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        drifted = []
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if not config.get("type", "").endswith("ValueDrift"):
                continue
            methods.add(config["method"])
            value, threshold = metric["value"], config["threshold"]
            # p-value methods drift below their threshold, distances at or above it.
            if value < threshold if "p_value" in config["method"] else value >= threshold:
                drifted.append(config["column"])
        return {"drifted": sorted(drifted)}

    result = _timed(run)
    return {
        "import_s": imported,
        "load_s": load_s,
        **result,
        "methods": sorted(methods),
        "versions": {
            name: importlib.metadata.version(name) for name in ("evidently", "pandas", "numpy")
        },
    }


CHILDREN = {
    "loopml": child_loopml,
    "loopml_arrow": child_loopml,
    "loopml_stream": child_loopml_stream,
    "numpy": child_numpy,
    "evidently": child_evidently,
    "write": child_write,
}


def child_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    print(json.dumps(CHILDREN[spec["kind"]](spec)), flush=True)
    return 0


# -- the parent ----------------------------------------------------------------------------


class Runner:
    """Starts each side in its own process (without network when possible), reaps it with
    ``os.wait4`` for its own peak RSS, and reads its JSON line."""

    def __init__(self, isolate: bool, folder: Path) -> None:
        self.prefix = without_network(isolate)
        self.folder = folder
        self.isolated = bool(self.prefix)

    def run(self, kind: str, paths: dict[str, Any]) -> dict[str, Any]:
        python = str(EVIDENTLY_PYTHON) if kind == "evidently" else sys.executable
        spec = json.dumps({"kind": kind, **paths})
        command = [*self.prefix, python, str(Path(__file__).resolve()), "_child", spec]
        out_path, err_path = self.folder / "child.out", self.folder / "child.err"
        started = time.perf_counter()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, env=os.environ)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        lines = [line for line in out_path.read_text().splitlines() if line.startswith("{")]
        if process.returncode != 0 or not lines:
            sys.stderr.write(err_path.read_text()[-4000:])
            raise SystemExit(f"benchmark check failed: {kind} exited with {process.returncode}")
        result: dict[str, Any] = json.loads(lines[-1])
        result["peak_rss"] = usage.ru_maxrss * 1024  # kilobytes on Linux
        result["process_wall_s"] = wall
        return result


def run_size(
    runner: Runner, rows: int, repeats: int, evidently_repeats: int, tools: list[str], folder: Path
) -> dict[str, Any]:
    say(f"{rows:,} rows: writing the reference and the current window")
    paths = runner.run("write", {"folder": str(folder), "rows": rows})
    paths = {side: paths[side] for side in ("reference", "current")}
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    for repeat in range(max(repeats, evidently_repeats)):
        order = tools if repeat % 2 == 0 else tools[::-1]
        for tool in order:
            wanted = evidently_repeats if tool == "evidently" else repeats
            if repeat >= wanted:
                continue
            result = runner.run(tool, paths)
            say(
                f"{rows:,} rows, {tool} #{repeat + 1}: {result['seconds']:.2f} s, "
                f"peak RSS {mb(result['peak_rss'])} MB (+{mb(result['peak_increase'])} MB over "
                f"the loaded {mb(result['rss_after_load'])} MB), drifted {result['drifted']}"
            )
            runs[tool].append(result)
    out: dict[str, Any] = {}
    for tool, results in runs.items():
        if not results:
            continue
        last = results[-1]
        out[tool] = {
            "seconds": summary([r["seconds"] for r in results]),
            "peak_rss_mb": summary([mb(r["peak_rss"]) for r in results]),
            "rss_after_load_mb": mb(last["rss_after_load"]),
            "peak_increase_mb": summary([mb(r["peak_increase"]) for r in results]),
            "peak_self_mb": summary([mb(r["peak_self"]) for r in results]),
            "load_s": round(last["load_s"], 3),
            "process_wall_s": summary([r["process_wall_s"] for r in results]),
            "drifted": last["drifted"],
            **{
                key: last[key]
                for key in (
                    "tests",
                    "points",
                    "html_bytes",
                    "html_s",
                    "psi_over_0.1",
                    "methods",
                    "versions",
                    "import_s",
                )
                if key in last
            },
        }
    for path in paths.values():
        os.unlink(path)
    return out


def targets(results: dict[str, Any]) -> dict[str, Any]:
    size = results.get("1000000") or results[max(results, key=int)]
    loopml, found = size.get("loopml"), {}
    if loopml is None:
        return {}
    if "evidently" in size:
        evidently = size["evidently"]
        speedup = evidently["seconds"]["median"] / loopml["seconds"]["median"]
        rss = loopml["peak_rss_mb"]["median"] / evidently["peak_rss_mb"]["median"]
        found["speedup_over_evidently"] = {
            "value": round(speedup, 1),
            "target": f">= {TARGETS['evidently_over_loopml_min']}",
            "met": speedup >= TARGETS["evidently_over_loopml_min"],
        }
        found["peak_rss_share_of_evidently"] = {
            "value": round(rss, 3),
            "target": f"<= {TARGETS['rss_share_max']}",
            "met": rss <= TARGETS["rss_share_max"],
        }
        found["same_drifted_columns"] = {
            "value": loopml["drifted"] == evidently["drifted"],
            "target": "loopml's set == Evidently's set",
            "met": loopml["drifted"] == evidently["drifted"],
        }
    if "numpy" in size:
        ratio = loopml["seconds"]["median"] / size["numpy"]["seconds"]["median"]
        found["loopml_over_numpy"] = {
            "value": round(ratio, 3),
            "target": f"<= {TARGETS['loopml_over_numpy_max']}",
            "met": ratio <= TARGETS["loopml_over_numpy_max"],
        }
    return found


def versions(evidently: dict[str, str] | None) -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for name in ("loopml", "numpy", "scipy", "pandas", "pyarrow"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    if evidently:
        found["evidently_venv"] = evidently
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 rows, 1 repeat")
    parser.add_argument("--sizes", default=None, help="rows per side, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="loopml and numpy repeats")
    parser.add_argument(
        "--evidently-repeats", type=int, default=3, help="Evidently repeats below 1,000,000 rows"
    )
    parser.add_argument("--tools", default="loopml,loopml_arrow,loopml_stream,numpy,evidently")
    parser.add_argument("--no-isolation", action="store_true", help="children keep the network")
    parser.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    tools = args.tools.split(",")
    if "evidently" in tools and not EVIDENTLY_PYTHON.exists():
        raise SystemExit(f"{EVIDENTLY_PYTHON} is missing: run bash benchmarks/setup.sh first")
    sizes = [int(size) for size in (args.sizes or "100000,1000000").split(",")]
    repeats = args.repeats
    if args.quick:
        sizes, repeats, args.evidently_repeats = [10_000, 100_000], 1, 1
    started = time.time()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loopml-drift-bench-") as tmp:
        runner = Runner(isolate=not args.no_isolation, folder=Path(tmp))
        for rows in sizes:
            evidently_repeats = 1 if rows >= 1_000_000 else args.evidently_repeats
            results[str(rows)] = run_size(
                runner, rows, repeats, evidently_repeats, tools, Path(tmp)
            )
    evidently_versions = next(
        (size["evidently"].pop("versions") for size in results.values() if "evidently" in size),
        None,
    )
    found = targets(results)
    for name, item in found.items():
        say(
            f"{'PASS' if item['met'] else 'FAIL'} {name}: {item['value']} (target {item['target']})"
        )
    line = {
        "benchmark": "drift",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "minutes": round((time.time() - started) / 60, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "children_without_network": runner.isolated,
        "versions": versions(evidently_versions),
        "data": {
            "numeric": len(NUMERIC),
            "categorical": len(CATEGORICAL),
            "injected_drift": DRIFTED,
            "negligible_shift": ["x01"],
        },
        "results": results,
        "targets": found,
    }
    text = json.dumps(line)
    print(text, flush=True)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
