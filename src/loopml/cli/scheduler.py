"""``loopml scheduler``, ``loopml schedule add|list|remove|enable|disable|history`` and
``loopml trigger add|list|remove|fire``: thin layers over :mod:`loopml.pipelines`."""

from __future__ import annotations

import json
import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._output import HomeOption, console, local_time, open_workspace
from loopml.errors import ValidationError

if TYPE_CHECKING:
    from loopml.pipelines.scheduler import Tick
    from loopml.pipelines.triggers import Firing

__all__ = ["schedule_app", "scheduler", "trigger_app"]

schedule_app = typer.Typer(
    help="Cron schedules of pipelines, run by `loopml scheduler`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
trigger_app = typer.Typer(
    help="Triggers of pipelines: a new dataset version, a monitoring alert, a manual call.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Name = Annotated[str, typer.Argument(help="The schedule's or trigger's name.", show_default=False)]
Target = Annotated[
    str,
    typer.Argument(
        help="What to run: module:pipeline, a pipeline YAML file, or py:module:function.",
        show_default=False,
    ),
]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="KEY=VALUE passed to each run (VALUE read as JSON)."),
]
MaxRuns = Annotated[
    int | None, typer.Option("--max-runs", min=1, help="Rate limit: runs per --per at most.")
]
Per = Annotated[str | None, typer.Option("--per", help="The rate limit's period: 1h, 1d, ...")]
Replace = Annotated[bool, typer.Option("--replace", help="Change an existing one of this name.")]
_STATUS = {"succeeded": "green", "failed": "bold red", "running": "cyan", "suppressed": "yellow",
           "waiting": "bold yellow"}  # fmt: skip


def scheduler(
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between ticks.")] = 5.0,
    lease: Annotated[
        float, typer.Option(min=1.0, help="Seconds a silent runner keeps its claim.")
    ] = 60.0,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these schedules/triggers.")
    ] = None,
    no_triggers: Annotated[
        bool, typer.Option("--no-triggers", help="Run schedules only, poll no trigger.")
    ] = False,
    max_ticks: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many ticks.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Run due schedule occurrences and trigger events, each once, until stopped.

    Restart-safe: every occurrence is claimed in the metadata store before it runs, so a
    restart neither repeats one nor skips more than the schedule's catch-up policy says,
    two schedulers never run the same one, and a run whose scheduler died is marked
    failed once its lease runs out.
    """
    from loopml.pipelines.scheduler import Scheduler

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with open_workspace(home) as ws:
        console().print(
            f"Scheduler on {escape(str(ws.settings.home))}: polling every {poll:g} s "
            "(Ctrl+C to stop)."
        )
        made = Scheduler(
            ws,
            poll_seconds=poll,
            lease_seconds=lease,
            names=set(only) if only else None,
            triggers=not no_triggers,
            stop=stopping.is_set,
            sleep=stopping.wait,
        ).run(max_ticks=max_ticks, on_tick=_print_tick)
    console().print(f"Stopped after {made} firing(s).")


def _print_tick(tick: Tick) -> None:
    for firing in [*tick.reaped, *tick.firings]:
        _print_firing(firing)


def _print_firing(firing: Firing) -> None:
    style = _STATUS.get(firing.status, "")
    line = (
        f"{local_time(firing.created_at)}  [bold]{escape(firing.trigger)}[/] "
        f"{escape(firing.event)}  [{style}]{firing.status}[/]"
    )
    if firing.run_id:
        line += f"  run {escape(firing.run_id)}"
    if firing.error:
        line += f"  [red]{escape(firing.error)}[/]"
    console().print(line)


def _params(pairs: list[str] | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs or []:
        key, equals, text = pair.partition("=")
        if not equals or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE, e.g. --param n_trials=20")
        try:
            found[key] = json.loads(text)
        except ValueError:
            found[key] = text
    return found


# -- schedules ---------------------------------------------------------------------------
@schedule_app.command("add")
def schedule_add(
    name: Name,
    cron: Annotated[
        str, typer.Argument(help="Cron expression, e.g. '0 3 * * *'.", show_default=False)
    ],
    target: Target,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA zone.")] = "UTC",
    catch_up: Annotated[
        str, typer.Option("--catch-up", help="Missed occurrences: none, all or skip.")
    ] = "none",
    max_catch_up: Annotated[
        int, typer.Option("--max-catch-up", help="With --catch-up all: at most this many.")
    ] = 10,
    params: Params = None,
    max_runs: MaxRuns = None,
    per: Per = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it switched off.")] = False,
    replace: Replace = False,
    home: HomeOption = None,
) -> None:
    """Add a cron schedule of a pipeline."""
    from loopml.pipelines.schedule import add_schedule

    with open_workspace(home) as ws:
        schedule = add_schedule(
            ws, name, cron, target, timezone=timezone, params=_params(params),
            catch_up=catch_up, max_catch_up=max_catch_up, enabled=not disabled,
            max_runs=max_runs, per=per, replace=replace,
        )  # fmt: skip
        upcoming = schedule.next_occurrences(schedule.start_at, 3)
    console().print(
        f"Schedule [bold]{escape(name)}[/]: {escape(schedule.cron)} ({schedule.timezone}) -> "
        f"{escape(target)}; next: {', '.join(local_time(when) for when in upcoming)}."
    )


@schedule_app.command("list")
def schedule_list(home: HomeOption = None) -> None:
    """List schedules, with their next occurrence."""
    import datetime as dt

    from loopml.pipelines.schedule import list_schedules

    with open_workspace(home) as ws:
        found = list_schedules(ws)
    if not found:
        console().print("No schedules; add one with `loopml schedule add`.")
        return
    table = Table(title="Schedules", title_justify="left", header_style="bold")
    for column in ("name", "cron", "timezone", "target", "catch-up", "enabled", "next"):
        table.add_column(column)
    now = dt.datetime.now(dt.UTC)
    for schedule in found:
        upcoming = schedule.next_occurrences(max(now, schedule.start_at))[0]
        table.add_row(
            escape(schedule.name),
            escape(schedule.cron),
            schedule.timezone,
            escape(schedule.target),
            schedule.catch_up
            + (f" (max {schedule.max_catch_up})" if schedule.catch_up == "all" else ""),
            "yes" if schedule.enabled else "[yellow]no[/]",
            local_time(upcoming) if schedule.enabled else "",
        )
    console().print(table)


@schedule_app.command("remove")
def schedule_remove(name: Name, home: HomeOption = None) -> None:
    """Remove a schedule and its history."""
    from loopml.pipelines.schedule import get_schedule, remove_schedule

    with open_workspace(home) as ws:
        get_schedule(ws, name)  # a trigger's name is refused with a clear message
        remove_schedule(ws, name)
    console().print(f"Removed schedule {escape(name)}.")


@schedule_app.command("enable")
def schedule_enable(name: Name, home: HomeOption = None) -> None:
    """Switch a schedule on."""
    from loopml.pipelines.schedule import enable_schedule

    with open_workspace(home) as ws:
        enable_schedule(ws, name, True)
    console().print(f"Schedule {escape(name)} enabled.")


@schedule_app.command("disable")
def schedule_disable(name: Name, home: HomeOption = None) -> None:
    """Switch a schedule off (kept, never run)."""
    from loopml.pipelines.schedule import enable_schedule

    with open_workspace(home) as ws:
        enable_schedule(ws, name, False)
    console().print(f"Schedule {escape(name)} disabled.")


@schedule_app.command("history")
def schedule_history(
    name: Annotated[str | None, typer.Argument(help="Schedule or trigger (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest firings to show.")] = 50,
    home: HomeOption = None,
) -> None:
    """Show firings (occurrences and events) newest first: status, run, error, reason."""
    from loopml.pipelines.triggers import describe, firings

    with open_workspace(home) as ws:
        found = firings(ws, name, limit=limit)
    if not found:
        console().print("No firings yet.")
        return
    table = Table(title="Firings", title_justify="left", header_style="bold")
    for column in ("when", "name", "event", "status", "run", "why"):
        table.add_column(column)
    for firing in found:
        style = _STATUS.get(firing.status, "")
        why = firing.error or describe(firing.reason)
        table.add_row(
            local_time(firing.created_at), escape(firing.trigger), escape(firing.event),
            f"[{style}]{firing.status}[/]", escape(firing.run_id or ""), escape(why),
        )  # fmt: skip
    console().print(table)


# -- triggers ----------------------------------------------------------------------------
@trigger_app.command("add")
def trigger_add(
    name: Name,
    target: Target,
    on: Annotated[str, typer.Option("--on", help="dataset, alert or manual.")] = "manual",
    dataset: Annotated[str | None, typer.Option(help="--on dataset: the dataset.")] = None,
    model: Annotated[str | None, typer.Option(help="--on alert: the model (default any).")] = None,
    rule: Annotated[str | None, typer.Option(help="--on alert: the rule (default any).")] = None,
    data_param: Annotated[
        str | None, typer.Option("--data-param", help="Param receiving the new version's ref.")
    ] = None,
    params: Params = None,
    max_runs: MaxRuns = None,
    per: Per = None,
    replace: Replace = False,
    home: HomeOption = None,
) -> None:
    """Add a trigger; `loopml scheduler` polls dataset and alert triggers."""
    from loopml.pipelines.triggers import add_trigger

    with open_workspace(home) as ws:
        trigger = add_trigger(
            ws, name, target, on=on, dataset=dataset, model=model, rule=rule,
            params=_params(params), data_param=data_param, max_runs=max_runs, per=per,
            replace=replace,
        )  # fmt: skip
    limit = f", at most {trigger.max_runs} per {trigger.period}" if trigger.max_runs else ""
    console().print(f"Trigger [bold]{escape(name)}[/] on {on} -> {escape(target)}{limit}.")


@trigger_app.command("list")
def trigger_list(home: HomeOption = None) -> None:
    """List triggers."""
    from loopml.pipelines.triggers import list_triggers

    with open_workspace(home) as ws:
        found = list_triggers(ws)
    if not found:
        console().print("No triggers; add one with `loopml trigger add`.")
        return
    table = Table(title="Triggers", title_justify="left", header_style="bold")
    for column in ("name", "on", "source", "target", "rate limit", "enabled"):
        table.add_column(column)
    for trigger in found:
        source = " / ".join(part for part in (trigger.source, trigger.rule) if part) or "any"
        if trigger.kind == "manual":
            source = ""
        rate = f"{trigger.max_runs} per {trigger.period}" if trigger.max_runs else ""
        table.add_row(
            escape(trigger.name), trigger.kind, escape(source), escape(trigger.target), rate,
            "yes" if trigger.enabled else "[yellow]no[/]",
        )  # fmt: skip
    console().print(table)


@trigger_app.command("remove")
def trigger_remove(name: Name, home: HomeOption = None) -> None:
    """Remove a trigger and its history."""
    from loopml.pipelines.triggers import get_trigger, remove_trigger

    with open_workspace(home) as ws:
        if get_trigger(ws, name).kind == "schedule":
            raise ValidationError(f"{name!r} is a schedule; use `loopml schedule remove`.")
        remove_trigger(ws, name)
    console().print(f"Removed trigger {escape(name)}.")


@trigger_app.command("fire")
def trigger_fire(
    name: Name,
    note: Annotated[str | None, typer.Option(help="Why, recorded with the run.")] = None,
    params: Params = None,
    home: HomeOption = None,
) -> None:
    """Fire a trigger (or run a schedule) now, within its rate limit; exit 1 if it failed."""
    from loopml.pipelines.triggers import fire

    with open_workspace(home) as ws:
        firing = fire(ws, name, note=note, params=_params(params))
    _print_firing(firing)
    if firing.status == "failed":
        raise typer.Exit(1)
