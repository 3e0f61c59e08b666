"""``loopml deploy NAME --alias production --canary|--shadow|--ab models:/NAME/8`` runs a
server that follows the alias and tests a candidate beside its holder;
``loopml deploy NAME --canary models:/NAME/8 --request`` asks the servers already
following the alias to run the canary instead; ``loopml deploy requests`` lists such
requests and ``loopml deploy cancel ID`` cancels one; ``loopml deploy report NAME``
compares the arms from the prediction log and feedback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from loopml.cli._output import (
    HomeOption,
    console,
    fail,
    format_number,
    local_time,
    open_workspace,
)
from loopml.errors import LoopmlError, ValidationError

if TYPE_CHECKING:
    from loopml.serving.deployment import DeploySpec

_STATE_STYLES = {
    "pending": "blue",
    "running": "cyan",
    "promoted": "green",
    "rolled_back": "yellow",
    "failed": "bold red",
    "expired": "dim",
    "cancelled": "dim",
}


def deploy(
    name: Annotated[
        str,
        typer.Argument(
            help="Registered model to deploy (or `report` to compare a deployment's arms, "
            "`requests` to list deployment requests, `cancel` to cancel one).",
            show_default=False,
        ),
    ],
    model: Annotated[
        str | None,
        typer.Argument(
            help="With `report`: the model; with `cancel`: the request id.", show_default=False
        ),
    ] = None,
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to follow.")] = "production",
    canary: Annotated[
        str | None, typer.Option(help="Candidate version (models:/NAME/8) for a canary.")
    ] = None,
    steps: Annotated[str, typer.Option(help="Canary shares in percent.")] = "5,25,50,100",
    interval: Annotated[str, typer.Option(help="Time per canary step (30s, 2m, 1h).")] = "2m",
    min_requests: Annotated[
        int, typer.Option(min=1, help="Canary requests per step before it is judged.")
    ] = 50,
    max_error_rate: Annotated[float, typer.Option(help="Canary error rate guard.")] = 0.01,
    max_latency_ratio: Annotated[
        float, typer.Option(help="Canary p99 over stable p99 guard.")
    ] = 1.5,
    latency_slack_ms: Annotated[
        float,
        typer.Option(help="Canary p99 may exceed stable's by this much whatever the ratio."),
    ] = 10.0,
    max_prediction_psi: Annotated[
        float, typer.Option(help="Prediction drift guard (PSI against stable).")
    ] = 0.2,
    check_every: Annotated[
        str, typer.Option(help="How often the canary's guards are judged.")
    ] = "5s",
    shadow: Annotated[
        str | None, typer.Option(help="Candidate that gets copies of every request.")
    ] = None,
    ab: Annotated[str | None, typer.Option(help="Candidate for an A/B test.")] = None,
    split: Annotated[float, typer.Option(help="A/B: percent of traffic to the candidate.")] = 50,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    since: Annotated[
        str | None, typer.Option(help="report: only predictions since (ISO time or 1h, 2d).")
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="report: record a significant A/B decision.")
    ] = False,
    request: Annotated[
        bool,
        typer.Option(
            "--request",
            help="Ask the servers already following the alias to run the canary, instead "
            "of starting a server.",
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why (--request, cancel).")
    ] = None,
    of_model: Annotated[
        str | None, typer.Option("--model", help="requests: only this model's.")
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="requests: only those in this state.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Run a canary, shadow or A/B deployment beside an alias's holder (or report on one)."""
    if name == "report":
        if model is None:
            raise typer.BadParameter("loopml deploy report NAME", param_hint="NAME")
        _report(model, alias, since, record, home)
        return
    if name == "requests":
        _requests(of_model, state, home)
        return
    if name == "cancel":
        if model is None:
            raise typer.BadParameter("loopml deploy cancel REQUEST_ID", param_hint="REQUEST_ID")
        _cancel(model, reason, home)
        return
    from loopml.serving import serve
    from loopml.serving.deployment import DeploySpec
    from loopml.serving.policies import CanaryPlan, parse_duration, parse_steps

    chosen = [(s, c) for s, c in (("canary", canary), ("shadow", shadow), ("ab", ab)) if c]
    try:
        if len(chosen) != 1:
            raise ValidationError("Give exactly one of --canary, --shadow or --ab.")
        strategy, candidate = chosen[0]
        plan = CanaryPlan(
            steps=tuple(parse_steps(steps)),
            interval_s=parse_duration(interval),
            min_requests=min_requests,
            max_error_rate=max_error_rate,
            max_latency_ratio=max_latency_ratio,
            latency_slack_ms=latency_slack_ms,
            max_prediction_psi=max_prediction_psi,
        )
        spec = DeploySpec(strategy, candidate, plan, split, parse_duration(check_every))
        if request:
            _request(name, alias, spec, reason, home)
            return
        with open_workspace(home) as ws:
            holder = ws.registry.get(f"models:/{name}@{alias}")
            ws.registry.get(candidate)
        console().print(
            f"Deploying [bold]{escape(name)}@{escape(alias)}[/] (version {holder.version}) "
            f"with a {strategy} of {escape(candidate)} on http://{escape(host)}:{port}."
        )
        serve(f"models:/{name}@{alias}", home, host=host, port=port, deployment=spec)
    except LoopmlError as error:
        raise fail(error) from None


def _request(
    name: str, alias: str, spec: DeploySpec, reason: str | None, home: Path | None
) -> None:
    from loopml.registry import parse_reference
    from loopml.serving.deployment import request_deployment

    if parse_reference(spec.candidate).name != name:
        raise ValidationError(f"The candidate {spec.candidate} is not a version of {name!r}.")
    with open_workspace(home) as ws:
        made = request_deployment(
            ws,
            spec.candidate,
            alias,
            strategy=spec.strategy,
            plan=spec.plan,
            check_seconds=spec.check_seconds,
            reason=reason,
        )
    where = f" --home {home}" if home is not None else ""
    out = console()
    out.print(
        f"Requested a {made.strategy} of {escape(made.candidate)} for "
        f"[bold]{escape(made.model)}@{escape(made.alias)}[/]: request [bold]{made.request_id}[/]."
    )
    out.print(
        f"A server following models:/{escape(made.model)}@{escape(made.alias)} picks it up "
        f"at its next poll. Watch it with: loopml deploy requests --model {escape(made.model)}"
        f"{escape(where)}"
    )


def _requests(model: str | None, state: str | None, home: Path | None) -> None:
    from loopml.serving.deployment import list_deployments

    with open_workspace(home) as ws:
        found = list_deployments(ws, model, state)
    out = console()
    if not found:
        out.print("No deployment requests" + (f" for {escape(model)}." if model else "."))
        return
    table = Table(title="Deployment requests", title_justify="left")
    for column in ("request", "alias", "candidate", "state", "requested", "by", "server"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail")
    table.add_column("reason")
    for item in found:
        table.add_row(
            item.request_id[:8],
            escape(f"{item.model}@{item.alias}"),
            f"{item.strategy} of v{item.candidate_version}",
            Text(item.state, style=_STATE_STYLES.get(item.state, "")),
            local_time(item.requested_at),
            escape(item.requested_by),
            escape(item.claimed_by or ""),
            escape(item.detail or ""),
            escape(item.reason or ""),
        )
    out.print(table)


def _cancel(request_id: str, reason: str | None, home: Path | None) -> None:
    from loopml.serving.deployment import cancel_deployment

    with open_workspace(home) as ws:
        found = cancel_deployment(ws, request_id, reason or "")
    if found.state == "cancelled":
        console().print(f"Cancelled deployment request {found.request_id}.")
    else:
        console().print(
            f"Asked the server {escape(found.claimed_by or '')} to roll back the canary of "
            f"deployment request {found.request_id} at its next check."
        )


def _report(model: str, alias: str, since: str | None, record: bool, home: object) -> None:
    from loopml.serving.report import deployment_report

    out = console()
    with open_workspace(home) as ws:  # type: ignore[arg-type]
        report = deployment_report(ws, model, alias, since=since, record=record)
    if report.shadow is not None:
        s = report.shadow
        table = Table(title=f"Shadow of {escape(model)}", title_justify="left")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("paired rows", f"{s.rows:,}")
        if s.label_agreement is not None:
            table.add_row("label agreement", f"{s.label_agreement:.2%}")
        for key, value in s.difference_quantiles.items():
            table.add_row(f"|difference| {key}", format_number(value))
        table.add_row(
            "latency p50 stable / shadow",
            f"{s.primary_latency_p50_ms:.1f} / {s.shadow_latency_p50_ms:.1f} ms",
        )
        table.add_row(
            "latency p99 stable / shadow",
            f"{s.primary_latency_p99_ms:.1f} / {s.shadow_latency_p99_ms:.1f} ms",
        )
        out.print(table)
    if report.ab is not None:
        r = report.ab
        verdict = {"b": "[green]B wins[/]", "a": "[yellow]A wins[/]"}.get(
            r.decision, "inconclusive"
        )
        out.print(
            f"A/B on {r.metric}: A {r.a:.4f} (n={r.n_a:,}) vs B {r.b:.4f} (n={r.n_b:,}); "
            f"B - A = {r.difference:+.4f} [{r.low:+.4f}, {r.high:+.4f}], p = {r.p_value:.3g}: "
            f"{verdict}"
        )
        if r.needed_per_arm:
            out.print(f"  about {r.needed_per_arm:,} labelled rows per arm would settle it.")
    for line in report.notes:
        out.print(f"[dim]{escape(line)}[/]")
