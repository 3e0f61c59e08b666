"""Reading a project file: YAML with the line of every field, and the checks of each
section. Internal: use :mod:`loopml.pipelines.project` (``load_project``), whose docstring
describes the format.

(Past ~400 lines as one concern: every section's checks share the reader's helpers and
its list of problems.)
"""

from __future__ import annotations

import difflib
import importlib
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.errors import ValidationError
from loopml.pipelines.project import (
    AlertsConfig,
    CanaryConfig,
    DataConfig,
    DeployConfig,
    FieldPath,
    GateConfig,
    ProjectConfig,
    SearchConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = ["Lines", "Reader", "compose"]


def compose(text: str, source: str) -> tuple[Any, Lines]:
    """YAML text to plain data, the line of every key and list item, and the keys given
    twice in one mapping (the first is kept).

    Scalars follow YAML 1.2 (``on``, ``yes`` and ``no`` stay text), keys are always text.
    """
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ValidationError(
            f"{source}{line}: not valid YAML ({error.problem or error.context}); check the "
            "indentation, colons and brackets there."
        ) from None
    except yaml.YAMLError as error:
        raise ValidationError(f"{source}: not valid YAML ({error}).") from None
    lines = Lines()
    return (None if node is None else _walk(node, (), lines, 0)), lines


@dataclass
class Lines:
    """Where fields are in a file: the line of each path, and the repeated keys."""

    at: dict[FieldPath, int] = field(default_factory=dict)
    repeated: list[tuple[FieldPath, int]] = field(default_factory=list)  # (path, again on)


def _walk(node: Any, path: FieldPath, lines: Lines, depth: int) -> Any:
    import yaml

    if depth > 30:
        return None  # a recursive alias: the checks then say what is missing
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in result:
                lines.repeated.append(((*path, key), key_node.start_mark.line + 1))
                continue
            lines.at[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _walk(value_node, (*path, key), lines, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines.at[(*path, index)] = item.start_mark.line + 1
            items.append(_walk(item, (*path, index), lines, depth + 1))
        return items
    return _scalar(node)


def _scalar(node: Any) -> Any:
    value: str = node.value
    if node.style:  # quoted or a block: text
        return value
    if node.tag.endswith(":null"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?[0-9]+", value):
        return int(value)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", value):
        return float(value)
    return value


_TOP = {
    "model": "the registered model's name",
    "data": "where the training data comes from",
    "train": "the estimator and how it is trained",
    "gate": "the policy a candidate passes",
    "deploy": "the alias, approvals and canary",
    "alerts": "where a stopped run's alert goes",
}
_DATA = ("name", "source", "sql_url", "contract", "on_invalid", "split")
_SPLIT = ("by", "column", "fractions", "seed")
_SPLIT_METHODS = ("random", "stratified", "time", "group")
_DEFAULT_FRACTIONS = {"train": 0.6, "valid": 0.2, "test": 0.2}
_TRAIN = ("target", "estimator", "params", "features", "experiment", "search")
_SEARCH = ("space", "trials", "metric", "direction")
_DEPLOY = ("alias", "approvals", "canary")
_CANARY_PLAN = (
    "steps",
    "interval",
    "min_requests",
    "max_error_rate",
    "max_latency_ratio",
    "latency_slack_ms",
    "max_prediction_psi",
    "min_drift_rows",
)
_CANARY = (*_CANARY_PLAN, "check_every", "pickup_timeout", "timeout")
_POLICIES = ("fail", "quarantine", "warn")
_SQL = re.compile(r"^\s*(select|with)\s", re.IGNORECASE)


class Reader:
    """Checks the plain data of a project, collecting every problem with its line."""

    def __init__(self, lines: Lines, base: Path) -> None:
        self.lines = lines.at
        self.base = base
        self.problems: list[tuple[int | None, str, str]] = []
        for path, again in lines.repeated:
            self.add(path, f"appears twice (again on line {again}); keep one")

    def add(self, path: FieldPath, message: str) -> None:
        line = None
        probe = path
        while line is None and probe:
            line = self.lines.get(probe)
            probe = probe[:-1]
        dotted = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        self.problems.append((line, dotted, message))

    # -- generic checks ----------------------------------------------------------------
    def mapping(
        self, value: Any, path: FieldPath, allowed: tuple[str, ...], example: str
    ) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping, e.g. {example}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.add(
                    (*path, key), f"unknown field; {hint}the fields here are {', '.join(allowed)}"
                )
        return dict(value)

    def text(
        self,
        data: Mapping[str, Any],
        key: str,
        path: FieldPath,
        *,
        required: bool = False,
        example: str = "",
    ) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(
                    (*path, key) if key in data else path,
                    f"`{key}` is required" + (f", e.g. {key}: {example}" if example else ""),
                )
            return None
        if not isinstance(value, str) or not value.strip():
            self.add((*path, key), "must be text" + (f", e.g. {example}" if example else ""))
            return None
        return value.strip()

    def whole(
        self, data: Mapping[str, Any], key: str, path: FieldPath, low: int, default: int
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.add((*path, key), f"must be a whole number ≥ {low}, got {value!r}")
            return default
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        path: FieldPath,
        low: float,
        high: float,
        *,
        above: bool = False,
    ) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not number
            or not math.isfinite(value)
            or value > high
            or (value <= low if above else value < low)
        ):
            bound = f"above {low:g}" if above else f"≥ {low:g}"
            upper = f" and ≤ {high:g}" if math.isfinite(high) else ""
            self.add((*path, key), f"must be a number {bound}{upper}, got {value!r}")
            return None
        return float(value)

    def seconds(self, data: Mapping[str, Any], key: str, path: FieldPath, default: float) -> float:
        from loopml.monitoring.alerts import parse_duration

        if data.get(key) is None:
            return default
        try:
            seconds = parse_duration(data[key], "").total_seconds()
        except ValidationError:
            seconds = -1.0
        if seconds <= 0:
            self.add(
                (*path, key), f"must be a duration above 0 such as 30s, 5m or 1h, got {data[key]!r}"
            )
            return default
        return seconds

    def choice(
        self,
        data: Mapping[str, Any],
        key: str,
        path: FieldPath,
        options: tuple[str, ...],
        default: str,
    ) -> str:
        value = data.get(key, default)
        if value not in options:
            self.add((*path, key), f"must be one of {', '.join(options)}, got {value!r}")
            return default
        return str(value)

    def local(self, value: str) -> str:
        """A path read from the project's folder (URLs and SQL stay as they are)."""
        if "://" in value or _SQL.match(value) or Path(value).is_absolute():
            return value
        return str(self.base / value)

    # -- sections ----------------------------------------------------------------------
    def project(self, value: Any) -> ProjectConfig | None:
        if value is None:
            self.add((), "is empty; write `loopml ct init` for a starter project")
            return None
        top = self.mapping(value, (), tuple(_TOP), "model: churn, data: {...}, train: {...}")
        if top is None:
            return None
        for key, meaning in _TOP.items():
            if key in ("model", "data", "train", "gate") and top.get(key) is None:
                self.add((key,) if key in top else (), f"`{key}` is required: {meaning}")
        model = self.text(top, "model", ())
        if model is not None:
            from loopml.registry._reference import check_name

            try:
                check_name(model)
            except ValidationError as error:
                self.add(("model",), str(error))
        train = self.train(top["train"], ("train",)) if top.get("train") is not None else None
        target = train.target if train is not None else None
        data = self.data(top["data"], ("data",), target) if top.get("data") is not None else None
        gate = self.gate(top["gate"], ("gate",)) if top.get("gate") is not None else None
        deploy = self.deploy(top.get("deploy") or {}, ("deploy",))
        alerts = self.alerts(top.get("alerts") or {}, ("alerts",))
        if model is None or data is None or train is None or gate is None:
            return None
        return ProjectConfig(model, data, train, gate, deploy, alerts)

    def data(self, value: Any, path: FieldPath, target: str | None) -> DataConfig | None:
        data = self.mapping(value, path, _DATA, "{name: churn, source: data/churn.csv}")
        if data is None:
            return None
        name = self.text(data, "name", path, required=True, example="churn")
        source = self.text(data, "source", path, example="data/*.parquet")
        sql_url = self.text(data, "sql_url", path)
        if sql_url is not None and source is None:
            self.add((*path, "sql_url"), "goes with a SQL `source`")
        contract: str | dict[str, Any] | None = None
        raw = data.get("contract")
        if isinstance(raw, Mapping):
            contract = dict(raw)
        elif raw is not None:
            text = self.text(data, "contract", path, example="contract.yaml")
            if text is not None:
                contract = self.local(text)
                if not Path(contract).is_file():
                    self.add((*path, "contract"), f"no contract file {contract}")
        on_invalid = self.choice(data, "on_invalid", path, _POLICIES, "fail")
        split = self.split(data.get("split"), (*path, "split"), target)
        if name is None or split is None:
            return None
        return DataConfig(
            name, split, self.local(source) if source else None, sql_url, contract, on_invalid
        )

    def split(self, value: Any, path: FieldPath, target: str | None) -> SplitConfig | None:
        if value is None:
            value = {}
        split = self.mapping(
            value, path, _SPLIT, "{by: stratified, fractions: {train: 0.8, valid: 0.2}}"
        )
        if split is None:
            return None
        by = self.choice(split, "by", path, _SPLIT_METHODS, "stratified")
        column = self.text(split, "column", path, example="target")
        if column is None and by == "stratified":
            column = target
        if column is None and by in ("time", "group"):
            self.add(path, f"a {by} split needs `column`")
        seed = self.whole(split, "seed", path, 0, 0)
        raw = split.get("fractions", _DEFAULT_FRACTIONS)
        where = (*path, "fractions")
        if not isinstance(raw, Mapping) or not raw:
            self.add(where, "must map parts to shares, e.g. {train: 0.6, valid: 0.2, test: 0.2}")
            return None
        unknown = sorted(set(raw) - {"train", "valid", "test"})
        missing = [part for part in ("train", "valid") if part not in raw]
        if unknown or missing:
            self.add(
                where,
                "must name the parts train and valid (and test, held out for the "
                f"gate), got {', '.join(map(str, raw))}",
            )
            return None
        shares = [raw[part] for part in raw]
        if not all(
            isinstance(s, int | float) and not isinstance(s, bool) and s > 0 for s in shares
        ):
            self.add(where, f"shares must be numbers above 0, got {dict(raw)}")
            return None
        if abs(sum(shares) - 1.0) > 1e-9:
            self.add(where, f"shares must add up to 1, they add up to {sum(shares):g}")
            return None
        # A fixed order: the part numbers of a stored split follow it, and run params are
        # stored with sorted keys.
        fractions = {part: float(raw[part]) for part in ("train", "valid", "test") if part in raw}
        return SplitConfig(by, column, fractions, seed)

    def train(self, value: Any, path: FieldPath) -> TrainConfig | None:
        train = self.mapping(
            value,
            path,
            _TRAIN,
            "{target: churned, estimator: sklearn.linear_model.LogisticRegression}",
        )
        if train is None:
            return None
        target = self.text(train, "target", path, required=True, example="churned")
        estimator = self.text(
            train,
            "estimator",
            path,
            required=True,
            example="sklearn.linear_model.LogisticRegression",
        )
        if estimator is not None and not self._importable(estimator, (*path, "estimator")):
            estimator = None
        params = train.get("params") or {}
        if not isinstance(params, Mapping):
            self.add(
                (*path, "params"),
                "must map the estimator's params to values, e.g. {max_iter: 2000}",
            )
            params = {}
        features = train.get("features")
        if features is not None and (
            not isinstance(features, list) or not all(isinstance(f, str) for f in features)
        ):
            self.add((*path, "features"), "must be a list of column names")
            features = None
        experiment = self.text(train, "experiment", path)
        search = None
        if train.get("search") is not None:
            search = self.search(train["search"], (*path, "search"))
        if target is None or estimator is None:
            return None
        return TrainConfig(
            target,
            estimator,
            dict(params),
            tuple(features) if features is not None else None,
            experiment,
            search,
        )

    def _importable(self, dotted: str, path: FieldPath) -> bool:
        module, _, name = dotted.rpartition(".")
        if not module:
            self.add(
                path, "must be a dotted class path such as sklearn.linear_model.LogisticRegression"
            )
            return False
        try:
            found = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            self.add(
                path,
                f"cannot import {dotted!r} ({error}); check the spelling and that "
                "its package is installed",
            )
            return False
        if not callable(found):
            self.add(path, f"{dotted!r} is not a class")
            return False
        return True

    def search(self, value: Any, path: FieldPath) -> SearchConfig | None:
        from loopml.training._space import parse_space

        search = self.mapping(
            value, path, _SEARCH, "{space: {C: {low: 0.01, high: 100, log: true}}, trials: 20}"
        )
        if search is None:
            return None
        trials = self.whole(search, "trials", path, 1, 20)
        metric = self.text(search, "metric", path, example="roc_auc")
        direction = search.get("direction")
        if direction is not None and direction not in ("maximize", "minimize"):
            self.add((*path, "direction"), f"must be maximize or minimize, got {direction!r}")
            direction = None
        raw = search.get("space")
        if not isinstance(raw, Mapping) or not raw:
            self.add(
                (*path, "space") if "space" in search else path,
                "`space` must map params to ranges, e.g. {C: {low: 0.01, high: 100, log: true}}",
            )
            return None
        space = {str(name): _typed(spec) for name, spec in raw.items()}
        try:
            parse_space(space)
        except ValidationError as error:
            self.add((*path, "space"), str(error))
            return None
        return SearchConfig(space, trials, metric, direction)

    def gate(self, value: Any, path: FieldPath) -> GateConfig | None:
        from loopml.evaluation.gate import load_policy

        gate = self.mapping(value, path, ("policy",), "{policy: {checks: [roc_auc >= 0.8]}}")
        if gate is None:
            return None
        raw = gate.get("policy")
        where = (*path, "policy")
        if isinstance(raw, str):
            file = Path(self.local(raw))
            if not file.is_file():
                self.add(where, f"no policy file {file}")
                return None
            import yaml

            try:
                raw = yaml.safe_load(file.read_text(encoding="utf-8"))
            except yaml.YAMLError as error:
                self.add(where, f"the policy file {file} is not valid YAML: {error}")
                return None
        if not isinstance(raw, Mapping):
            self.add(
                where if "policy" in gate else path,
                "`policy` is required: a mapping with `checks:` or a policy file's path",
            )
            return None
        try:
            policy = load_policy(dict(raw))
        except ValidationError as error:
            self.add(where, str(error))
            return None
        if all(any(r.side == "champion" for r in c.references()) for c in policy.checks):
            self.add(
                where,
                "every check names the champion, so the first model (with no "
                "champion) would pass unjudged; add one that does not, e.g. roc_auc >= 0.8",
            )
            return None
        return GateConfig(policy.source)

    def deploy(self, value: Any, path: FieldPath) -> DeployConfig:
        from loopml.registry._reference import check_alias

        deploy = self.mapping(value, path, _DEPLOY, "{alias: production, approvals: 1}")
        if deploy is None:
            return DeployConfig()
        alias = self.text(deploy, "alias", path, example="production") or "production"
        try:
            check_alias(alias)
        except ValidationError as error:
            self.add((*path, "alias"), str(error))
        approvals = self.whole(deploy, "approvals", path, 0, 0)
        canary = None
        if deploy.get("canary") is not None:
            canary = self.canary(deploy["canary"], (*path, "canary"))
        return DeployConfig(alias, approvals, canary)

    def canary(self, value: Any, path: FieldPath) -> CanaryConfig | None:
        canary = self.mapping(value, path, _CANARY, "{steps: [10, 50, 100], interval: 30s}")
        if canary is None:
            return None
        plan: dict[str, Any] = {}
        steps = canary.get("steps")
        if steps is not None:
            ok = (
                isinstance(steps, list)
                and steps
                and all(
                    isinstance(s, int | float) and not isinstance(s, bool) and 0 < s <= 100
                    for s in steps
                )
            )
            rising = ok and all(b > a for a, b in itertools.pairwise(steps))
            if not rising or steps[-1] != 100:
                self.add(
                    (*path, "steps"),
                    "must be rising percents of traffic ending at 100, "
                    f"e.g. [10, 50, 100], got {steps!r}",
                )
            else:
                plan["steps"] = [float(s) for s in steps]
        if canary.get("interval") is not None:
            plan["interval_s"] = self.seconds(canary, "interval", path, 120.0)
        for key in ("min_requests", "min_drift_rows"):
            if key in canary:
                plan[key] = self.whole(canary, key, path, 1, 1)
        for key, high, above in (
            ("max_error_rate", 1.0, False),
            ("max_latency_ratio", math.inf, True),
            ("latency_slack_ms", math.inf, False),  # 0: the ratio alone
            ("max_prediction_psi", math.inf, True),
        ):
            number = self.number(canary, key, path, 0.0, high, above=above)
            if number is not None:
                plan[key] = number
        return CanaryConfig(
            plan,
            self.seconds(canary, "check_every", path, 5.0),
            self.seconds(canary, "pickup_timeout", path, 60.0),
            self.seconds(canary, "timeout", path, 1800.0),
        )

    def alerts(self, value: Any, path: FieldPath) -> AlertsConfig:
        from loopml.monitoring.notify import build_notifier

        alerts = self.mapping(value, path, ("notify",), "{notify: [log]}")
        if alerts is None:
            return AlertsConfig()
        notify = alerts.get("notify", ["log"])
        where = (*path, "notify")
        if isinstance(notify, str | Mapping):
            notify = [notify]
        if not isinstance(notify, list):
            self.add(where, "must be a list of notifiers, e.g. [log, {type: webhook, url: ...}]")
            return AlertsConfig()
        for index, entry in enumerate(notify):
            spec = {"type": entry} if isinstance(entry, str) else entry
            try:
                build_notifier(
                    str(spec.get("type", "log")) if isinstance(spec, Mapping) else "notifier", spec
                )
            except ValidationError as error:
                self.add((*where, index), str(error))
        return AlertsConfig(tuple(notify))


def _typed(spec: Any) -> Any:
    """A range without ``type``: int when both bounds are whole numbers, else float."""
    if isinstance(spec, Mapping) and "type" not in spec and ("low" in spec or "high" in spec):
        bounds = [spec.get("low"), spec.get("high")]
        whole = all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        return {"type": "int" if whole else "float", **spec}
    return spec
