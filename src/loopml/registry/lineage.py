"""Lineage of a model version: what an auditor asks when they ask "where did this come from?".

Built from the store on demand (nothing is copied at registration): the version, its
run (params, metrics, code version, environment), the dataset versions the run read
(with their sources, contracts and validation policy), the evaluations and gates of the
run's model, the alias moves that involved the version, the pipeline run (and step) that
started the run, if any, and recursively the version it was retrained from.
``to_tree()`` renders it for the terminal, ``to_dict()`` as JSON and ``to_dot()`` for
Graphviz.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from rich.tree import Tree

    from loopml.registry.registry import ModelVersion
    from loopml.workspace import Workspace

__all__ = ["Lineage", "build_lineage"]

_MAX_PARENTS = 20  # a retraining chain longer than this is cut (and says so)


@dataclass
class Lineage:
    model: dict[str, Any]
    run: dict[str, Any]
    code: dict[str, Any] | None
    environment: dict[str, Any]
    datasets: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    parent: Lineage | None = None
    pipeline: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "run": self.run,
            "code": self.code,
            "environment": self.environment,
            "datasets": self.datasets,
            "evaluations": self.evaluations,
            "gates": self.gates,
            "events": self.events,
            "pipeline": self.pipeline,
            "parent": self.parent.to_dict() if self.parent else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_tree(self) -> Tree:
        """A Rich tree: print it with ``rich.print`` or ``console.print``."""
        from rich.markup import escape
        from rich.tree import Tree

        m = self.model
        aliases = f" [green]@{', @'.join(m['aliases'])}[/]" if m["aliases"] else ""
        root = Tree(
            f"[bold]{escape(m['uri'])}[/]{aliases}  {m['flavor']}, {escape(m['class'] or '')}"
        )
        root.add(
            f"registered {m['created']} by {escape(m['created_by'] or '?')} "
            f"from {escape(m['source'])}"
        )
        r = self.run
        run = root.add(
            f"run [cyan]{r['id'][:12]}[/] {escape(r['name'])} in {escape(r['experiment'])} "
            f"({r['status']})"
        )
        if r["params"]:
            run.add("params: " + escape(_first(f"{k}={_short(v)}" for k, v in r["params"].items())))
        if r["metrics"]:
            run.add("metrics: " + _first(f"{k}={_num(v)}" for k, v in r["metrics"].items()))
        if self.code:
            dirty = " (uncommitted changes)" if self.code["dirty"] else ""
            run.add(f"code: git {self.code['commit'][:12]}{dirty}")
        env = self.environment
        run.add(
            f"environment: Python {env.get('python')} on {escape(str(env.get('platform')))}; "
            + escape(
                ", ".join(m["requirements"][:8]) + (" ..." if len(m["requirements"]) > 8 else "")
            )
        )
        if self.pipeline:
            p = self.pipeline
            trigger = f", trigger {escape(p['trigger'])}" if p["trigger"] else ""
            reason = f": {escape(p['reason'])}" if p["reason"] else ""
            root.add(
                f"pipeline [cyan]{escape(p['pipeline'])}[/] run {p['run_id'][:12]} "
                f"({p['status']}), step {escape(p['step'])}{trigger}{reason}"
            )
        if self.datasets:
            data = root.add("data")
            for d in self.datasets:
                node = data.add(
                    f"[magenta]{escape(d['ref'])}[/] ({d['role']}): {d['rows']:,} rows x "
                    f"{d['columns']}, {d['content_hash'][:12]}"
                )
                node.add(f"source: {escape(d['source'])}")
                contract = (
                    f"contract v{d['contract_version']}" if d["contract_version"] else "no contract"
                )
                node.add(f"{contract}, on_invalid={d['on_invalid']}")
        if self.evaluations:
            evaluations = root.add("evaluations")
            for e in self.evaluations:
                headline = ", ".join(f"{k}={_num(v)}" for k, v in list(e["metrics"].items())[:5])
                evaluations.add(
                    f"{e['id'][:8]} on {escape(e['dataset'] or 'a DataFrame')}: {headline}"
                )
        if self.gates:
            gates = root.add("gates")
            for g in self.gates:
                verdict = "[green]passed[/]" if g["passed"] else "[red]failed[/]"
                against = f" vs run {g['champion_run_id'][:8]}" if g["champion_run_id"] else ""
                failed = f" (failed: {escape('; '.join(g['failed']))})" if g["failed"] else ""
                gates.add(f"{g['id'][:8]} {verdict}{against}, {g['checks']} checks{failed}")
        if self.events:
            events = root.add("alias history")
            for ev in self.events:
                forced = " [red]forced[/]" if ev["forced"] else ""
                events.add(
                    f"{ev['time']} {ev['action']} @{ev['alias']}: {ev['from_version']} -> "
                    f"{ev['to_version']} by {escape(ev['user'] or '?')}{forced}"
                    + (f": {escape(ev['reason'])}" if ev["reason"] else "")
                )
        if self.parent is not None:
            parent = root.add("retrained from")
            parent.add(self.parent.to_tree())
        elif m.get("parent_cut"):
            root.add(f"retrained from {m['parent_cut']} (chain cut at {_MAX_PARENTS})")
        return root

    def to_dot(self) -> str:
        """Graphviz DOT: data -> run -> version, evaluations and gates beside the run."""
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
        self._dot(lines, set())
        lines.append("}")
        return "\n".join(lines)

    def _dot(self, lines: list[str], seen: set[str]) -> None:
        version = self.model["uri"]
        run = f"run:{self.run['id']}"
        for node, label in (
            (version, version),
            (run, f"run {self.run['id'][:8]}\\n{self.run['name']}"),
        ):
            if node not in seen:
                seen.add(node)
                lines.append(f"  {_q(node)} [label={_q(label)}];")
        lines.append(f'  {_q(run)} -> {_q(version)} [label="logged"];')
        if self.pipeline:
            node = f"pipeline:{self.pipeline['run_id']}"
            label = f"pipeline {self.pipeline['pipeline']}\\n{self.pipeline['run_id'][:8]}"
            lines.append(f"  {_q(node)} [label={_q(label)}, shape=component];")
            lines.append(f"  {_q(node)} -> {_q(run)} [label={_q(self.pipeline['step'])}];")
        for d in self.datasets:
            node = f"data:{d['ref']}"
            if node not in seen:
                seen.add(node)
                lines.append(f"  {_q(node)} [label={_q(d['ref'])}, shape=cylinder];")
            lines.append(f"  {_q(node)} -> {_q(run)} [label={_q(d['role'])}];")
        for e in self.evaluations:
            node = f"evaluation:{e['id']}"
            lines.append(f"  {_q(node)} [label={_q('evaluation ' + e['id'][:8])}, shape=note];")
            lines.append(f"  {_q(version)} -> {_q(node)};")
        for g in self.gates:
            node = f"gate:{g['id']}"
            label = f"gate {g['id'][:8]} {'passed' if g['passed'] else 'failed'}"
            lines.append(f"  {_q(node)} [label={_q(label)}, shape=diamond];")
            lines.append(f"  {_q(version)} -> {_q(node)};")
        if self.parent is not None:
            self.parent._dot(lines, seen)
            lines.append(f'  {_q(self.parent.model["uri"])} -> {_q(version)} [label="retrained"];')


def build_lineage(workspace: Workspace, version: ModelVersion, depth: int = 0) -> Lineage:
    from loopml.evaluation.gate import gates

    run = version.run
    info = run.info
    manifest = _manifest(workspace, version)
    parent = version.parent
    model = {
        "uri": version.uri,
        "name": version.name,
        "version": version.version,
        "flavor": version.flavor,
        "class": manifest.get("model_class"),
        "source": version.source,
        "description": version.description,
        "created": version.created.isoformat(timespec="seconds"),
        "created_by": version.created_by,
        "tags": version.tags,
        "aliases": version.aliases,
        "manifest_sha256": version.manifest_sha256,
        "requirements": list(manifest.get("requirements") or []),
        "signature": manifest.get("signature"),
        "parent": parent.uri if parent else None,
    }
    environment = run.environment
    lineage = Lineage(
        model=model,
        run={
            "id": run.id,
            "name": info.name,
            "experiment": run.experiment,
            "status": info.status,
            "user": info.user,
            "started": _ms(info.start_time),
            "ended": _ms(info.end_time) if info.end_time else None,
            "command": info.source,
            "params": run.params,
            "metrics": run.metrics,
            "parent_run_id": info.parent_run_id,
        },
        code={"commit": info.git_commit, "dirty": bool(info.git_dirty)}
        if info.git_commit
        else None,
        environment={
            "python": environment.get("python_version"),
            "platform": environment.get("platform"),
            "packages": len(environment.get("packages") or {}),
        },
        datasets=[
            {
                "ref": dataset.ref,
                "role": role,
                "content_hash": dataset.content_hash,
                "rows": dataset.rows,
                "columns": dataset.columns,
                "source": dataset.source,
                "contract_version": dataset.contract_version,
                "on_invalid": dataset.on_invalid,
                "created_by": dataset.created_by,
                "created_by_run": dataset.run_id,
            }
            for dataset, role in run.inputs()
        ],
        evaluations=[
            {
                "id": e.evaluation_id,
                "dataset": e.dataset,
                "rows": e.n_rows,
                "metrics": e.metrics,
                "created": _ms(e.created_at) if e.created_at else None,
            }
            for e in workspace.evaluations(run)
        ],
        gates=[
            {
                "id": g.gate_id,
                "passed": g.passed,
                "champion_run_id": g.champion_run_id,
                "dataset": g.dataset,
                "checks": len(g.checks),
                "failed": [c.expression for c in g.failed_checks],
                "created": _ms(g.created_at) if g.created_at else None,
            }
            for g in gates(workspace, run)
        ],
        events=[
            {
                "time": e.time.isoformat(timespec="seconds"),
                "alias": e.alias,
                "action": e.action,
                "from_version": e.from_version,
                "to_version": e.to_version,
                "user": e.user,
                "reason": e.reason,
                "forced": e.forced,
                "gate_id": e.gate_id,
                "approvals": e.approvals,
            }
            for e in workspace.registry.history(version.name)
            if version.version in (e.from_version, e.to_version)
        ],
    )
    lineage.pipeline = _pipeline_of(workspace, run.id, info.parent_run_id)
    if parent is not None:
        if depth < _MAX_PARENTS:
            lineage.parent = build_lineage(workspace, parent, depth + 1)
        else:
            model["parent_cut"] = parent.uri
    return lineage


def _pipeline_of(
    workspace: Workspace, run_id: str, parent_run_id: str | None
) -> dict[str, Any] | None:
    """The pipeline run whose step started this run (or its parent run), if any."""
    from loopml.store.repositories.pipelines import PipelineRepository

    repository = PipelineRepository(workspace.db)
    for candidate in (run_id, parent_run_id):
        if candidate is None:
            continue
        step = repository.step_for_tracking_run(candidate)
        if step is None:
            continue
        found = repository.get_run(step.run_id)
        if found is None:
            continue
        return {
            "run_id": found.run_id,
            "pipeline": found.pipeline,
            "step": step.step,
            "status": found.status,
            "trigger": found.trigger,
            "reason": found.reason,
            "started": _ms(found.started_at),
            "resumed_from": found.resumed_from,
        }
    return None


def _manifest(workspace: Workspace, version: ModelVersion) -> dict[str, Any]:
    data = yaml.safe_load(workspace.artifacts.read_bytes(version.manifest_sha256))
    return data if isinstance(data, dict) else {}


def _ms(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat(timespec="seconds")


def _first(items: Any, limit: int = 10) -> str:
    """The first ``limit`` items; a tree line is for reading, --format json has them all."""
    found = list(items)
    more = f" ... ({len(found) - limit} more in --format json)" if len(found) > limit else ""
    return ", ".join(found[:limit]) + more


def _short(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid DOT quoted ID
