"""What a worker does with one step: retries, backoff, timeout, captured logs, and the
tracking runs it starts. Not public: :mod:`loopml.pipelines.executors` runs it.

A worker gets a step and its argument values and returns an :class:`Outcome` (the
value, or the error and traceback, with the captured logs and the tracking runs the
step started). It never writes pipeline state: the driver does. A step that takes
``ws`` opens the workspace in its worker (same settings), which on a Ray cluster means
the metadata store and the artifact store must be shared ones (PostgreSQL, S3).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopml._time import now_ms
from loopml.errors import ConfigError
from loopml.pipelines.records import StepWaiting

if TYPE_CHECKING:
    from loopml.config import Settings
    from loopml.pipelines.step import Step
    from loopml.workspace import Workspace

__all__ = ["Outcome", "StepTask", "StepTimeoutError", "dumps", "execute", "execute_pickled"]

_LOG_LIMIT = 200_000  # characters of captured output kept per step


class StepTimeoutError(TimeoutError):
    """An attempt of a step took longer than its timeout."""


@dataclass
class StepTask:
    """One step to execute with its arguments' values."""

    run_id: str
    node: str
    step: Step
    arguments: dict[str, Any]
    settings: Settings | None = None


@dataclass
class Outcome:
    """What a worker hands back for one step."""

    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    logs: str = ""
    attempts: int = 0
    waiting: bool = False  # the step raised StepWaiting: ``error`` says for what
    tracking_runs: list[str] = field(default_factory=list)
    started_at: int = 0
    ended_at: int = 0


def execute(task: StepTask, ws: Workspace | None = None) -> Outcome:
    """Runs one step with retries, backoff and the timeout; never raises."""
    step = task.step
    started = now_ms()
    logs = io.StringIO()
    tracking: list[str] = []
    arguments = dict(task.arguments)
    outcome = Outcome(ok=False, started_at=started)
    try:
        with contextlib.ExitStack() as stack:
            if step.wants_workspace and "ws" not in arguments:
                if ws is None:
                    if task.settings is None:
                        raise ConfigError(f"Step {task.node!r} takes ws, but no workspace.")
                    ws = _worker_workspace(task.settings)
                arguments["ws"] = ws
            if ws is not None:
                stack.enter_context(_tracked_runs(ws, task, tracking))
            stack.enter_context(_captured(logs))
            for attempt in range(1, step.retries + 2):
                outcome.attempts = attempt
                try:
                    outcome.value = _call(step, arguments, step.timeout)
                    outcome.ok = True
                    outcome.error = outcome.traceback = None
                    break
                except StepWaiting as waiting:  # a retry cannot bring what it waits for
                    outcome.waiting, outcome.error = True, str(waiting)
                    break
                except Exception as error:
                    outcome.error = f"{type(error).__name__}: {error}"
                    outcome.traceback = traceback.format_exc()
                    if attempt <= step.retries:
                        wait = step.backoff * 2 ** (attempt - 1)
                        print(
                            f"[loopml] attempt {attempt} of step {task.node!r} failed "
                            f"({outcome.error}); retrying in {wait:g}s",
                            file=sys.stderr,
                        )
                        time.sleep(wait)
    except Exception as error:  # the workspace or the capture could not be set up
        outcome.error = f"{type(error).__name__}: {error}"
        outcome.traceback = traceback.format_exc()
    outcome.logs = logs.getvalue()[-_LOG_LIMIT:]
    outcome.tracking_runs = tracking
    outcome.ended_at = now_ms()
    return outcome


def _call(step: Step, arguments: dict[str, Any], timeout: float | None) -> Any:
    if timeout is None:
        return step.function(**arguments)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        # SIGALRM interrupts the step's own code, so the worker is free again afterwards.
        def expire(signum: int, frame: Any) -> None:
            raise StepTimeoutError(f"step {step.name!r} took longer than {timeout:g}s")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return step.function(**arguments)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    # Not the main thread: wait for a helper thread, abandoning it on timeout.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = step.function(**arguments)
        except BaseException as error:
            box["error"] = error

    context = contextvars.copy_context()  # the step's tracking context goes along
    thread = threading.Thread(
        target=context.run, args=(target,), daemon=True, name=f"loopml-step-{step.name}"
    )
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise StepTimeoutError(f"step {step.name!r} took longer than {timeout:g}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


_BUFFER: contextvars.ContextVar[io.StringIO | None] = contextvars.ContextVar(
    "loopml_step_output", default=None
)


class _StepStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr while steps run: text written in a step's
    context goes to that step's buffer, everything else to the stream it replaced. One
    stand-in serves steps in any number of threads (``redirect_stdout`` would not:
    each thread's restore would undo the others')."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def write(self, text: str) -> int:
        buffer = _BUFFER.get()
        if buffer is not None:
            return buffer.write(text)
        written: int = self.target.write(text)
        return written

    def flush(self) -> None:
        if _BUFFER.get() is None:
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class _LogCapture(logging.Handler):
    """Copies log records emitted in a step's context into its buffer."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _BUFFER.get()
        if buffer is not None:
            with contextlib.suppress(Exception):
                buffer.write(self.format(record) + "\n")


_CAPTURE_LOCK = threading.Lock()
_CAPTURING = 0
_HANDLER = _LogCapture()


@contextlib.contextmanager
def _captured(stream: io.StringIO) -> Iterator[None]:
    global _CAPTURING
    with _CAPTURE_LOCK:
        if _CAPTURING == 0:
            logging.getLogger().addHandler(_HANDLER)
        _CAPTURING += 1
        if not isinstance(sys.stdout, _StepStream):
            sys.stdout = _StepStream(sys.stdout)
        if not isinstance(sys.stderr, _StepStream):
            sys.stderr = _StepStream(sys.stderr)
    token = _BUFFER.set(stream)
    try:
        yield
    finally:
        _BUFFER.reset(token)
        with _CAPTURE_LOCK:
            _CAPTURING -= 1
            if _CAPTURING == 0:
                logging.getLogger().removeHandler(_HANDLER)
                if isinstance(sys.stdout, _StepStream):
                    sys.stdout = sys.stdout.target
                if isinstance(sys.stderr, _StepStream):
                    sys.stderr = sys.stderr.target


_STEP: contextvars.ContextVar[tuple[StepTask, list[str]] | None] = contextvars.ContextVar(
    "loopml_pipeline_step", default=None
)


@contextlib.contextmanager
def _tracked_runs(ws: Workspace, task: StepTask, found: list[str]) -> Iterator[None]:
    """Tags and records every tracking run the step starts (``ws.start_run``, and so
    ``ws.train``/``ws.tune``), so lineage can lead from a model version to this step.

    The workspace gets one wrapper of ``start_run`` for good; which step is running is
    a context variable, so steps in several threads of one process stay apart.
    """
    current = ws.__dict__.get("start_run")
    if not getattr(current, "_loopml_step_tracking", False):
        original = ws.start_run

        def start_run(*args: Any, **kwargs: Any) -> Any:
            active = _STEP.get()
            if active is None:
                return original(*args, **kwargs)
            step_task, runs = active
            tags = dict(kwargs.pop("tags", None) or {})
            tags.setdefault("loopml.pipeline_run", step_task.run_id)
            tags.setdefault("loopml.pipeline_step", step_task.node)
            kwargs["tags"] = tags
            run = original(*args, **kwargs)
            runs.append(run.id)
            return run

        start_run._loopml_step_tracking = True  # type: ignore[attr-defined]
        ws.start_run = start_run  # type: ignore[method-assign]
    token = _STEP.set((task, found))
    try:
        yield
    finally:
        _STEP.reset(token)


_WORKSPACES: dict[tuple[str, str], Workspace] = {}


def _worker_workspace(settings: Settings) -> Workspace:
    key = (settings.db_url, settings.artifacts_url)
    found = _WORKSPACES.get(key)
    if found is None:
        from loopml.workspace import Workspace

        found = Workspace(settings)
        found.connect()
        _WORKSPACES[key] = found
    return found


def execute_pickled(payload: bytes, sys_path: list[str]) -> bytes:
    """The worker's entry point: bytes in, bytes out (cloudpickle both ways), so steps
    defined in test files or inside functions reach processes and Ray workers."""
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        task = pickle.loads(payload)  # what cloudpickle writes, plain pickle reads
    except Exception as error:
        return dumps(
            Outcome(
                ok=False,
                error=f"{type(error).__name__}: {error} (the worker cannot load the step; "
                "define it at module level in an importable module)",
                traceback=traceback.format_exc(),
            )
        )
    outcome = execute(task)
    try:
        return dumps(outcome)
    except Exception as error:
        return dumps(
            Outcome(
                ok=False,
                error=f"the output of step {task.node!r} cannot be pickled: {error}",
                logs=outcome.logs,
                attempts=outcome.attempts,
                tracking_runs=outcome.tracking_runs,
                started_at=outcome.started_at,
                ended_at=outcome.ended_at,
            )
        )


def dumps(value: Any) -> bytes:
    """Pickles by value what cannot be imported by name (functions and classes defined
    in ``__main__`` or inside functions): cloudpickle, or the copy joblib ships."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - joblib's vendored copy
        from joblib.externals import cloudpickle
    data: bytes = cloudpickle.dumps(value)
    return data
