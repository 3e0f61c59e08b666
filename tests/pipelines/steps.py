"""Steps and pipelines the pipeline tests run (module level, so workers can import them)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.pipelines import pipeline, step


@step
def numbers(n: int, seed: int = 0) -> pd.DataFrame:
    print(f"making {n} rows")
    return pd.DataFrame({"x": [(i * 7 + seed) % 11 for i in range(n)], "y": range(n)})


@step
def total(frame: pd.DataFrame) -> int:
    return int(frame["x"].sum())


@step
def count(frame: pd.DataFrame) -> int:
    return len(frame)


@step
def mean(total: int, count: int) -> float:
    return total / count


@pipeline
def stats(n: int = 20, seed: int = 0) -> Any:
    frame = numbers(n, seed)
    return {"total": total(frame), "count": count(frame), "mean": mean(total(frame), count(frame))}


@step
def pid() -> int:
    return os.getpid()


@step
def both(a: int, b: int) -> list[int]:
    return [a, b]


@pipeline
def two_branches() -> Any:
    return both(pid(), pid())


@step
def text() -> str:
    return "not a frame"


@pipeline
def mistyped() -> Any:
    return total(text())


@step(retries=2, backoff=0.01)
def flaky(marker: str, fail_times: int) -> str:
    """Fails ``fail_times`` times (counted in the file ``marker``), then succeeds."""
    path = Path(marker)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < fail_times:
        raise RuntimeError(f"flaky failure {seen + 1}")
    return f"ok after {seen + 1}"


@step
def upper(value: str) -> str:
    return value.upper()


@step
def source(word: str) -> str:
    return word


@pipeline
def retrying(marker: str, fail_times: int = 1) -> Any:
    return upper(flaky(marker, fail_times))


@pipeline
def resumable(marker: str, fail_times: int = 5) -> Any:
    """``source`` is independent of the failing branch; ``upper`` depends on it."""
    first = source("kept")
    return {"kept": upper(first), "flaky": upper(flaky(marker, fail_times))}


@step
def sleepy(flag: str) -> str:
    """Sleeps until the file ``flag`` is gone: a step to kill mid-way."""
    Path(flag + ".started").write_text(str(os.getpid()))
    while Path(flag).exists():
        time.sleep(0.05)
    return "woke"


@pipeline
def killable(flag: str) -> Any:
    return upper(sleepy(flag))


@step(timeout=0.3)
def slow() -> str:
    time.sleep(5)
    return "late"


@pipeline
def too_slow() -> Any:
    return slow()


def chain_steps(length: int) -> Any:
    """A pipeline of ``length`` trivial steps in a chain (the benchmark's shape)."""

    @pipeline(name=f"chain{length}")
    def chain(start: int = 0) -> Any:
        value: Any = start
        for _ in range(length):
            value = increment(value)
        return value

    return chain


@step
def increment(value: int) -> int:
    return value + 1


@step
def fit_model(ws: Any, data: str) -> str:
    """Trains with ws.train inside a step: the run is linked to the step."""
    from sklearn.linear_model import LogisticRegression

    result = ws.train(
        LogisticRegression(max_iter=200), data=data, target="churned", features=["spend"]
    )
    return f"runs:/{result.run.id}/model"


@step(cache=False)
def register_model(ws: Any, model: str, name: str) -> str:
    return str(ws.registry.register(model, name=name).uri)


@pipeline
def train_and_register(data: str = "churn@1") -> Any:
    return register_model(fit_model(data), "churn")


@step
def tracked(ws: Any, value: int) -> str:
    import logging

    logging.getLogger("tests.steps").warning("tracked %s", value)
    print(f"value {value}")
    with ws.start_run(experiment="pipeline-steps") as run:
        run.log_metric("value", value)
    return str(run.id)


@pipeline
def tracking(value: int = 1) -> Any:
    return tracked(value)


@step
def die() -> int:
    """Kills its own worker process, as the out-of-memory killer would."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@pipeline
def dying() -> Any:
    return {"died": die(), "after": upper(source("still runs"))}


@step
def untyped():  # type: ignore[no-untyped-def]
    return "a string, not a frame"


@pipeline
def mistyped_at_run_time() -> Any:
    return total(untyped())
