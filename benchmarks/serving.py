"""Model serving: ``loopml serve`` beside ``mlflow models serve``, and batch scoring.

    bash benchmarks/setup.sh                                       # once (adds wrk)
    benchmarks/.venv/bin/python benchmarks/serving.py              # ~30 min
    benchmarks/.venv/bin/python benchmarks/serving.py --quick      # smoke run, ~5 min

One seeded scikit-learn model, a RandomForestClassifier of 50 trees on 20 numeric
features, fitted once in this process and served on 127.0.0.1 by:

- MLflow 3.17: ``mlflow models serve -m <saved model> --env-manager local`` with its
  default single worker and with ``--workers 2``; ``POST /invocations`` with
  ``{"dataframe_records": [...]}``, ready when ``GET /health`` answers 200;
- loopml: ``loopml serve models:/bench@production`` with 1 and 2 workers, with
  micro-batching (``--max-batch-size 64 --max-latency-ms 2``) and without
  (``--no-batching``), with the prediction log and without (``--no-log``), the pickled
  model and its ONNX export (``--runtime onnx``); ``POST /models/bench/predict`` with
  ``{"records": [...]}``, ready when ``GET /health/ready`` answers 200.

Load: ``wrk`` (C, one event-loop thread) with a Lua script that rotates through
pre-built POST bodies, 32 connections (closed loop: each connection sends its next
request when the previous answer arrives) for 20 s, after a warm-up, single-row and
100-row requests. wrk rather than a Python client because on 2 shared cores the load
generator competes with the server for CPU: its CPU use is measured and reported.
Measured per configuration and repeat: requests/s, p50/p90/p99 latency, errors (socket
errors, timeouts and HTTP status >= 400), time from process start to ready, the
server's CPU per request, the load average before and after. Every configuration is
started afresh in every repeat; repeats alternate the order of the configurations.
Before any timing, both servers must answer the predictions the model gives in-process
for the same 200 rows.

Batch scoring: ``loopml predict models:/bench@production --input X.parquet --output
Y.parquet`` on 1,000,000 rows (whole process, wall clock, CPU and peak memory), also with
``--no-log``, with ``--runtime onnx`` (the version's ONNX export) and on a 1,000-row file
(each runtime's fixed cost: imports, workspace, model load), and on a bigger file
(``--batch-big-rows``, 5,000,000 rows: the 1,000,000 repeated) logged and with ``--no-log``,
beside the model's bare in-process ``predict`` on the same rows (``n_jobs`` 1 and 2, and
100,000-row chunks two at a time in threads: the model's own ceiling on 2 cores) and the
ONNX export's. Outputs must equal the bare labels. The 500,000 rows/s target is judged on
the steady scoring rate: the bigger file's rows over its time less the 1,000-row run's
(the fixed start-up cost); the whole command's rate on 1,000,000 rows is reported beside it.

The loopml side runs in loopml's own environment (``--loopml-python``, default the
checkout's ``.venv``: it has the ``onnx`` extra, which the benchmark venv lacks); the
MLflow side in the benchmark venv. Progress goes to stderr; one JSON line with every
figure goes to stdout.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
# The MLflow model is saved with cloudpickle (as loopml's pickle runtime); skops,
# MLflow 3's default, is not what loopml serves and refuses some numpy types.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"

import argparse
import http.client
import importlib.metadata
import json
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import proc_status, say, summary
from sklearn.ensemble import RandomForestClassifier

QUIET = {
    name: os.environ[name]
    for name in (
        "MLFLOW_DISABLE_TELEMETRY",
        "DO_NOT_TRACK",
        "RAY_USAGE_STATS_ENABLED",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION",
    )
}
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODEL = "bench"
FEATURES = [f"f{i}" for i in range(20)]
TARGETS = {
    "throughput_single_vs_mlflow_min": 15.0,
    "p99_single_vs_mlflow_max": 0.1,
    "ready_s_max": 2.0,
    "logging_overhead_max": 0.10,
    "batch_rows_per_s_min": 500_000,
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

WRK_SCRIPT = r"""
-- POST bodies from a file, one per line, sent in turn; a JSON summary at the end.
local requests = {}
local next_index = 0
function init(args)
  local path, route = args[1], args[2]
  for line in io.lines(path) do
    requests[#requests + 1] = wrk.format(
      "POST", route, {["Content-Type"] = "application/json", ["Host"] = wrk.host}, line)
  end
  next_index = math.random(#requests)
end
function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '\nWRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
"""


# -- the model and the data ---------------------------------------------------------------
def make_data(rows: int, seed: int) -> pd.DataFrame:
    """Seeded rows of the 20 features, rounded to 6 decimals (JSON carries them exactly).
    Not 4: with 4 decimals loopml refuses the ONNX export (see benchmarks/README.md)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURES)))
    values[:, :5] += rng.integers(0, 2, size=(rows, 1)) * 1.5  # some signal
    return pd.DataFrame(values.round(6), columns=FEATURES)


def make_model(rows: int = 10_000) -> tuple[RandomForestClassifier, pd.DataFrame]:
    frame = make_data(rows, seed=0)
    rng = np.random.default_rng(1)
    score = frame[FEATURES[:5]].sum(axis=1) - 3.75 + rng.normal(scale=1.5, size=rows)
    label = (score > 0).astype(int)
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(frame, label)
    return model, frame


# -- processes ------------------------------------------------------------------------------
def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **QUIET}
    # `mlflow models serve` runs `mlflow` and `uvicorn` from PATH: the benchmark venv first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _session_stats(sid: int) -> list[tuple[int, float, int]]:
    """(pid, CPU seconds, RSS bytes) of every live process of session ``sid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        if int(rest[3]) != sid:
            continue
        cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK
        found.append((int(entry.name), cpu, int(rest[21]) * PAGE))
    return found


@dataclass
class Server:
    name: str
    command: list[str]
    health: str
    route: str
    port: int
    log_path: Path
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ready_s: float | None = None
    ready_cpu_s: float | None = None  # CPU seconds its processes used until ready

    def start(self, timeout: float) -> float:
        log = self.log_path.open("ab")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own session: killed as a group, CPU summed
        )
        log.close()
        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if http_get(self.port, self.health) == 200:
                self.ready_s = time.perf_counter() - self.started
                self.ready_cpu_s = self.cpu_seconds()
                return self.ready_s
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        return sum(cpu for _, cpu, _ in _session_stats(self.process.pid)) if self.process else 0

    def rss_bytes(self) -> int:
        return sum(rss for _, _, rss in _session_stats(self.process.pid)) if self.process else 0

    def processes(self) -> int:
        return len(_session_stats(self.process.pid)) if self.process else 0

    def stop(self) -> None:
        if self.process is None:
            return
        sid = self.process.pid
        with suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # Anything of its session that moved to another process group.
        deadline = time.time() + 5
        while (left := _session_stats(sid)) and time.time() < deadline:
            for pid, _, _ in left:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def http_get(port: int, path: str, timeout: float = 2.0) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def http_text(port: int, path: str, timeout: float = 10.0) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode(errors="replace")
    except OSError as error:
        return f"# {error}"
    finally:
        connection.close()


def scrape(server: Server) -> dict[str, float]:
    """The loopml server's batch-size histograms and prediction-log gauges from /metrics
    (of the one worker that answers: exact with 1 worker, one of them with 2)."""
    wanted = (
        "loopml_batch_rows_sum",
        "loopml_batch_rows_count",
        "loopml_batch_requests_sum",
        "loopml_batch_requests_count",
        "loopml_prediction_log_dropped_rows",
        "loopml_prediction_log_queued_rows",
        "loopml_model_load_seconds",
    )
    found: dict[str, float] = {}
    for line in http_text(server.port, "/metrics").splitlines():
        name = line.partition("{")[0].partition(" ")[0]
        if name in wanted:
            with suppress(ValueError):
                found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def logged_rows(setup: Setup, start: float, stop: float) -> int | None:
    """Rows the prediction log indexed with times in [start, stop] (epoch seconds), read
    from the workspace's SQLite index (``prediction_files``) without loading the files."""
    import sqlite3

    database = setup.loopml_home / "loopml.db"
    if not database.exists():
        return None
    with suppress(sqlite3.Error), sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(rows), 0) FROM prediction_files "
            "WHERE model = ? AND min_time >= ? AND max_time <= ?",
            # min_time is rounded down, max_time up: the previous server's files end
            # before this one started.
            (MODEL, int(start * 1000), int(stop * 1000) + 1000),
        ).fetchone()
        return int(row[0])
    return None


def http_post(port: int, path: str, body: bytes, timeout: float = 60.0) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        connection.close()


# -- configurations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    name: str
    tool: str  # mlflow | loopml
    workers: int
    batching: bool = True
    log: bool = True
    runtime: str = "pickle"

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"tool": self.tool, "workers": self.workers}
        if self.tool == "loopml":
            found.update(batching=self.batching, log=self.log, runtime=self.runtime)
        return found


CONFIGS = [
    Config("mlflow-w1", "mlflow", 1),
    Config("mlflow-w2", "mlflow", 2),
    Config("loopml-w1", "loopml", 1),
    Config("loopml-w1-nobatch", "loopml", 1, batching=False),
    Config("loopml-w1-nolog", "loopml", 1, log=False),
    Config("loopml-w1-onnx", "loopml", 1, runtime="onnx"),
    Config("loopml-w2", "loopml", 2),
    Config("loopml-w2-nobatch", "loopml", 2, batching=False),
    Config("loopml-w2-nolog", "loopml", 2, log=False),
]
BATCH_FLAGS = ["--max-batch-size", "64", "--max-latency-ms", "2"]


@dataclass
class Setup:
    root: Path
    mlflow_model: Path
    loopml_home: Path
    loopml_bin: Path
    loopml_python: Path
    bodies: dict[tuple[str, int], Path] = field(default_factory=dict)


def make_server(setup: Setup, config: Config) -> Server:
    port = free_port()
    log_path = setup.root / "logs" / f"{config.name}.log"
    log_path.parent.mkdir(exist_ok=True)
    if config.tool == "mlflow":
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(setup.mlflow_model),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        if config.workers != 1:
            command += ["--workers", str(config.workers)]
        return Server(
            config.name,
            command,
            "/health",
            "/invocations",
            port,
            log_path,
            child_env(),
            setup.root,
        )
    command = [
        str(setup.loopml_bin),
        "serve",
        f"models:/{MODEL}@production",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(config.workers),
    ]
    command += BATCH_FLAGS if config.batching else ["--no-batching"]
    if not config.log:
        command.append("--no-log")
    if config.runtime != "pickle":
        command += ["--runtime", config.runtime]
    env = child_env({"LOOPML_HOME": str(setup.loopml_home)})
    env["PATH"] = f"{setup.loopml_bin.parent}{os.pathsep}{env['PATH']}"
    return Server(
        config.name,
        command,
        "/health/ready",
        f"/models/{MODEL}/predict",
        port,
        log_path,
        env,
        setup.root,
    )


def body(tool: str, frame: pd.DataFrame) -> bytes:
    records = frame.to_dict(orient="records")
    key = "dataframe_records" if tool == "mlflow" else "records"
    return json.dumps({key: records}, separators=(",", ":")).encode()


def write_bodies(setup: Setup, traffic: pd.DataFrame) -> None:
    """Pre-built request bodies, one per line: 64 single rows, 16 of 100 rows per tool."""
    for tool in ("mlflow", "loopml"):
        for rows, count in ((1, 64), (100, 16)):
            path = setup.root / f"bodies-{tool}-{rows}.jsonl"
            with path.open("wb") as out:
                for i in range(count):
                    out.write(body(tool, traffic.iloc[i * rows : (i + 1) * rows]) + b"\n")
            setup.bodies[tool, rows] = path


def predictions_of(answer: Any) -> list[Any]:
    """The predicted labels in a server's answer (MLflow's or loopml's)."""
    found = answer.get("predictions", answer.get("outputs")) if isinstance(answer, dict) else answer
    if not isinstance(found, list):
        raise ValueError(f"no predictions in {str(answer)[:300]}")
    labels = []
    for item in found:
        if isinstance(item, dict):
            item = item.get("prediction", item.get("label", item.get("predictions")))
        labels.append(int(item) if isinstance(item, (int, float, bool, str)) else item)
    return labels


def check_predictions(
    server: Server, tool: str, rows: pd.DataFrame, expected: np.ndarray
) -> dict[str, Any]:
    """The server's labels for ``rows`` (sent 100 at a time) against the in-process ones."""
    labels: list[Any] = []
    for start in range(0, len(rows), 100):
        status, answer = http_post(server.port, server.route, body(tool, rows[start : start + 100]))
        if status != 200:
            raise RuntimeError(f"{server.name}: HTTP {status} for the check rows: {answer}")
        labels += predictions_of(answer)
    differ = sum(int(a != int(b)) for a, b in zip(labels, expected, strict=True))
    return {"rows": len(labels), "differ": differ, "sample_answer": str(answer)[:400]}


# -- load -------------------------------------------------------------------------------------
def run_wrk(
    server: Server, bodies: Path, script: Path, seconds: float, connections: int, threads: int
) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{server.port}",
        "--",
        str(bodies),
        server.route,
    ]
    load_before = os.getloadavg()[0]
    cpu_before = server.cpu_seconds()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = server.cpu_seconds() - cpu_before
    marker = [line for line in done.stdout.splitlines() if line.startswith("WRKJSON ")]
    if done.returncode != 0 or not marker:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(marker[-1].removeprefix("WRKJSON "))
    duration = raw["duration_us"] / 1e6
    requests = raw["requests"]
    errors = sum(raw["errors"].values())
    wrk_cpu = (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    return {
        "requests": requests,
        "rps": requests / duration,
        "p50_ms": raw["latency_us"]["p50"] / 1000,
        "p90_ms": raw["latency_us"]["p90"] / 1000,
        "p99_ms": raw["latency_us"]["p99"] / 1000,
        "p999_ms": raw["latency_us"]["p999"] / 1000,
        "max_ms": raw["latency_us"]["max"] / 1000,
        "mean_ms": raw["latency_us"]["mean"] / 1000,
        "errors": errors,
        "error_kinds": raw["errors"],
        "duration_s": duration,
        "server_cpu_cores": cpu / wall,
        "server_cpu_ms_per_request": 1000 * cpu / requests if requests else None,
        "wrk_cpu_cores": wrk_cpu / wall,
        "load_1m_before": load_before,
        "load_1m_after": os.getloadavg()[0],
    }


# -- the loopml side, run in loopml's environment ---------------------------------------------
def loopml_setup(folder: Path) -> None:
    """`serving.py _loopml-setup FOLDER`: log, register and promote the pickled model in
    a workspace at FOLDER/loopml, export ONNX; prints a JSON line."""
    import joblib

    import loopml

    model = joblib.load(folder / "model.joblib")
    held_out = pd.read_parquet(folder / "held_out.parquet")
    ws = loopml.Workspace.open(folder / "loopml")
    with ws.start_run("serving-bench") as run:
        run.log_model(model, input_example=held_out.head(5))
    version = ws.registry.register(run, name=MODEL)
    # `production` is protected (a passing gate first); a benchmark forces it, with a reason.
    ws.registry.promote(MODEL, version.version, "production", force=True, reason="benchmark")
    started = time.perf_counter()
    exported = ws.registry.export(f"models:/{MODEL}/{version.version}", "onnx", data=held_out)
    export_s = time.perf_counter() - started
    loaded = ws.registry.load(f"models:/{MODEL}@production")
    onnx = ws.registry.load(f"models:/{MODEL}/{version.version}", flavor="onnx")
    same = loaded.predict(held_out)
    onnx_labels = onnx.predict(held_out)
    print(
        json.dumps(
            {
                "version": version.version,
                "onnx_path": str(exported.path),
                "onnx_parity": exported.parity,
                "onnx_export_s": export_s,
                "onnx_bytes": Path(exported.path).stat().st_size,
                "pickle_labels": [int(x) for x in same],
                "onnx_labels": [int(x) for x in onnx_labels],
                "versions": _versions(("loopml", "onnxruntime", "skl2onnx", "scikit-learn")),
            }
        )
    )
    ws.close()


def loopml_bare_onnx(folder: Path, repeats: int) -> None:
    """`serving.py _bare-onnx FOLDER REPEATS`: the ONNX export's in-process predict on
    FOLDER/batch.parquet; prints a JSON line."""
    from loopml.models.onnx import OnnxModel

    onnx_path = Path(json.loads((folder / "loopml-setup.json").read_text())["onnx_path"])
    model = OnnxModel.load(onnx_path)
    frame = pd.read_parquet(folder / "batch.parquet")
    model.predict(frame.head(1000))
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        labels = model.predict(frame)
        seconds.append(time.perf_counter() - started)
    np.save(folder / "onnx-labels.npy", np.asarray(labels))
    print(json.dumps({"seconds": seconds}))


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def loopml_command_ready(loopml_bin: Path, command: str) -> str | None:
    """None when `loopml <command> --help` works, else why not."""
    if not loopml_bin.exists():
        return f"{loopml_bin} does not exist"
    done = subprocess.run(
        [str(loopml_bin), command, "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    if done.returncode != 0:
        words = " ".join(
            line.strip("│╭╮╰╯─ ") for line in done.stderr.splitlines() if line.strip("│╭╮╰╯─ ")
        )
        return f"`loopml {command} --help` exited {done.returncode}: {words[-300:]}"
    return None


def source_commit() -> str | None:
    """The checkout's commit, read from .git (no git process)."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head.removeprefix("ref: ")
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def newest_source() -> tuple[float, str]:
    """The newest modification time under src/loopml and its file (no git process)."""
    newest = (0.0, "")
    for path in (ROOT / "src" / "loopml").rglob("*.py"):
        with suppress(OSError):
            newest = max(newest, (path.stat().st_mtime, str(path.relative_to(ROOT))))
    return newest


# -- the benchmark ----------------------------------------------------------------------------
def prepare(root: Path, args: argparse.Namespace, model: Any, traffic: pd.DataFrame) -> Setup:
    import joblib
    import mlflow

    loopml_python = Path(args.loopml_python)
    setup = Setup(
        root=root,
        mlflow_model=root / "mlflow-model",
        loopml_home=root / "loopml",
        loopml_bin=loopml_python.parent / "loopml",
        loopml_python=loopml_python,
    )
    requirements = [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "cloudpickle")
    ]
    started = time.perf_counter()
    mlflow.sklearn.save_model(
        model,
        setup.mlflow_model,
        serialization_format="cloudpickle",
        pip_requirements=requirements,
        input_example=traffic.head(5),
    )
    say(f"MLflow model saved in {time.perf_counter() - started:.1f} s")
    # MLflow's modules were compiled to bytecode by pip; loopml's editable source is
    # compiled on first import, and never under PYTHONDONTWRITEBYTECODE: compile it now,
    # so that start-up times compare installed packages with installed packages.
    source = Path(__file__).resolve().parents[1] / "src" / "loopml"
    subprocess.run([str(loopml_python), "-m", "compileall", "-q", str(source)], check=True)
    joblib.dump(model, root / "model.joblib")
    traffic.head(2000).to_parquet(root / "held_out.parquet")
    write_bodies(setup, traffic)
    (root / "bodies.lua").write_text(WRK_SCRIPT)
    return setup


def serve_configs(
    setup: Setup,
    configs: list[Config],
    args: argparse.Namespace,
    check_rows: pd.DataFrame,
    expected: np.ndarray,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        c.name: {
            **c.describe(),
            "ready_s": [],
            "ready_cpu_s": [],
            "single": [],
            "rows100": [],
            "checks": [],
        }
        for c in configs
    }
    script = setup.root / "bodies.lua"
    for repeat in range(args.repeats):
        order = configs if repeat % 2 == 0 else list(reversed(configs))
        for config in order:
            server = make_server(setup, config)
            entry = results[config.name]
            life = {"repeat": repeat + 1, "start": time.time(), "rows_sent": 0, "in_flight": 0}
            try:
                ready = server.start(args.ready_timeout)
                entry["ready_s"].append(ready)
                entry["ready_cpu_s"].append(server.ready_cpu_s)
                life["load_1m_at_start"] = os.getloadavg()[0]
                say(
                    f"repeat {repeat + 1}: {config.name} ready in {ready:.2f} s "
                    f"({server.ready_cpu_s:.2f} CPU-s; load {life['load_1m_at_start']:.2f})"
                )
                check = check_predictions(server, config.tool, check_rows, expected)
                life["rows_sent"] += check["rows"]
                entry["checks"].append({k: v for k, v in check.items() if k != "sample_answer"})
                if repeat == 0:
                    entry["sample_answer"] = check["sample_answer"]
                if check["differ"] and config.runtime == "pickle":
                    raise RuntimeError(
                        f"{config.name}: {check['differ']} of {check['rows']} predictions differ "
                        f"from the model's in-process ones; answer: {check['sample_answer']}"
                    )
                before = scrape(server) if config.tool == "loopml" else {}
                for key, rows in (("single", 1), ("rows100", 100)):
                    bodies = setup.bodies[config.tool, rows]
                    if args.warmup > 0:
                        warm = run_wrk(server, bodies, script, args.warmup, args.connections, 1)
                        life["rows_sent"] += warm["requests"] * rows
                        life["in_flight"] += args.connections * rows
                    found = run_wrk(
                        server, bodies, script, args.duration, args.connections, args.threads
                    )
                    life["rows_sent"] += found["requests"] * rows
                    # wrk counts the answers it read; the last request of each connection
                    # is still answered (and logged) by the server after wrk stops.
                    life["in_flight"] += args.connections * rows
                    found["rows_per_s"] = found["rps"] * rows
                    found["server_rss_bytes"] = server.rss_bytes()
                    found["server_processes"] = server.processes()
                    if config.tool == "loopml":
                        after = scrape(server)
                        found["metrics"] = after
                        calls = after.get("loopml_batch_rows_count", 0) - before.get(
                            "loopml_batch_rows_count", 0
                        )
                        if calls > 0 and config.workers == 1:
                            found["rows_per_model_call"] = (
                                after["loopml_batch_rows_sum"]
                                - before.get("loopml_batch_rows_sum", 0)
                            ) / calls
                            found["requests_per_model_call"] = (
                                after.get("loopml_batch_requests_sum", 0)
                                - before.get("loopml_batch_requests_sum", 0)
                            ) / calls
                        before = after
                    entry[key].append(found)
                    per_call = (
                        f"  {found['rows_per_model_call']:.1f} rows/model call"
                        if "rows_per_model_call" in found
                        else ""
                    )
                    say(
                        f"  {key:7s} {found['rps']:9.1f} req/s  p50 {found['p50_ms']:8.2f} ms  "
                        f"p99 {found['p99_ms']:8.2f} ms  errors {found['errors']}  "
                        f"server {found['server_cpu_cores']:.2f} cores, "
                        f"wrk {found['wrk_cpu_cores']:.2f}  load {found['load_1m_after']:.2f}"
                        + per_call
                    )
            except Exception as error:
                entry.setdefault("failures", []).append(f"repeat {repeat + 1}: {error}")
                say(f"  {config.name} FAILED: {error}")
            finally:
                stopping = time.perf_counter()
                server.stop()
                life["stop_s"] = time.perf_counter() - stopping
                life["stop"] = time.time()
                if config.tool == "loopml" and config.log:
                    life["rows_logged"] = logged_rows(setup, life["start"], life["stop"])
                    say(
                        f"  stopped in {life['stop_s']:.1f} s; prediction log: "
                        f"{life['rows_logged']} rows for {life['rows_sent']} rows answered "
                        f"(+ at most {life['in_flight']} in flight when wrk stopped)"
                    )
                entry.setdefault("lives", []).append(life)
    for entry in results.values():
        if entry["ready_s"]:
            entry["ready_s"] = summary(entry["ready_s"])
            entry["ready_cpu_s"] = summary(entry["ready_cpu_s"])
        for key in ("single", "rows100"):
            samples = entry[key]
            if not samples:
                continue
            entry[key] = {
                metric: summary([s[metric] for s in samples])
                for metric in (
                    "rps",
                    "rows_per_s",
                    "p50_ms",
                    "p90_ms",
                    "p99_ms",
                    "p999_ms",
                    "max_ms",
                    "server_cpu_cores",
                    "server_cpu_ms_per_request",
                    "wrk_cpu_cores",
                    "server_rss_bytes",
                )
            }
            entry[key]["errors_total"] = sum(s["errors"] for s in samples)
            per_call = [s["rows_per_model_call"] for s in samples if "rows_per_model_call" in s]
            if per_call:
                entry[key]["rows_per_model_call"] = summary(per_call)
            entry[key]["runs"] = samples
    return results


def batch_scoring(
    setup: Setup, args: argparse.Namespace, model: RandomForestClassifier, rows: int
) -> dict[str, Any]:
    frame = make_data(rows, seed=7)
    source = setup.root / "batch.parquet"
    frame.to_parquet(source)
    found: dict[str, Any] = {"rows": rows, "input_bytes": source.stat().st_size}
    expected = model.predict(frame)

    def bare(jobs: int) -> list[float]:
        model.set_params(n_jobs=jobs)
        model.predict(frame.head(1000))
        seconds = []
        for _ in range(args.batch_repeats):
            started = time.perf_counter()
            model.predict(frame)
            seconds.append(time.perf_counter() - started)
        model.set_params(n_jobs=None)
        return seconds

    for jobs in (1, 2):
        seconds = bare(jobs)
        found[f"bare_sklearn_{jobs}_thread"] = {
            "seconds": summary(seconds),
            "rows_per_s": rows / statistics.median(seconds),
        }
        rate = rows / statistics.median(seconds)
        say(f"bare sklearn predict, n_jobs={jobs}: {rate:,.0f} rows/s")
    # The model's own ceiling on this machine: chunks of 100,000 rows scored two at a
    # time in threads (the trees release the GIL), as `loopml predict` schedules them.
    from concurrent.futures import ThreadPoolExecutor

    chunks = [frame.iloc[i : i + 100_000] for i in range(0, rows, 100_000)]
    seconds = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(args.batch_repeats):
            started = time.perf_counter()
            list(pool.map(model.predict_proba, chunks))
            seconds.append(time.perf_counter() - started)
    found["bare_sklearn_2_threads_chunked"] = {
        "seconds": summary(seconds),
        "rows_per_s": rows / statistics.median(seconds),
    }
    say(f"bare sklearn predict_proba, 2 threads: {rows / statistics.median(seconds):,.0f} rows/s")
    started = time.perf_counter()
    pd.read_parquet(source)
    found["read_parquet_s"] = time.perf_counter() - started

    done = subprocess.run(
        [setup.loopml_python, __file__, "_bare-onnx", setup.root, str(args.batch_repeats)],
        capture_output=True,
        text=True,
        env=child_env({"LOOPML_HOME": str(setup.loopml_home)}),
        timeout=1800,
    )
    if done.returncode == 0:
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        labels = np.load(setup.root / "onnx-labels.npy")
        found["bare_onnx"] = {
            "seconds": summary(seconds),
            "rows_per_s": rows / statistics.median(seconds),
            "differ_from_sklearn": int((labels.astype(int) != expected).sum()),
        }
        say(f"bare ONNX predict: {rows / statistics.median(seconds):,.0f} rows/s")
    else:
        found["bare_onnx"] = {"failed": done.stderr[-1000:]}

    why_not = loopml_command_ready(setup.loopml_bin, "predict")
    if why_not:
        found["loopml_predict"] = {"not_run": why_not}
        say(f"loopml predict not run: {why_not}")
        return found
    small = setup.root / "batch-1000.parquet"
    frame.head(1000).to_parquet(small)
    onnx = ["--runtime", "onnx"]
    variants: list[tuple[str, Path, list[str], np.ndarray]] = [
        ("loopml_predict", source, [], expected),
        ("loopml_predict_no_log", source, ["--no-log"], expected),
        ("loopml_predict_1000_rows", small, [], expected[:1000]),
        ("loopml_predict_onnx", source, onnx, expected),
        ("loopml_predict_onnx_no_log", source, [*onnx, "--no-log"], expected),
        ("loopml_predict_onnx_1000_rows", small, onnx, expected[:1000]),
    ]
    big_rows = args.batch_big_rows
    if big_rows:
        # The 1,000,000 rows repeated: the same values, so the same labels, without
        # another model.predict over millions of rows here.
        cycle = np.arange(big_rows) % rows
        big = setup.root / "batch-big.parquet"
        frame.iloc[cycle].reset_index(drop=True).to_parquet(big)
        found["big_rows"] = big_rows
        found["big_input_bytes"] = big.stat().st_size
        expected_big = expected[cycle]
        variants += [
            ("loopml_predict_big", big, [], expected_big),
            ("loopml_predict_big_no_log", big, ["--no-log"], expected_big),
        ]
    for repeat in range(args.batch_repeats):
        for key, path, extra, wanted in variants:
            run = run_predict(setup, path, extra, wanted, repeat)
            entry = found.setdefault(key, {"command": run.pop("command"), "runs": []})
            entry["runs"].append(run)
            if "failed" in run:
                say(f"loopml predict {' '.join(extra)} FAILED: {run['failed']}")
                return found
            say(
                f"loopml predict {path.name} {' '.join(extra)}: {run['seconds']:.2f} s, "
                f"{run['rows_out'] / run['seconds']:,.0f} rows/s, "
                f"{run['cpu_seconds']:.1f} CPU-s, {run['max_rss_bytes'] / 2**20:,.0f} MiB peak, "
                f"differ {run['differ_from_sklearn']}"
            )
    for key, _path, _, wanted in variants:
        seconds = [r["seconds"] for r in found[key]["runs"]]
        found[key]["seconds"] = summary(seconds)
        found[key]["cpu_seconds"] = summary([r["cpu_seconds"] for r in found[key]["runs"]])
        found[key]["max_rss_bytes"] = max(r["max_rss_bytes"] for r in found[key]["runs"])
        found[key]["rows_per_s"] = len(wanted) / statistics.median(seconds)
    # Rows/s once the command is running: the 1,000-row run's time (and CPU) taken off.
    for runtime, keys in (
        ("", ("loopml_predict", "loopml_predict_no_log", "loopml_predict_big",
              "loopml_predict_big_no_log")),
        ("_onnx", ("loopml_predict_onnx", "loopml_predict_onnx_no_log")),
    ):  # fmt: skip
        fixed = found[f"loopml_predict{runtime}_1000_rows"]
        for key in keys:
            if key not in found:
                continue
            entry = found[key]
            scored = entry["runs"][0]["rows_out"]
            entry["rows_per_s_without_fixed_cost"] = scored / (
                entry["seconds"]["median"] - fixed["seconds"]["median"]
            )
            entry["cpu_s_per_million_rows_without_fixed_cost"] = (
                1e6 * (entry["cpu_seconds"]["median"] - fixed["cpu_seconds"]["median"]) / scored
            )
    for key in ("loopml_predict", "loopml_predict_no_log", "loopml_predict_big",
                "loopml_predict_big_no_log"):  # fmt: skip
        if key in found:
            entry = found[key]
            say(
                f"{key}: whole command {entry['rows_per_s']:,.0f} rows/s; without the fixed "
                f"cost {entry['rows_per_s_without_fixed_cost']:,.0f} rows/s, "
                f"{entry['cpu_s_per_million_rows_without_fixed_cost']:.2f} CPU-s per million rows"
            )
    return found


def run_predict(
    setup: Setup, source: Path, extra: list[str], expected: np.ndarray, repeat: int
) -> dict[str, Any]:
    """One `loopml predict` process, timed from start to exit (wall, CPU, peak memory)."""
    output = setup.root / f"scored-{repeat}.parquet"
    command = [
        str(setup.loopml_bin),
        "predict",
        f"models:/{MODEL}@production",
        "--input",
        str(source),
        "--output",
        str(output),
        *extra,
    ]
    load_before = os.getloadavg()[0]
    shown = " ".join(["loopml", *command[1:]])
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=child_env({"LOOPML_HOME": str(setup.loopml_home)}),
            cwd=setup.root,
        )
        # os.wait4: this process's own CPU. Its peak memory from /proc while it runs:
        # rusage's counts the benchmark's own memory, which the child shares until exec.
        deadline = started + 1800
        peak = 0
        while True:
            peak = max(peak, proc_status("VmHWM", process.pid))
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid or time.perf_counter() > deadline:
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        if not pid:
            process.kill()
            process.wait()
            return {"command": shown, "failed": "still running after 1800 s"}
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    if process.returncode != 0:
        return {"command": shown, "failed": f"exit {process.returncode}: {errors[-1500:]}"}
    scored = pd.read_parquet(output)
    output.unlink()
    column = next((c for c in ("prediction", "predictions", "label") if c in scored), None)
    differ = int((scored[column].astype(int).to_numpy() != expected).sum()) if column else None
    return {
        "command": shown,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "max_rss_bytes": peak,
        "rows_out": len(scored),
        "columns": list(scored.columns),
        "differ_from_sklearn": differ,
        "load_1m_before": load_before,
        "load_1m_after": os.getloadavg()[0],
    }


def summarize(serve: dict[str, Any], batch: dict[str, Any] | None) -> dict[str, Any]:
    """Ratios and targets from the medians."""
    ratios: dict[str, Any] = {}
    targets: dict[str, Any] = {}

    def median(name: str, key: str, metric: str) -> float | None:
        entry = serve.get(name, {}).get(key)
        return entry[metric]["median"] if isinstance(entry, dict) and metric in entry else None

    for workers in (1, 2):
        ours, theirs = f"loopml-w{workers}", f"mlflow-w{workers}"
        for key in ("single", "rows100"):
            a, b = median(ours, key, "rps"), median(theirs, key, "rps")
            if a and b:
                ratios[f"{key}_rps_w{workers}_vs_mlflow"] = a / b
            a, b = median(ours, key, "p99_ms"), median(theirs, key, "p99_ms")
            if a and b:
                ratios[f"{key}_p99_w{workers}_vs_mlflow"] = a / b
            base, nolog = median(ours, key, "rps"), median(f"{ours}-nolog", key, "rps")
            if base and nolog:
                ratios[f"{key}_logging_overhead_w{workers}"] = 1 - base / nolog
            nobatch = median(f"{ours}-nobatch", key, "rps")
            if base and nobatch:
                ratios[f"{key}_batching_speedup_w{workers}"] = base / nobatch
        onnx = median("loopml-w1-onnx", "single", "rps")
        if workers == 1 and onnx and median(ours, "single", "rps"):
            ratios["single_onnx_vs_pickle_w1"] = onnx / median(ours, "single", "rps")
        if f"single_rps_w{workers}_vs_mlflow" in ratios:
            got = ratios[f"single_rps_w{workers}_vs_mlflow"]
            need = TARGETS["throughput_single_vs_mlflow_min"]
            targets[f"single_rps_vs_mlflow_w{workers}"] = {
                "need": f">= {need}x",
                "got": got,
                "met": got >= need,
            }
        if f"single_p99_w{workers}_vs_mlflow" in ratios:
            got = ratios[f"single_p99_w{workers}_vs_mlflow"]
            need = TARGETS["p99_single_vs_mlflow_max"]
            targets[f"single_p99_vs_mlflow_w{workers}"] = {
                "need": f"<= {need} of MLflow's",
                "got": got,
                "met": got <= need,
            }
        if f"single_logging_overhead_w{workers}" in ratios:
            got = ratios[f"single_logging_overhead_w{workers}"]
            need = TARGETS["logging_overhead_max"]
            targets[f"logging_overhead_single_w{workers}"] = {
                "need": f"<= {need:.0%}",
                "got": got,
                "met": got <= need,
            }
    loopml_runs = {n: e for n, e in serve.items() if e.get("tool") == "loopml"}
    if loopml_runs:
        errors = sum(
            e[key].get("errors_total", 0)
            for e in loopml_runs.values()
            for key in ("single", "rows100")
            if isinstance(e.get(key), dict)
        )
        failures = sum(len(e.get("failures", [])) for e in loopml_runs.values())
        targets["loopml_errors"] = {
            "need": 0,
            "got": errors + failures,
            "met": errors + failures == 0,
        }
    for name in ("loopml-w1", "loopml-w2"):
        ready = serve.get(name, {}).get("ready_s")
        if isinstance(ready, dict):
            targets[f"ready_s_{name}"] = {
                "need": f"< {TARGETS['ready_s_max']} s",
                "got": ready["median"],
                "met": ready["median"] < TARGETS["ready_s_max"],
            }
    ready_ours = serve.get("loopml-w1", {}).get("ready_s")
    ready_theirs = serve.get("mlflow-w1", {}).get("ready_s")
    if isinstance(ready_ours, dict) and isinstance(ready_theirs, dict):
        ratios["ready_w1_mlflow_over_loopml"] = ready_theirs["median"] / ready_ours["median"]
    scoring = batch or {}
    whole = scoring.get("loopml_predict", {})
    judged_key = "loopml_predict_big" if "loopml_predict_big" in scoring else "loopml_predict"
    steady = scoring.get(judged_key, {})
    if "rows_per_s_without_fixed_cost" in steady:
        got = steady["rows_per_s_without_fixed_cost"]
        rows = scoring.get("big_rows" if judged_key.endswith("_big") else "rows", 0)
        targets["batch_rows_per_s"] = {
            "need": f">= {TARGETS['batch_rows_per_s_min']:,}",
            "got": got,
            "met": got >= TARGETS["batch_rows_per_s_min"],
            "judged": f"the steady scoring rate: loopml predict (pickle, logged) on {rows:,} "
            "rows, rows/s without the fixed start-up cost (the 1,000-row run's time)",
            "whole_command_rows": scoring.get("rows"),
            "whole_command_rows_per_s": whole.get("rows_per_s"),
            "whole_command_rows_per_s_without_fixed_cost": whole.get(
                "rows_per_s_without_fixed_cost"
            ),
        }
        for bare in (
            "bare_sklearn_1_thread",
            "bare_sklearn_2_thread",
            "bare_sklearn_2_threads_chunked",
            "bare_onnx",
        ):
            if "rows_per_s" in scoring.get(bare, {}):
                ratios[f"batch_vs_{bare}"] = whole["rows_per_s"] / scoring[bare]["rows_per_s"]
                ratios[f"batch_steady_vs_{bare}"] = got / scoring[bare]["rows_per_s"]
    return {"ratios": ratios, "targets": targets}


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that `finally` blocks stop the servers."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_loopml-setup":
        loopml_setup(Path(sys.argv[2]))
        return
    if len(sys.argv) > 3 and sys.argv[1] == "_bare-onnx":
        loopml_bare_onnx(Path(sys.argv[2]), int(sys.argv[3]))
        return
    default_loopml = ROOT / ".venv" / "bin" / "python"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 repeat, 100k rows")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run (20)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before each (2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--repeats", type=int, default=None, help="(3; --quick 1)")
    parser.add_argument(
        "--configs",
        default=",".join(c.name for c in CONFIGS),
        help="comma-separated configurations",
    )
    parser.add_argument("--only", choices=["serve", "batch"], default=None)
    parser.add_argument("--batch-rows", type=int, default=None, help="(1,000,000; --quick 100k)")
    parser.add_argument("--batch-repeats", type=int, default=None, help="(3; --quick 1)")
    parser.add_argument(
        "--batch-big-rows",
        type=int,
        default=None,
        help="rows of the bigger file the steady scoring rate is judged on (5,000,000; "
        "--quick 500k; 0: none, judge the --batch-rows file)",
    )
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument(
        "--loopml-python",
        default=str(default_loopml if default_loopml.exists() else sys.executable),
        help="the Python of loopml's environment (with the onnx extra)",
    )
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.batch_rows = args.batch_rows or (100_000 if args.quick else 1_000_000)
    args.batch_repeats = args.batch_repeats or (1 if args.quick else 3)
    if args.batch_big_rows is None:
        args.batch_big_rows = 500_000 if args.quick else 5_000_000
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: bash benchmarks/setup.sh (or apt-get install -y wrk)")
    wanted = args.configs.split(",")
    unknown = sorted(set(wanted) - {c.name for c in CONFIGS})
    if unknown:
        raise SystemExit(f"unknown configurations: {', '.join(unknown)}")
    configs = [c for c in CONFIGS if c.name in wanted]

    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()
    run_started = time.time()
    source_before = newest_source()
    started = time.perf_counter()
    model, _ = make_model()
    traffic = make_data(3_000, seed=3)
    check_rows = traffic.iloc[2000:2200].reset_index(drop=True)
    expected = model.predict(check_rows)
    model.predict(traffic.head(1))
    single = []
    for i in range(200):
        t = time.perf_counter()
        model.predict(traffic.iloc[i : i + 1])
        single.append(time.perf_counter() - t)
    bare_single_ms = 1000 * statistics.median(single)
    say(f"model fitted; bare in-process predict of one row: {bare_single_ms:.2f} ms")

    folder = Path(tempfile.mkdtemp(prefix="loopml-serving-"))
    result: dict[str, Any] = {"benchmark": "serving", "date": date}
    try:
        with terminate_as_exit():
            setup = prepare(folder, args, model, traffic)
            loopml_side: dict[str, Any] = {"python": str(setup.loopml_python)}
            why_not = loopml_command_ready(setup.loopml_bin, "serve")
            done = subprocess.run(
                [str(setup.loopml_python), __file__, "_loopml-setup", str(folder)],
                capture_output=True,
                text=True,
                env=child_env({"LOOPML_HOME": str(setup.loopml_home)}),
                timeout=600,
            )
            if done.returncode != 0:
                raise SystemExit(f"loopml setup failed:\n{done.stderr[-3000:]}")
            (folder / "loopml-setup.json").write_text(done.stdout.strip().splitlines()[-1])
            info = json.loads(done.stdout.strip().splitlines()[-1])
            if info["pickle_labels"][:200] != [int(x) for x in model.predict(traffic.head(200))]:
                raise SystemExit("loopml's registered model predicts differently in-process")
            loopml_side.update(
                {k: v for k, v in info.items() if k not in ("pickle_labels", "onnx_labels")}
            )
            loopml_side["onnx_vs_pickle_differ_on_2000_rows"] = sum(
                int(a != b) for a, b in zip(info["pickle_labels"], info["onnx_labels"], strict=True)
            )
            say(f"loopml: {MODEL} v{info['version']} registered; ONNX: {info['onnx_parity']}")
            if why_not:
                loopml_side["serve_not_run"] = why_not
                say(f"loopml serve not available, skipping its configurations: {why_not}")
                configs = [c for c in configs if c.tool != "loopml"]

            serve: dict[str, Any] = {}
            if args.only in (None, "serve"):
                serve = serve_configs(setup, configs, args, check_rows, expected)
            batch = None
            if args.only in (None, "batch"):
                batch = batch_scoring(setup, args, model, args.batch_rows)
            result.update(
                {
                    "machine": {
                        "platform": platform.platform(),
                        "cpus": os.cpu_count(),
                        "load_start": load_start,
                        "load_end": os.getloadavg(),
                    },
                    "versions": _versions(
                        ("loopml", "mlflow", "scikit-learn", "numpy", "pandas", "uvicorn")
                    ),
                    "wrk": subprocess.run(
                        ["wrk", "--version"], capture_output=True, text=True
                    ).stdout.splitlines()[0],
                    "loopml_source": {
                        "commit": source_commit(),
                        # git is not run: the newest file under src/loopml tells whether
                        # the sources changed while the benchmark ran.
                        "newest_file_at_start": {
                            "path": source_before[1],
                            "utc": time.strftime(
                                "%Y-%m-%d %H:%M:%S", time.gmtime(source_before[0])
                            ),
                        },
                        "changed_during_run": newest_source()[0] > run_started,
                    },
                    "loopml_side": loopml_side,
                    "settings": {
                        "duration_s": args.duration,
                        "warmup_s": args.warmup,
                        "connections": args.connections,
                        "wrk_threads": args.threads,
                        "repeats": args.repeats,
                        "batching_flags": BATCH_FLAGS,
                        "model": "RandomForestClassifier(n_estimators=50, random_state=0), "
                        "10,000 rows x 20 features",
                    },
                    "bare_single_row_predict_ms": bare_single_ms,
                    "serve": serve,
                    "batch": batch,
                    **summarize(serve, batch),
                    "wall_s": time.perf_counter() - started,
                }
            )
    finally:
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for name, target in result.get("targets", {}).items():
        verdict = "PASS" if target["met"] else "FAIL"
        say(f"{verdict} {name}: {target['got']} (need {target['need']})")
        if name == "batch_rows_per_s":
            say(
                f"  judged: {target['judged']}; not judged: the whole command on "
                f"{target['whole_command_rows']:,} rows {target['whole_command_rows_per_s']:,.0f}"
                f" rows/s, without the fixed cost "
                f"{target['whole_command_rows_per_s_without_fixed_cost']:,.0f} rows/s"
            )
    line = json.dumps(result)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
