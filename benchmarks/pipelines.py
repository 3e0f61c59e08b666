"""Pipelines: loopml's overhead per step, a fully cached re-run, and the executors.

    .venv/bin/python benchmarks/pipelines.py            # ~15 s, with Ray
    .venv/bin/python benchmarks/pipelines.py --quick    # fewer repeats, no Ray

On the embedded default (SQLite + a local artifact folder), timed:

1. overhead    a chain of 20 trivial steps (``value + 1``) run as a pipeline with the
               cache off (every step executes, is tracked and its output stored), against
               calling the same 20 functions directly; per step.
2. cached      the same 20-step pipeline again with the cache on: every step is a cache
               hit (its key computed, looked up and recorded); total and per step.
3. executors   a fan-out pipeline, 4 independent CPU-bound steps (~0.5 s each) and a
               join, on the local (in-process), process (2 workers) and Ray (2 CPUs)
               executors, cache off; results must be identical.

Progress goes to stderr; one JSON line with every figure goes to stdout.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loopml
from loopml.pipelines import pipeline, run_pipeline, step

TARGETS = {"step_overhead_ms_max": 20.0, "cached_rerun_20_steps_s_max": 1.0}
LENGTH = 20


@step
def increment(value: int) -> int:
    return value + 1


@pipeline
def chain(start: int = 0) -> Any:
    value: Any = start
    for _ in range(LENGTH):
        value = increment(value)
    return value


@step
def crunch(seed: int, rounds: int) -> int:
    total = seed
    for i in range(rounds):
        total = (total * 31 + i) % 1_000_003
    return total


@step
def join(a: int, b: int, c: int, d: int) -> int:
    return (a + b + c + d) % 1_000_003


@pipeline
def fan_out(rounds: int = 8_000_000) -> Any:
    return join(*(crunch(seed, rounds) for seed in range(4)))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(function: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no Ray")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    figures: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "steps": LENGTH,
    }
    with tempfile.TemporaryDirectory() as folder:
        ws = loopml.Workspace.open(Path(folder) / "home")

        def direct() -> int:
            value = 0
            for _ in range(LENGTH):
                value = increment.function(value)
            return value

        direct_s = min(timed(direct)[0] for _ in range(repeats))
        run_pipeline(ws, chain, {"start": -1000})  # warm-up: imports, first statements
        cold: list[float] = []
        cached: list[float] = []
        for index in range(repeats):
            start = 1000 * index  # chains far apart: no value (so no cache key) is shared
            seconds, run = timed(lambda s=start: run_pipeline(ws, chain, {"start": s}))
            assert run.result == start + LENGTH and run.cache_hits == 0, run.error
            cold.append(seconds)
            seconds, run = timed(lambda s=start: run_pipeline(ws, chain, {"start": s}))
            assert run.cache_hits == LENGTH
            cached.append(seconds)
        cold_s, cached_s = statistics.median(cold), statistics.median(cached)
        figures["direct_20_steps_ms"] = round(direct_s * 1000, 4)
        figures["uncached_20_steps_s"] = round(cold_s, 4)
        figures["step_overhead_ms"] = round((cold_s - direct_s) / LENGTH * 1000, 2)
        figures["cached_rerun_20_steps_s"] = round(cached_s, 4)
        figures["cached_step_overhead_ms"] = round((cached_s - direct_s) / LENGTH * 1000, 2)
        log(
            f"20 trivial steps: direct {direct_s * 1000:.3f} ms, pipeline {cold_s:.3f} s "
            f"({figures['step_overhead_ms']} ms/step), fully cached {cached_s:.3f} s "
            f"({figures['cached_step_overhead_ms']} ms/step)"
        )

        executors = ["local", "process"] + ([] if args.quick else ["ray"])
        rounds = 600_000 if args.quick else 8_000_000
        results: dict[str, Any] = {}
        if "ray" in executors:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for name in executors:
                seconds, run = timed(
                    lambda name=name: run_pipeline(
                        ws, fan_out, {"rounds": rounds}, executor=name, workers=2, cache=False
                    )
                )
                assert run.status == "SUCCEEDED", run.error
                results[name] = run.result
                steps = sum(s.seconds or 0 for s in run.steps)
                figures[f"fan_out_{name}_s"] = round(seconds, 3)
                figures[f"fan_out_{name}_step_seconds"] = round(steps, 3)
                log(f"fan-out of 4 x {rounds:,} rounds on {name}: {seconds:.2f} s")
        finally:
            if "ray" in executors:
                ray.shutdown()
        figures["executors_agree"] = len({json.dumps(r) for r in results.values()}) == 1
        ws.close()
    passed = {
        "step_overhead": figures["step_overhead_ms"] < TARGETS["step_overhead_ms_max"],
        "cached_step_overhead": figures["cached_step_overhead_ms"]
        < TARGETS["step_overhead_ms_max"],
        "cached_rerun": figures["cached_rerun_20_steps_s"] < TARGETS["cached_rerun_20_steps_s_max"],
        "executors_agree": figures["executors_agree"],
    }
    figures["targets"] = {k: "PASS" if v else "FAIL" for k, v in passed.items()}
    for key, verdict in figures["targets"].items():
        log(f"{verdict} {key}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
