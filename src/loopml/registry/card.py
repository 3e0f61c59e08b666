"""Model cards: ``model_card(ws, "models:/churn/7")`` gathers what a reviewer asks of a version.

A card is built on demand from the store: the version and its run (lineage), the
dataset versions the run read, its evaluations (metrics with intervals, worst slices,
fairness, robustness, importance), its gates, its alias history, and the bundle's input
signature and requirements. What only people know comes from the owner: registered-model
tags named ``card.<field>``, set with ``ws.registry.set_tags("churn", {"card.intended_use":
"..."})``; a version's own ``card.*`` tags override the model's for that version. The known
fields come first (intended use, out-of-scope uses, limitations, ethical considerations;
owner and contact sit in the details), any other ``card.*`` tag becomes a section after
them, and a known field nobody filled in reads "Not stated by the owner", so the gap shows.

``ModelCard.write(folder)`` writes ``<name>-v<version>.md`` and ``<name>-v<version>.html``:
Markdown for a repository or a review, and one self-contained HTML page (inline CSS, no
script, no external fetches, every text escaped; it holds summaries, never data rows).

One module past ~400 lines because the content is laid out once, as blocks, and its two
renderers (Markdown and HTML) are small and change with it.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.evaluation.gate import GateResult
    from loopml.evaluation.result import Evaluation
    from loopml.registry.lineage import Lineage
    from loopml.registry.registry import RegisteredModel
    from loopml.workspace import Workspace

__all__ = ["CARD_TAG_PREFIX", "KNOWN_FIELDS", "NOT_STATED", "ModelCard", "model_card"]

CARD_TAG_PREFIX = "card."
# The owner's prose fields, in the order a card shows them, with their section titles.
KNOWN_FIELDS = {
    "intended_use": "Intended use",
    "out_of_scope": "Out-of-scope uses",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
}
# The owner's contact fields: shown in the details table, not as sections.
CONTACT_FIELDS = {"owner": "Owner", "contact": "Contact"}
NOT_STATED = "Not stated by the owner"

# Caps that keep a card readable (and the HTML small) whatever the run logged.
_MAX_EVALUATIONS = 5
_MAX_GATES = 5
_MAX_SLICES = 5
_MAX_IMPORTANCE = 10
_MAX_PARAMS = 60
_MAX_EVENTS = 20
_ROLE_ORDER = ("train", "valid", "validation", "test", "evaluation")
_DASH = "\u2013"


@dataclass(frozen=True)
class ModelCard:
    """Everything a model card shows about one registered version.

    Attributes:
        lineage: The version's lineage (``ws.registry.lineage``): model, run, data, code.
        registered_model: The registered model: its description, tags and dates.
        evaluations: The evaluations of the version's run, newest first.
        gates: The gates of the version's run, newest first.
        champions: The run id of each version of the same model to its URI, to name a
            gate's champion by version.
        generated: When the card was gathered.
    """

    lineage: Lineage
    registered_model: RegisteredModel
    evaluations: list[Evaluation] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)
    champions: dict[str, str] = field(default_factory=dict)
    generated: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def name(self) -> str:
        return str(self.lineage.model["name"])

    @property
    def version(self) -> int:
        return int(self.lineage.model["version"])

    @property
    def uri(self) -> str:
        return str(self.lineage.model["uri"])

    @property
    def fields(self) -> dict[str, str]:
        """The owner's ``card.*`` fields without the prefix; the version's tags win."""
        found: dict[str, str] = {}
        for tags in (self.registered_model.tags, self.lineage.model["tags"]):
            for key, value in tags.items():
                name = key.removeprefix(CARD_TAG_PREFIX)
                if key.startswith(CARD_TAG_PREFIX) and name and value.strip():
                    found[name] = value.strip()
        return found

    @property
    def missing_fields(self) -> list[str]:
        """The known fields (prose and contact) the owner has not stated."""
        stated = self.fields
        return [name for name in (*KNOWN_FIELDS, *CONTACT_FIELDS) if name not in stated]

    def to_markdown(self) -> str:
        """The card as Markdown; user text cannot open HTML tags in it."""
        return _render_markdown(self)

    def to_html(self) -> str:
        """The card as one self-contained, offline HTML page."""
        return _render_html(self)

    def write(self, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Writes ``<name>-v<version>.md`` and ``.html`` into ``folder`` (made if missing);
        returns both paths, Markdown first."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-v{self.version}"
        markdown, page = target / f"{stem}.md", target / f"{stem}.html"
        markdown.write_text(self.to_markdown(), encoding="utf-8", newline="\n")
        page.write_text(self.to_html(), encoding="utf-8", newline="\n")
        return markdown, page


def model_card(workspace: Workspace, ref: Any) -> ModelCard:
    """The model card of a registered version.

    Example:
        >>> card = model_card(ws, "models:/churn/7")
        >>> markdown_path, html_path = card.write("cards")

    Args:
        workspace: The workspace holding the registry.
        ref: Anything ``ws.registry.get`` takes: ``"models:/churn/7"``,
            ``"models:/churn@production"``, a ModelVersion.
    """
    from loopml.evaluation import evaluations, gates

    version = workspace.registry.get(ref)
    return ModelCard(
        lineage=workspace.registry.lineage(version),
        registered_model=workspace.registry.model(version.name),
        evaluations=evaluations(workspace, version.run_id)[::-1],
        gates=gates(workspace, version.run_id)[::-1],
        champions={v.run_id: v.uri for v in workspace.registry.versions(version.name)},
    )


# -- the content, as blocks both renderers lay out -------------------------------------------
@dataclass(frozen=True)
class _Mark:
    """Inline text with a meaning: ``code``, ``pass``, ``fail`` or ``gap``."""

    text: str
    style: str


_Inline = str | _Mark


@dataclass(frozen=True)
class _Text:
    parts: tuple[_Inline, ...]
    style: str = ""  # "", "muted", "warn" or "prose" (the owner's text, line breaks kept)


@dataclass(frozen=True)
class _Heading:
    text: str


@dataclass(frozen=True)
class _Facts:
    pairs: list[tuple[str, _Inline]]


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    rows: list[list[_Inline]]
    numeric: frozenset[int] = frozenset()  # right-aligned column positions


@dataclass(frozen=True)
class _List:
    items: list[_Inline]
    summary: str  # shown folded under this summary in HTML


_Block = _Text | _Heading | _Facts | _Table | _List


@dataclass(frozen=True)
class _Section:
    title: str
    blocks: list[_Block]


def _p(*parts: _Inline, style: str = "") -> _Text:
    return _Text(parts, style)


def _code(text: str) -> _Mark:
    return _Mark(text, "code")


def _num(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return _DASH if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _DASH if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _when(iso: str | None) -> str:
    return iso.replace("T", " ").replace("+00:00", " UTC") if iso else _DASH


def _when_ms(ms: int | None) -> str:
    if ms is None:
        return _DASH
    return _when(datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds"))


def _headline(evaluation: Evaluation) -> str | None:
    headline = evaluation.settings.get("headline")
    return str(headline) if headline in evaluation.metrics else None


def _sections(card: ModelCard) -> list[_Section]:
    return [
        _details(card),
        *_owner_sections(card),
        _training_data(card),
        _training(card),
        _evaluations(card),
        _gates(card),
        _alias_history(card),
        _signature(card),
        _requirements(card),
    ]


def _details(card: ModelCard) -> _Section:
    model, run, fields = card.lineage.model, card.lineage.run, card.fields
    pairs: list[tuple[str, _Inline]] = [
        ("Model", model["name"]),
        ("Version", str(model["version"])),
        ("Aliases", ", ".join(f"@{alias}" for alias in model["aliases"]) or "none"),
    ]
    for key, label in CONTACT_FIELDS.items():
        pairs.append((label, fields[key] if key in fields else _Mark(NOT_STATED, "gap")))
    registered = card.registered_model
    pairs += [
        ("Registered", f"{_when(model['created'])} by {model['created_by'] or 'unknown'}"),
        (
            "Model created",
            f"{_when(registered.created.isoformat(timespec='seconds'))} by "
            f"{registered.created_by or 'unknown'}",
        ),
        ("Flavor", model["flavor"]),
        ("Class", _code(model["class"]) if model["class"] else "unknown"),
        ("Registered from", model["source"]),
        ("Training run", f"{run['name']} ({run['id']}) in {run['experiment']}, {run['status']}"),
        ("Trained", f"{_when(run['started'])} to {_when(run['ended'])} by {run['user'] or '?'}"),
    ]
    if card.lineage.code:
        dirty = " (uncommitted changes)" if card.lineage.code["dirty"] else ""
        pairs.append(("Code", f"git {card.lineage.code['commit']}{dirty}"))
    environment = card.lineage.environment
    pairs.append(("Environment", f"Python {environment['python']} on {environment['platform']}"))
    if model["parent"]:
        pairs.append(("Retrained from", model["parent"]))
    pairs.append(("Bundle manifest", _code(f"sha256:{model['manifest_sha256']}")))
    return _Section("Model details", [_Facts(pairs)])


def _owner_sections(card: ModelCard) -> list[_Section]:
    fields = card.fields
    sections: list[_Section] = []
    for key, title in KNOWN_FIELDS.items():
        if key in fields:
            sections.append(_Section(title, [_p(fields[key], style="prose")]))
            continue
        example = f'ws.registry.set_tags("{card.name}", {{"{CARD_TAG_PREFIX}{key}": "..."}})'
        hint = _p("The owner sets it with ", _code(example), ".", style="muted")
        sections.append(_Section(title, [_p(_Mark(NOT_STATED, "gap")), hint]))
    for key in sorted(set(fields) - {*KNOWN_FIELDS, *CONTACT_FIELDS}):
        title = re.sub(r"[._\-\s]+", " ", key).strip().capitalize() or key
        sections.append(_Section(title, [_p(fields[key], style="prose")]))
    return sections


def _training_data(card: ModelCard) -> _Section:
    datasets = card.lineage.datasets
    if not datasets:
        return _Section(
            "Training data",
            [_p(_Mark("The run recorded no dataset inputs: the training data is unknown.", "gap"))],
        )

    def order(dataset: dict[str, Any]) -> tuple[int, str]:
        role = dataset["role"]
        rank = _ROLE_ORDER.index(role) if role in _ROLE_ORDER else len(_ROLE_ORDER)
        return rank, dataset["ref"]

    rows: list[list[_Inline]] = [
        [
            _code(d["ref"]),
            d["role"],
            _num(d["rows"]),
            _num(d["columns"]),
            d["source"],
            f"v{d['contract_version']}" if d["contract_version"] else "none",
            _code(d["content_hash"][:16]),
        ]
        for d in sorted(datasets, key=order)
    ]
    columns = ["Dataset", "Role", "Rows", "Columns", "Source", "Contract", "Content hash"]
    return _Section(
        "Training data",
        [
            _p("Dataset versions the model's run read, by role.", style="muted"),
            _Table(columns, rows, frozenset({2, 3})),
        ],
    )


def _training(card: ModelCard) -> _Section:
    run = card.lineage.run
    blocks: list[_Block] = []
    params = sorted(run["params"].items())
    if params:
        shown = params[:_MAX_PARAMS]
        blocks.append(_Table(["Parameter", "Value"], [[k, str(v)] for k, v in shown]))
        if len(params) > len(shown):
            more = f"{len(params) - len(shown)} more parameters are on run {run['id']}."
            blocks.append(_p(more, style="muted"))
    # eval.* metrics repeat the evaluations below.
    metrics = sorted((k, v) for k, v in run["metrics"].items() if not k.startswith("eval."))
    if metrics:
        blocks.append(
            _Table(["Training metric", "Value"], [[k, _num(v)] for k, v in metrics], frozenset({1}))
        )
    if not blocks:
        blocks.append(_p(_Mark("The run logged no parameters or metrics.", "gap")))
    return _Section("Training", blocks)


def _evaluations(card: ModelCard) -> _Section:
    if not card.evaluations:
        command = f"loopml evaluate {card.uri} --data <dataset> --target <column>"
        return _Section(
            "Evaluations",
            [
                _p(_Mark("No evaluations are recorded for this version.", "gap")),
                _p("Evaluate it with ", _code(command + " --slice <column> --sensitive <column>")),
            ],
        )
    blocks: list[_Block] = []
    shown = card.evaluations[:_MAX_EVALUATIONS]
    if len(card.evaluations) > len(shown):
        older = len(card.evaluations) - len(shown)
        blocks.append(_p(f"The newest {len(shown)} evaluations; {older} older ones are stored."))
    trained_on = {
        d["content_hash"] for d in card.lineage.datasets if d["role"] in ("train", "valid")
    }
    for evaluation in shown:
        blocks += _evaluation(evaluation, trained_on)
    return _Section("Evaluations", blocks)


def _evaluation(evaluation: Evaluation, trained_on: set[str]) -> list[_Block]:
    settings = evaluation.settings
    data = evaluation.dataset or "a DataFrame"
    blocks: list[_Block] = [
        _Heading(
            f"Evaluation {(evaluation.evaluation_id or '?')[:8]} on {data}: "
            f"{evaluation.n_rows:,} rows, {_when_ms(evaluation.created_at)}"
        )
    ]
    if settings.get("dataset_hash") in trained_on:
        blocks.append(
            _p(
                f"{data} is a dataset version the model was trained on: these metrics may be "
                "optimistic.",
                style="warn",
            )
        )
    headline = _headline(evaluation)
    names = sorted(evaluation.metrics, key=lambda name: name != headline)
    rows: list[list[_Inline]] = []
    for name in names:
        interval = evaluation.intervals.get(name)
        low_high = f"{_num(interval[0])} to {_num(interval[1])}" if interval else _DASH
        label = f"{name} (headline)" if name == headline else name
        rows.append([label, _num(evaluation.metrics[name]), low_high])
    blocks.append(_Table(["Metric", "Value", "95% interval"], rows, frozenset({1, 2})))
    blocks += _slices(evaluation)
    blocks += _fairness(evaluation)
    blocks += _robustness(evaluation)
    if evaluation.importance:
        top = list(evaluation.importance.items())[:_MAX_IMPORTANCE]
        blocks.append(
            _Table(
                ["Feature (permutation importance)", "Mean", "Std"],
                [[name, _num(v.get("mean")), _num(v.get("std"))] for name, v in top],
                frozenset({1, 2}),
            )
        )
    return blocks


def _slices(evaluation: Evaluation) -> list[_Block]:
    frame = evaluation.slices
    columns = evaluation.settings.get("slices") or []
    if frame.empty:
        if columns:
            size = evaluation.settings.get("min_slice_size")
            return [
                _p(f"No slice of {', '.join(columns)} had at least {size} rows.", style="muted")
            ]
        return [
            _p(
                _Mark("Not sliced.", "gap"),
                " Evaluate with ",
                _code("--slice <column>"),
                " (slices= in Python) to see where the model is worst.",
            )
        ]
    metrics = [str(c) for c in frame.columns if c not in ("column", "value", "n")]
    rows: list[list[_Inline]] = [
        [
            str(row["column"]),
            str(row["value"]),
            _num(int(row["n"])),
            *(_num(row[m]) for m in metrics),
        ]
        for row in frame.head(_MAX_SLICES).to_dict(orient="records")
    ]
    shown = min(len(frame), _MAX_SLICES)
    return [
        _p(f"Worst slices, worst first ({shown} of {len(frame)}):", style="muted"),
        _Table(["Column", "Slice", "Rows", *metrics], rows, frozenset(range(2, 3 + len(metrics)))),
    ]


def _fairness(evaluation: Evaluation) -> list[_Block]:
    fairness = evaluation.fairness
    if not fairness:
        return [
            _p(
                _Mark("No fairness analysis.", "gap"),
                " Evaluate with ",
                _code("--sensitive <column>"),
                " (sensitive= in Python).",
            )
        ]
    differences: list[tuple[str, _Inline]] = [("Sensitive column", str(fairness["column"]))]
    differences += [
        (key.replace("_", " ").capitalize().replace("Mae ", "MAE "), _num(value))
        for key, value in fairness.items()
        if key not in ("column", "by_group")
    ]
    groups: dict[str, dict[str, Any]] = fairness.get("by_group") or {}
    metrics = list(dict.fromkeys(m for values in groups.values() for m in values if m != "n"))
    rows: list[list[_Inline]] = [
        [group, _num(int(values.get("n") or 0)), *(_num(values.get(m)) for m in metrics)]
        for group, values in groups.items()
    ]
    headers = ["Group", "Rows", *(m.replace("_", " ") for m in metrics)]
    return [
        _p(
            "Fairness: differences are the spread (largest minus smallest) across groups; "
            "0 is parity.",
            style="muted",
        ),
        _Facts(differences),
        _Table(headers, rows, frozenset(range(1, 2 + len(metrics)))),
    ]


def _robustness(evaluation: Evaluation) -> list[_Block]:
    if not evaluation.robustness:
        return []
    rows: list[list[_Inline]] = [
        [
            str(r.get("perturbation")),
            str(r.get("metric")),
            _num(r.get("baseline")),
            _num(r.get("value")),
            _num(r.get("degradation")),
            str(r.get("error") or ""),
        ]
        for r in evaluation.robustness
    ]
    return [
        _p(
            "Robustness: the headline metric on perturbed inputs (degradation > 0 is worse).",
            style="muted",
        ),
        _Table(
            ["Perturbation", "Metric", "Baseline", "Perturbed", "Degradation", "Note"],
            rows,
            frozenset({2, 3, 4}),
        ),
    ]


def _gates(card: ModelCard) -> _Section:
    if not card.gates:
        return _Section(
            "Gates",
            [
                _p(
                    _Mark("No gate has judged this version.", "gap"),
                    " Run ",
                    _code(f"loopml gate {card.uri} <policy.yaml>"),
                    ".",
                ),
            ],
        )
    blocks: list[_Block] = []
    for gate in card.gates[:_MAX_GATES]:
        champion = gate.champion_run_id
        against = card.champions.get(champion, f"run {champion[:8]}") if champion else "no champion"
        verdict = "passed" if gate.passed else "failed"
        blocks.append(
            _Heading(
                f"Gate {(gate.gate_id or '?')[:8]} {verdict} against {against} on "
                f"{gate.dataset or 'a DataFrame'}, {_when_ms(gate.created_at)}"
            )
        )
        rows: list[list[_Inline]] = [
            [
                _code(check.expression),
                _num(check.value),
                _num(check.threshold),
                _Mark("pass" if check.passed else "fail", "pass" if check.passed else "fail"),
                check.note,
            ]
            for check in gate.checks
        ]
        blocks.append(
            _Table(["Check", "Value", "Threshold", "Verdict", "Note"], rows, frozenset({1, 2}))
        )
    if len(card.gates) > _MAX_GATES:
        blocks.append(_p(f"{len(card.gates) - _MAX_GATES} older gates are stored.", style="muted"))
    return _Section("Gates", blocks)


def _alias_history(card: ModelCard) -> _Section:
    events = card.lineage.events[-_MAX_EVENTS:]
    if not events:
        return _Section("Alias history", [_p("This version has never held an alias.")])
    rows: list[list[_Inline]] = [
        [
            _when(e["time"]),
            e["action"] + (" (forced)" if e["forced"] else ""),
            f"@{e['alias']}",
            _num(e["from_version"]),
            _num(e["to_version"]),
            e["user"] or "?",
            ", ".join(e["approvals"]),
            e["reason"] or "",
        ]
        for e in events
    ]
    columns = ["Time", "Action", "Alias", "From", "To", "By", "Approved by", "Reason"]
    return _Section("Alias history", [_Table(columns, rows, frozenset({3, 4}))])


def _signature(card: ModelCard) -> _Section:
    signature = card.lineage.model["signature"] or {}
    inputs = signature.get("inputs")
    blocks: list[_Block] = []
    if inputs is None:
        blocks.append(
            _p(
                _Mark("No input signature: the bundle checks no input columns.", "gap"),
                " Log the model with signature= or input_example= to record one.",
            )
        )
    else:
        rows: list[list[_Inline]] = [
            [str(c["name"]), str(c["type"]), "yes" if c.get("nullable", True) else "no"]
            for c in inputs
        ]
        blocks.append(_Table(["Input column", "Type", "Nullable"], rows))
    outputs = signature.get("outputs")
    if outputs:
        pairs: list[tuple[str, _Inline]] = [
            ("Output", f"{outputs.get('name', 'prediction')} ({outputs.get('type', '?')})")
        ]
        if outputs.get("classes") is not None:
            pairs.append(("Classes", ", ".join(map(str, outputs["classes"]))))
        pairs.append(("predict_proba", "yes" if outputs.get("predict_proba") else "no"))
        blocks.append(_Facts(pairs))
    return _Section("Input signature", blocks)


def _requirements(card: ModelCard) -> _Section:
    pins = [str(pin) for pin in card.lineage.model["requirements"]]
    if not pins:
        return _Section("Requirements", [_p(_Mark("The bundle pins no requirements.", "gap"))])
    items: list[_Inline] = [_code(pin) for pin in pins]
    return _Section("Requirements", [_List(items, f"{len(pins)} pinned packages")])


def _title(card: ModelCard) -> str:
    return f"Model card: {card.name} v{card.version}"


def _intro(card: ModelCard) -> list[_Text]:
    about = card.registered_model.description
    notes = card.lineage.model["description"]
    blocks = [_p(about, style="prose")] if about else []
    if notes and notes != about:
        blocks.append(_p(f"This version: {notes}", style="prose"))
    return blocks or [_p(_Mark("No description.", "gap"))]


def _footer(card: ModelCard) -> str:
    return (
        f"Generated by loopml at {_when(card.generated.isoformat(timespec='seconds'))} from "
        f"the lineage, evaluations and gates of {card.uri}; the owner's fields are the model's "
        f"{CARD_TAG_PREFIX}* tags."
    )


# -- Markdown ---------------------------------------------------------------------------------
def _render_markdown(card: ModelCard) -> str:
    lines = [f"# {_md_line(_title(card))}", ""]
    for text in _intro(card):
        lines += [*_md_block(text), ""]
    for section in _sections(card):
        lines += [f"## {_md_line(section.title)}", ""]
        for block in section.blocks:
            lines += [*_md_block(block), ""]
    lines += ["---", "", f"_{_md_line(_footer(card))}_"]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def _md_line(text: str) -> str:
    """User text on one line; ``<`` is escaped so it cannot open an HTML tag."""
    return _one_line(text).replace("<", "&lt;")


def _md_inline(part: _Inline, cell: bool = False) -> str:
    if isinstance(part, str):
        text = _md_line(part)
    elif part.style == "code" and "`" not in part.text:
        text = f"`{_one_line(part.text)}`"  # a code span shows its text literally
    elif part.style in ("pass", "fail"):
        text = f"**{_md_line(part.text)}**"
    elif part.style == "gap":
        text = f"*{_md_line(part.text)}*"
    else:
        text = _md_line(part.text)
    return text.replace("|", "\\|") if cell else text


def _md_block(block: _Block) -> list[str]:
    if isinstance(block, _Heading):
        return [f"### {_md_line(block.text)}"]
    if isinstance(block, _Text):
        if block.style == "prose":
            return [
                line.rstrip().replace("<", "&lt;")
                for part in block.parts
                for line in (part if isinstance(part, str) else part.text).splitlines()
            ]
        text = "".join(_md_inline(part) for part in block.parts)
        return [f"> **Note:** {text}" if block.style == "warn" else text]
    if isinstance(block, _Facts):
        return _md_table(["Detail", "Value"], [[label, value] for label, value in block.pairs])
    if isinstance(block, _Table):
        return _md_table(block.columns, block.rows, block.numeric)
    return [f"{block.summary}:", "", *(f"- {_md_inline(item)}" for item in block.items)]


def _md_table(
    columns: list[str], rows: Iterable[list[_Inline]], numeric: frozenset[int] = frozenset()
) -> list[str]:
    rule = ["---:" if i in numeric else "---" for i in range(len(columns))]
    lines = [
        "| " + " | ".join(_md_inline(c, cell=True) for c in columns) + " |",
        "| " + " | ".join(rule) + " |",
    ]
    lines += ["| " + " | ".join(_md_inline(c, cell=True) for c in row) + " |" for row in rows]
    return lines


# -- HTML -------------------------------------------------------------------------------------
def _render_html(card: ModelCard) -> str:
    sections = _sections(card)
    anchors = _anchors(sections)
    navigation = "".join(
        f'<a href="#{anchor}">{html.escape(s.title)}</a>'
        for s, anchor in zip(sections, anchors, strict=True)
    )
    body = "".join(
        f'<section class="section" id="{anchor}"><h2>{html.escape(s.title)}</h2>'
        f'<div class="card">{"".join(_html_block(b) for b in s.blocks)}</div></section>'
        for s, anchor in zip(sections, anchors, strict=True)
    )
    intro = "".join(_html_block(text) for text in _intro(card))
    title = html.escape(_title(card))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body>\n<main class="page">\n<header class="page-header"><h1>{title}</h1>'
        f'<div class="intro">{intro}</div>{_tiles(card)}'
        f'<nav class="toc">{navigation}</nav></header>\n{body}\n'
        f'<footer class="footer">{html.escape(_footer(card))} This page holds summaries, '
        "no data rows, and works offline.</footer>\n</main>\n</body>\n</html>\n"
    )


def _anchors(sections: list[_Section]) -> list[str]:
    """An id per section from its title, unique even when owner fields repeat a title."""
    anchors: list[str] = []
    for section in sections:
        base = re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-") or "section"
        anchor, count = base, 1
        while anchor in anchors:
            count += 1
            anchor = f"{base}-{count}"
        anchors.append(anchor)
    return anchors


def _tiles(card: ModelCard) -> str:
    tiles = [(f"v{card.version}", "version")]
    aliases = card.lineage.model["aliases"]
    tiles.append((" ".join(f"@{a}" for a in aliases) if aliases else _DASH, "aliases"))
    newest = card.evaluations[0] if card.evaluations else None
    headline = _headline(newest) if newest else None
    if newest is not None and headline is not None:
        tiles.append((_num(newest.metrics[headline]), f"{headline}, newest evaluation"))
    else:
        tiles.append((_DASH, "no evaluation"))
    if card.gates:
        tiles.append(("passed" if card.gates[0].passed else "failed", "newest gate"))
    else:
        tiles.append((_DASH, "no gate"))
    total = len(KNOWN_FIELDS) + len(CONTACT_FIELDS)
    tiles.append((f"{total - len(card.missing_fields)} of {total}", "owner fields stated"))
    return (
        '<div class="tiles">'
        + "".join(
            f'<div class="tile"><div class="tile-value">{html.escape(value)}</div>'
            f'<div class="tile-label">{html.escape(label)}</div></div>'
            for value, label in tiles
        )
        + "</div>"
    )


def _html_inline(part: _Inline) -> str:
    if isinstance(part, str):
        return html.escape(part)
    tag = "code" if part.style == "code" else "span"
    return f'<{tag} class="mark-{part.style}">{html.escape(part.text)}</{tag}>'


def _html_block(block: _Block) -> str:
    if isinstance(block, _Heading):
        return f"<h3>{html.escape(block.text)}</h3>"
    if isinstance(block, _Text):
        return f'<p class="{block.style}">{"".join(_html_inline(p) for p in block.parts)}</p>'
    if isinstance(block, _Facts):
        facts = "".join(
            f"<tr><th>{html.escape(label)}</th><td>{_html_inline(value)}</td></tr>"
            for label, value in block.pairs
        )
        return f'<table class="facts"><tbody>{facts}</tbody></table>'
    if isinstance(block, _Table):
        head = "".join(
            f'<th class="{"num" if i in block.numeric else ""}">{html.escape(c)}</th>'
            for i, c in enumerate(block.columns)
        )
        rows = "".join(
            "<tr>"
            + "".join(
                f'<td class="{"num" if i in block.numeric else ""}">{_html_inline(c)}</td>'
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in block.rows
        )
        return (
            f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
    return (
        f"<details><summary>{html.escape(block.summary)}</summary>"
        f'<ul class="pins">{items}</ul></details>'
    )


# The look of loopml's other offline reports (see loopml.data's profile page).
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: #1f2933; font: 14px/1.5 FONT; }
.page { max-width: 1080px; margin: 0 auto; padding: 28px 24px 40px; }
h1 { font-size: 24px; margin: 0 0 10px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14.5px; margin: 18px 0 8px; }
h3:first-child { margin-top: 0; }
.section { margin-top: 24px; scroll-margin-top: 12px; }
.intro p { margin: 0 0 8px; max-width: 80ch; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0 12px; }
.tile { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 12px 18px;
  min-width: 140px; }
.tile-value { font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile-label { color: #64707d; font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.05em; }
.toc { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 13px; }
.toc a { color: #2a56ad; text-decoration: none; }
.toc a:hover { text-decoration: underline; }
.card { background: #fff; border: 1px solid #e2e6ec; border-radius: 10px; padding: 14px 16px;
  min-width: 0; }
.card > p { margin: 0 0 8px; }
.muted { color: #64707d; font-size: 12.5px; }
.prose { white-space: pre-line; max-width: 80ch; }
.warn { background: #fdf3e2; border-left: 3px solid #d9892b; padding: 6px 10px;
  border-radius: 4px; }
.mark-gap { color: #b35015; font-style: italic; }
.mark-pass { color: #1b7a4f; font-weight: 600; }
.mark-fail { color: #c0392b; font-weight: 600; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #f1f3f6; border-radius: 4px; padding: 0 4px; word-break: break-all; }
.table-wrap { overflow-x: auto; border: 1px solid #e2e6ec; border-radius: 8px;
  margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 6px 12px; text-align: left; border-bottom: 1px solid #eef1f4;
  vertical-align: top; }
thead th { background: #f8f9fb; color: #56616d; font-weight: 600; font-size: 12px;
  white-space: nowrap; }
tbody tr:last-child td, tbody tr:last-child th { border-bottom: none; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts { margin: 0 0 12px; }
table.facts th { width: 190px; color: #64707d; font-weight: 600; font-size: 12.5px; }
details summary { cursor: pointer; color: #2a56ad; }
.pins { columns: 3 220px; margin: 8px 0 0; padding-left: 18px; }
.footer { margin-top: 32px; color: #8a949f; font-size: 12px; text-align: center; }
""".replace("FONT", _FONT)
