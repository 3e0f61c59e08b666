"""The driver of one pipeline run: caching, reuse, execution, tracking, the heartbeat.

Not public: :mod:`loopml.pipelines.runner` (``run_pipeline``, ``resume``) is the
interface. The driver process owns a run: it decides which steps run (a cache hit, an
output reused by ``resume``, or an execution on the executor), writes every state
change to the store, and beats a heartbeat while it lives.

A step that raises :class:`~loopml.pipelines.records.StepWaiting` ends WAITING; the steps
that depend on it stay PENDING while the others run on, and the run ends WAITING (FAILED
if a step failed) with the step's message as its error.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from loopml._identity import current_user
from loopml._time import now_ms
from loopml.pipelines._types import input_type_error
from loopml.pipelines.dag import Graph, Node, Pipeline, canonical_json
from loopml.pipelines.executors import Executor, Outcome, StepTask, make_executor
from loopml.pipelines.outputs import load_output, output_exists, store_output
from loopml.pipelines.records import PipelineRun, StepRun
from loopml.store.repositories.pipelines import PipelineRepository

if TYPE_CHECKING:
    from loopml.workspace import Workspace

__all__ = ["DONE", "HOST", "Driver", "OnUpdate", "heartbeat_seconds", "repository"]

OnUpdate = Callable[[str, str, dict[str, Any]], None]
"""Called as ``on_update(step, status, detail)`` after each state change of a step."""

DONE = ("SUCCEEDED", "CACHED")
HOST = socket.gethostname()


def heartbeat_seconds() -> float:
    """How often a running pipeline beats (``LOOPML_PIPELINE_HEARTBEAT``, 5 s); a run
    silent for six beats is declared dead."""
    try:
        return max(0.05, float(os.environ.get("LOOPML_PIPELINE_HEARTBEAT", "5")))
    except ValueError:
        return 5.0


def repository(ws: Workspace) -> PipelineRepository:
    return PipelineRepository(ws.db)  # holds only the database: free to make


class Driver:
    def __init__(
        self,
        ws: Workspace,
        pipeline: Pipeline,
        graph: Graph,
        params: dict[str, Any],
        executor: str,
        cache: bool,
        workers: int | None,
        on_update: OnUpdate | None,
        reuse: Mapping[str, StepRun] | None = None,
    ) -> None:
        self.ws = ws
        self.pipeline = pipeline
        self.graph = graph
        self.params = params
        self.executor_name = executor
        self.cache = cache
        self.workers = workers
        self.on_update = on_update
        self.reuse = dict(reuse or {})
        self.repository = repository(ws)
        self.run_id = uuid.uuid4().hex
        self.status: dict[str, str] = {n.name: "PENDING" for n in graph.nodes}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()

    # -- the run ------------------------------------------------------------------
    def run(
        self, reason: str | None, trigger: str | None, resumed_from: str | None = None
    ) -> PipelineRun:
        started = now_ms()
        self.repository.create_run(
            {
                "run_id": self.run_id,
                "pipeline": self.pipeline.name,
                "target": self.pipeline.target,
                "status": "RUNNING",
                "executor": self.executor_name,
                "params": self.params,
                "graph": self.graph.to_dict(),
                "reason": reason,
                "trigger": trigger,
                "resumed_from": resumed_from,
                "user": current_user(),
                "error": None,
                "owner": f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                "heartbeat_at": started,
                "started_at": started,
                "ended_at": None,
            },
            [
                {
                    "run_id": self.run_id,
                    "step": node.name,
                    "function": node.step.qualified_name,
                    "status": "PENDING",
                    "params": node.params,
                    "inputs": node.inputs,
                }
                for node in self.graph.nodes
            ],
        )
        beat = threading.Thread(target=self._beat, daemon=True, name="loopml-pipeline-heartbeat")
        beat.start()
        executor: Executor | None = None
        error: str | None = None
        try:
            executor = make_executor(self.executor_name, self.ws, self.workers)
            self._loop(executor)
        except BaseException as failure:
            error = f"the pipeline driver stopped: {type(failure).__name__}: {failure}"
            self._abandon(error)
            raise
        finally:
            self._stop.set()
            if executor is not None:
                executor.close()
            if error is not None:
                self.repository.finish_run(self.run_id, "FAILED", error)
        status, message = self._verdict()
        self.repository.finish_run(self.run_id, status, message)
        result = self._result() if status == "SUCCEEDED" else None
        record = self.repository.get_run(self.run_id)
        assert record is not None
        return PipelineRun.from_record(record, result)

    def _verdict(self) -> tuple[str, str | None]:
        """The run's status and error once no step can run any more."""
        failed = [n for n, s in self.status.items() if s == "FAILED"]
        held = [n for n, s in self.status.items() if s == "WAITING"]
        if failed:
            reasons = [f"step {n!r} failed: {self.errors.get(n, '?')}" for n in failed]
            reasons += [f"step {n!r} is waiting: {self.errors.get(n, '?')}" for n in held]
            return "FAILED", "; ".join(reasons)
        if held:  # the steps' own words: they say what the run waits for
            return "WAITING", "; ".join(self.errors.get(n, "?") for n in held)
        return "SUCCEEDED", None

    def _loop(self, executor: Executor) -> None:
        waiting = list(self.graph.nodes)
        held: set[str] = set()  # behind a WAITING step: PENDING until the run is resumed
        running: set[str] = set()
        while waiting or running:
            for node in list(waiting):
                states = [self.status[p] for p in node.upstream]
                if any(s in ("FAILED", "SKIPPED") for s in states):
                    waiting.remove(node)
                    bad = [p for p in node.upstream if self.status[p] in ("FAILED", "SKIPPED")]
                    self._set(node.name, "SKIPPED", {"error": f"upstream {bad[0]!r} did not run"})
                    continue
                if any(self.status[p] == "WAITING" or p in held for p in node.upstream):
                    # Decided once no other parent may still fail (which would skip it).
                    if all(self.status[p] != "RUNNING" for p in node.upstream) and not any(
                        p not in held and self.status[p] == "PENDING" for p in node.upstream
                    ):
                        waiting.remove(node)
                        held.add(node.name)
                    continue
                if not all(s in DONE for s in states) or len(running) >= executor.capacity:
                    continue
                waiting.remove(node)
                if self._reuse_or_cache(node):
                    continue
                if self._start(node, executor):
                    running.add(node.name)
            if running:
                finished = executor.next(timeout=0.5)
                if finished is not None:
                    name, outcome = finished
                    running.discard(name)
                    self._finish(self.graph.by_name[name], outcome)

    def _reuse_or_cache(self, node: Node) -> bool:
        reused = self.reuse.get(node.name)
        key, inputs = self._key(node)
        if reused is not None and reused.outputs is not None:
            self.outputs[node.name] = reused.outputs
            self._set(
                node.name,
                "CACHED",
                {
                    "cache_key": key,
                    "code_hash": node.step.code_hash,
                    "cached_from": reused.step_run_id,
                    "outputs": reused.outputs,
                    "inputs": inputs,
                    "started_at": now_ms(),
                    "ended_at": now_ms(),
                },
            )
            return True
        if not (self.cache and node.step.cache):
            return False
        found = self.repository.cached(key)
        if found is None or not output_exists(self.ws, found.outputs):
            return False
        assert found.outputs is not None
        self.outputs[node.name] = found.outputs
        self._set(
            node.name,
            "CACHED",
            {
                "cache_key": key,
                "code_hash": node.step.code_hash,
                "cached_from": found.step_run_id,
                "outputs": found.outputs,
                "inputs": inputs,
                "started_at": now_ms(),
                "ended_at": now_ms(),
            },
        )
        return True

    def _key(self, node: Node) -> tuple[str, dict[str, Any]]:
        """The cache key: the step's code hash, its params and its inputs' content hashes."""
        inputs = {
            argument: {"step": parent, "sha256": self.outputs[parent]["sha256"]}
            for argument, parent in node.inputs.items()
        }
        material = {
            "code": node.step.code_hash,
            "params": node.params,
            "inputs": {a: i["sha256"] for a, i in inputs.items()},
        }
        return hashlib.sha256(canonical_json(material).encode()).hexdigest(), inputs

    def _start(self, node: Node, executor: Executor) -> bool:
        """Submits the node; False when its inputs do not fit its hints (failed).

        The local executor has finished the step when this returns.
        """
        key, inputs = self._key(node)
        arguments = dict(node.params)
        for argument, parent in node.inputs.items():
            if parent not in self.values:
                self.values[parent] = load_output(self.ws, self.outputs[parent])
            arguments[argument] = self.values[parent]
            # Hints missing on the producer pass the trace-time check: check the value.
            mismatch = input_type_error(parent, node, argument, self.values[parent])
            if mismatch is not None:
                now = now_ms()
                self.errors[node.name] = f"TypeError: {mismatch}"
                self._set(
                    node.name,
                    "FAILED",
                    {
                        "cache_key": key,
                        "inputs": inputs,
                        "error": self.errors[node.name],
                        "started_at": now,
                        "ended_at": now,
                    },
                )
                return False
        self._set(
            node.name,
            "RUNNING",
            {
                "cache_key": key,
                "code_hash": node.step.code_hash,
                "inputs": inputs,
                "started_at": now_ms(),
            },
        )
        settings = self.ws.settings if node.step.wants_workspace else None
        executor.submit(StepTask(self.run_id, node.name, node.step, arguments, settings))
        return True

    def _finish(self, node: Node, outcome: Outcome) -> None:
        detail: dict[str, Any] = {
            "attempts": outcome.attempts,
            "logs": outcome.logs or None,
            "tracking_runs": outcome.tracking_runs,
            "ended_at": outcome.ended_at or now_ms(),
        }
        if outcome.ok:
            try:
                descriptor = store_output(self.ws, outcome.value)
            except Exception as error:
                outcome.ok = False
                outcome.error = f"storing the output failed: {type(error).__name__}: {error}"
            else:
                self.outputs[node.name] = descriptor
                self.values[node.name] = outcome.value
                self._set(node.name, "SUCCEEDED", {**detail, "outputs": descriptor})
                return
        self.errors[node.name] = outcome.error or "unknown error"
        if outcome.waiting:
            self._set(node.name, "WAITING", {**detail, "error": outcome.error})
            return
        self._set(
            node.name,
            "FAILED",
            {**detail, "error": outcome.error, "traceback": outcome.traceback},
        )

    def _set(self, name: str, status: str, values: dict[str, Any]) -> None:
        self.status[name] = status
        self.repository.update_step(self.run_id, name, {"status": status, **values})
        if self.on_update is not None:
            self.on_update(name, status, values)

    def _abandon(self, error: str) -> None:
        for name, status in self.status.items():
            if status in ("PENDING", "RUNNING"):
                becomes = "FAILED" if status == "RUNNING" else "SKIPPED"
                self.status[name] = becomes
                self.repository.update_step(
                    self.run_id, name, {"status": becomes, "error": error, "ended_at": now_ms()}
                )

    def _beat(self) -> None:
        interval = heartbeat_seconds()
        while not self._stop.wait(interval):
            try:
                self.repository.heartbeat(self.run_id)
            except Exception:  # a busy database: the next beat tries again
                continue

    def _result(self) -> Any:
        def resolve(value: Any) -> Any:
            if isinstance(value, dict) and set(value) == {"$step"}:
                node = value["$step"]
                if node not in self.values:
                    self.values[node] = load_output(self.ws, self.outputs[node])
                return self.values[node]
            if isinstance(value, dict):
                return {k: resolve(v) for k, v in value.items()}
            if isinstance(value, list):
                return [resolve(v) for v in value]
            return value

        return resolve(self.graph.result)
