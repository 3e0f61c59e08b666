"""Experiment tracking, loopml side by side with MLflow, both on SQLite on this machine.

    bash benchmarks/setup.sh
    benchmarks/.venv/bin/python benchmarks/tracking.py            # full sizes (~7-10 min)
    benchmarks/.venv/bin/python benchmarks/tracking.py --quick    # smoke run (<1 min)

Four measurements, each for both tools, each in a fresh temporary folder per tool:

1. single   ``log_metric`` calls per second: N single calls in one run, timed until the
            values are stored (loopml: the loop plus ``run.flush()``; MLflow writes each
            call synchronously).
2. batch    metric values stored per second when logged 1000 per call (MLflow
            ``mlflow.log_metrics``, loopml ``run.log_metrics``, same dict of 1000 keys
            per step), timed until stored.
3. runs     runs per second: start a run, log one param and one metric, end it.
4. search   latency of ``search_runs`` with ``metrics.auc > 0.8``, top 10 by auc, over
            10,000 runs for both tools and 100,000 runs for loopml (median of repeats;
            the first, cold call is reported apart). Population time is reported too.

Throughput repeats alternate the order of the tools, so machine noise hits both alike.
Progress goes to stderr; one JSON line with every figure goes to stdout.
"""

from __future__ import annotations

import os

# No usage reporting from anything imported below (set before mlflow is imported).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import argparse
import contextlib
import datetime as dt
import gc
import importlib.metadata
import json
import logging
import platform
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import say, summary

FILTER = "metrics.auc > 0.8"
ORDER_BY = ["metrics.auc DESC"]
TOP = 10
BATCH_KEYS = 1000  # metric values per batched call

TARGETS = {
    "single_ratio_min": 100.0,
    "batch_ratio_min": 10.0,
    "runs_ratio_min": 10.0,
    "search_100k_max_s": 0.100,
}


@dataclass
class Sizes:
    repeats: int = 5
    search_repeats: int = 7
    mlflow_single: int = 1_000
    loopml_single: int = 200_000
    mlflow_batches: int = 25
    loopml_batches: int = 300
    mlflow_runs: int = 200
    loopml_runs: int = 1_000
    mlflow_search_runs: int = 10_000
    loopml_search_runs: int = 100_000
    same_size_search_runs: int = 10_000  # loopml is searched at this size too


QUICK = Sizes(
    repeats=2,
    search_repeats=3,
    mlflow_single=200,
    loopml_single=20_000,
    mlflow_batches=5,
    loopml_batches=30,
    mlflow_runs=30,
    loopml_runs=200,
    mlflow_search_runs=500,
    loopml_search_runs=2_000,
    same_size_search_runs=500,
)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Collects before a timed section and keeps the cyclic collector out of it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark check failed: {message}")


def population_values(count: int, seed: int = 42) -> Iterator[tuple[int, str, float, float]]:
    """The same runs for both tools: (index, model param, auc, loss)."""
    rng = random.Random(seed)
    models = ("rf", "gbm", "logreg")
    for index in range(count):
        yield index, models[index % 3], rng.random(), rng.random()


# -- the tools ------------------------------------------------------------------------
class MlflowTool:
    """MLflow as a normal user drives it: the fluent API on a sqlite:/// tracking URI."""

    name = "mlflow"

    def __init__(self, home: Path) -> None:
        import mlflow
        from mlflow import MlflowClient

        home.mkdir(parents=True, exist_ok=True)
        self.mlflow = mlflow
        self.home = home
        self.uri = f"sqlite:///{home / 'mlflow.db'}"
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self._experiments: dict[str, str] = {}

    def experiment(self, name: str) -> str:
        if name not in self._experiments:
            self.mlflow.set_tracking_uri(self.uri)
            self._experiments[name] = self.mlflow.create_experiment(
                name, artifact_location=(self.home / "artifacts" / name).as_uri()
            )
        return self._experiments[name]

    def activate(self) -> None:
        self.mlflow.set_tracking_uri(self.uri)

    def single(self, n: int) -> float:
        mlflow = self.mlflow
        self.activate()
        experiment_id = self.experiment("single")
        with mlflow.start_run(experiment_id=experiment_id) as run:
            log_metric = mlflow.log_metric
            with quiet_gc():
                start = time.perf_counter()
                for i in range(n):
                    log_metric("m", i / n, step=i)
                elapsed = time.perf_counter() - start  # each call is written before it returns
        stored = len(self.client.get_metric_history(run.info.run_id, "m"))
        check(stored == n, f"mlflow stored {stored} of {n} single values")
        return n / elapsed

    def batch(self, calls: int) -> float:
        mlflow = self.mlflow
        self.activate()
        experiment_id = self.experiment("batch")
        payloads = [{f"m{j}": (i + j) / 1e6 for j in range(BATCH_KEYS)} for i in range(calls)]
        with mlflow.start_run(experiment_id=experiment_id) as run, quiet_gc():
            start = time.perf_counter()
            for step, payload in enumerate(payloads):
                mlflow.log_metrics(payload, step=step)
            elapsed = time.perf_counter() - start
        for key in ("m0", f"m{BATCH_KEYS // 2}", f"m{BATCH_KEYS - 1}"):
            stored = len(self.client.get_metric_history(run.info.run_id, key))
            check(stored == calls, f"mlflow stored {stored} of {calls} values of {key}")
        return calls * BATCH_KEYS / elapsed

    def runs(self, n: int, experiment: str) -> float:
        mlflow = self.mlflow
        self.activate()
        experiment_id = self.experiment(experiment)
        with quiet_gc():
            start = time.perf_counter()
            for i in range(n):
                with mlflow.start_run(experiment_id=experiment_id, run_name=f"r{i}"):
                    mlflow.log_param("p", i)
                    mlflow.log_metric("auc", i / n)
            elapsed = time.perf_counter() - start
        found = self.mlflow.search_runs(experiment_ids=[experiment_id], max_results=n + 1)
        check(len(found) == n, f"mlflow found {len(found)} of {n} runs")
        check(
            found["metrics.auc"].notna().all() and found["params.p"].notna().all(),
            "mlflow runs lack their param or metric",
        )
        return n / elapsed

    def populate(self, values: Iterator[tuple[int, str, float, float]]) -> int:
        mlflow = self.mlflow
        self.activate()
        experiment_id = self.experiment("search")
        count = 0
        for index, model, auc, loss in values:
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"run-{index}"):
                mlflow.log_param("model", model)
                mlflow.log_metrics({"auc": auc, "loss": loss})
            count += 1
        return count

    def search(self) -> list[float]:
        self.activate()
        frame = self.mlflow.search_runs(
            experiment_ids=[self.experiment("search")],
            filter_string=FILTER,
            order_by=ORDER_BY,
            max_results=TOP,
        )
        return [float(v) for v in frame["metrics.auc"]]

    def close(self) -> None:
        pass


class LoopmlTool:
    """loopml through its public API: a Workspace on SQLite in a fresh folder."""

    name = "loopml"

    def __init__(self, home: Path) -> None:
        import loopml

        self.ws = loopml.Workspace.open(home)

    def single(self, n: int) -> float:
        with self.ws.start_run(experiment="single") as run:
            log_metric = run.log_metric
            with quiet_gc():
                start = time.perf_counter()
                for i in range(n):
                    log_metric("m", i / n, step=i)
                run.flush()  # durably stored in SQLite before the clock stops
                elapsed = time.perf_counter() - start
        stored = len(run.metric_history("m"))
        check(stored == n, f"loopml stored {stored} of {n} single values")
        return n / elapsed

    def batch(self, calls: int) -> float:
        payloads = [{f"m{j}": (i + j) / 1e6 for j in range(BATCH_KEYS)} for i in range(calls)]
        with self.ws.start_run(experiment="batch") as run, quiet_gc():
            start = time.perf_counter()
            for step, payload in enumerate(payloads):
                run.log_metrics(payload, step=step)
            run.flush()
            elapsed = time.perf_counter() - start
        for key in ("m0", f"m{BATCH_KEYS // 2}", f"m{BATCH_KEYS - 1}"):
            stored = len(run.metric_history(key))
            check(stored == calls, f"loopml stored {stored} of {calls} values of {key}")
        return calls * BATCH_KEYS / elapsed

    def runs(self, n: int, experiment: str) -> float:
        ws = self.ws
        with quiet_gc():
            start = time.perf_counter()
            for i in range(n):
                with ws.start_run(experiment=experiment, run_name=f"r{i}") as run:
                    run.log_param("p", i)
                    run.log_metric("auc", i / n)
            elapsed = time.perf_counter() - start  # run end writes its metrics
        found = ws.search_runs(experiment, max_results=n + 1)
        check(len(found) == n, f"loopml found {len(found)} of {n} runs")
        check(
            found["metrics.auc"].notna().all() and found["params.p"].notna().all(),
            "loopml runs lack their param or metric",
        )
        return n / elapsed

    def populate(self, values: Iterator[tuple[int, str, float, float]]) -> int:
        ws = self.ws
        count = 0
        for index, model, auc, loss in values:
            with ws.start_run(experiment="search", run_name=f"run-{index}") as run:
                run.log_param("model", model)
                run.log_metrics({"auc": auc, "loss": loss})
            count += 1
        return count

    def search(self) -> list[float]:
        frame = self.ws.search_runs("search", filter=FILTER, order_by=ORDER_BY, max_results=TOP)
        return [float(v) for v in frame["metrics.auc"]]

    def close(self) -> None:
        self.ws.close()


# -- the measurements -------------------------------------------------------------------
def throughput(tools: dict[str, Any], sizes: Sizes, results: dict[str, Any]) -> None:
    plans: dict[str, dict[str, tuple[Callable[..., float], tuple[Any, ...]]]] = {}
    for name, tool in tools.items():
        plans[name] = {
            "single": (tool.single, (getattr(sizes, f"{name}_single"),)),
            "batch": (tool.batch, (getattr(sizes, f"{name}_batches"),)),
            "runs": (tool.runs, (getattr(sizes, f"{name}_runs"),)),
        }
    units = {"single": "calls/s", "batch": "values/s", "runs": "runs/s"}
    samples: dict[str, dict[str, list[float]]] = {
        bench: {name: [] for name in tools} for bench in units
    }
    for repeat in range(sizes.repeats):
        order = list(tools) if repeat % 2 == 0 else list(reversed(tools))
        for bench in units:
            for name in order:
                function, args = plans[name][bench]
                if bench == "runs":
                    args = (*args, f"runs-{repeat}")
                rate = function(*args)
                samples[bench][name].append(rate)
                say(
                    f"repeat {repeat + 1}/{sizes.repeats} {bench:6s} {name:6s} "
                    f"{rate:12,.0f} {units[bench]}"
                )
    for bench, unit in units.items():
        entry: dict[str, Any] = {"unit": unit}
        for name in tools:
            entry[name] = summary(samples[bench][name])
        if {"mlflow", "loopml"} <= set(tools):
            entry["ratio"] = entry["loopml"]["median"] / entry["mlflow"]["median"]
        results[bench] = entry


def timed_searches(tool: Any, repeats: int) -> dict[str, Any]:
    with quiet_gc():
        start = time.perf_counter()
        top = tool.search()
        first = time.perf_counter() - start
    latencies = []
    for _ in range(repeats):
        with quiet_gc():
            start = time.perf_counter()
            again = tool.search()
            latencies.append(time.perf_counter() - start)
        check(again == top, f"{tool.name} search results changed between calls")
    check(
        len(top) == TOP and all(v > 0.8 for v in top) and top == sorted(top, reverse=True),
        f"{tool.name} search returned {top}",
    )
    return {"first_s": first, **summary(latencies), "top_auc": top}


def search(tools: dict[str, Any], sizes: Sizes, results: dict[str, Any]) -> None:
    section: dict[str, Any] = {"filter": FILTER, "order_by": ORDER_BY, "max_results": TOP}
    for name, tool in tools.items():
        target = getattr(sizes, f"{name}_search_runs")
        stops = sorted({min(sizes.same_size_search_runs, target), target})
        values = population_values(target)
        populated = 0
        population_s = 0.0
        for stop in stops:
            say(f"search: populating {name} with runs {populated:,}..{stop:,}")
            start = time.perf_counter()
            populated += tool.populate(next(values) for _ in range(stop - populated))
            population_s += time.perf_counter() - start
            say(
                f"search: {name} has {populated:,} runs; population took {population_s:.1f} s "
                f"so far ({populated / population_s:,.0f} runs/s)"
            )
            measured = timed_searches(tool, sizes.search_repeats)
            measured["runs"] = populated
            measured["population_s"] = population_s
            measured["population_runs_per_s"] = populated / population_s
            section[f"{name}_{stop}"] = measured
            say(
                f"search: {name} over {populated:,} runs: "
                f"median {measured['median'] * 1000:,.1f} ms "
                f"(first {measured['first_s'] * 1000:,.1f} ms)"
            )
    same = sizes.same_size_search_runs
    if f"mlflow_{same}" in section and f"loopml_{same}" in section:
        mlflow_same, loopml_same = section[f"mlflow_{same}"], section[f"loopml_{same}"]
        section["same_size_runs"] = same
        section["same_size_speedup"] = mlflow_same["median"] / loopml_same["median"]
        section["same_size_results_agree"] = mlflow_same["top_auc"] == loopml_same["top_auc"]
        check(section["same_size_results_agree"], "the tools found different top runs")
    results["search"] = section


def targets(results: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    met: dict[str, Any] = {}
    for bench in ("single", "batch", "runs"):
        ratio = results.get(bench, {}).get("ratio")
        if ratio is not None:
            need = TARGETS[f"{bench}_ratio_min"]
            got = round(ratio, 1)
            met[f"{bench}_ratio"] = {"need": f">= {need:g}x", "got": got, "met": ratio >= need}
    big = results.get("search", {}).get(f"loopml_{sizes.loopml_search_runs}")
    if big is not None:
        need = TARGETS["search_100k_max_s"]
        met[f"search_{sizes.loopml_search_runs}_runs"] = {
            "need": f"< {need * 1000:g} ms",
            "got_ms": round(big["median"] * 1000, 2),
            "met": big["median"] < need,
            "sized_as_target": sizes.loopml_search_runs >= 100_000,
        }
    met["all_met"] = all(item["met"] for item in met.values() if isinstance(item, dict))
    return met


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name in ("loopml", "mlflow", "sqlalchemy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def source_state() -> dict[str, Any]:
    """The checkout's commit, and whether loopml's sources differ from it (read-only git)."""
    import subprocess

    here = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never rewrite the checkout's index

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(here), "--no-optional-locks", *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=30,
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "src_modified": bool(git("status", "--porcelain", "--untracked-files=no", "--", "src")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=["throughput", "search"], help="run one part")
    parser.add_argument("--tools", default="mlflow,loopml", help="comma-separated tools")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    for field, default in asdict(Sizes()).items():
        quick = getattr(QUICK, field)
        parser.add_argument(
            f"--{field.replace('_', '-')}",
            type=int,
            default=None,
            help=f"(default {default:,}; --quick {quick:,})",
        )
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else Sizes()
    sizes = Sizes(
        **{
            field: getattr(args, field) if getattr(args, field) is not None else value
            for field, value in asdict(sizes).items()
        }
    )
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = set(names) - {"mlflow", "loopml"}
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")

    source = source_state()  # before anything runs: what was imported is what was measured
    root = Path(tempfile.mkdtemp(prefix="loopml-bench-tracking-"))
    # Work from the temporary folder: both tools look at the current directory's git state,
    # and neither should touch the checkout this script lives in.
    previous = Path.cwd()
    os.chdir(root)
    say(f"working in {root}; sizes {asdict(sizes)}")
    results: dict[str, Any] = {}
    started = time.time()
    try:
        say("importing mlflow and loopml")
        classes = {"mlflow": MlflowTool, "loopml": LoopmlTool}
        if "mlflow" in names:
            import mlflow  # noqa: F401 - imported once here so its import time is not measured

            for logger in ("mlflow", "alembic"):
                logging.getLogger(logger).setLevel(logging.WARNING)
        if args.only in (None, "throughput"):
            tools = {name: classes[name](root / name / "throughput") for name in names}
            say("throughput: single calls, batches of 1000, runs (repeats alternate the order)")
            throughput(tools, sizes, results)
            for tool in tools.values():
                tool.close()
        if args.only in (None, "search"):
            tools = {name: classes[name](root / name / "search") for name in names}
            search(tools, sizes, results)
            for tool in tools.values():
                tool.close()
    finally:
        os.chdir(previous)
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    report = {
        "benchmark": "tracking",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "versions": versions(),
        "loopml_source": source,
        "sizes": asdict(sizes),
        "quick": args.quick,
        "results": results,
        "targets": targets(results, sizes),
        "wall_s": round(time.time() - started, 1),
    }
    for name, item in report["targets"].items():
        if isinstance(item, dict):
            got = item.get("got", item.get("got_ms"))
            verdict = "PASS" if item["met"] else "FAIL"
            say(f"target {name}: need {item['need']}, got {got} -> {verdict}")
    line = json.dumps(report, separators=(",", ":"))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
