"""Drawing a pipeline's DAG: a Rich tree for the terminal, Mermaid, and offline HTML (SVG).

Each takes the stored graph (``PipelineRun.graph`` or ``Graph.to_dict()``) and, for a
run, its step runs, so the drawing shows each step's state, time and cache key.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.tree import Tree

    from loopml.pipelines.records import StepRun

__all__ = ["STATUS_STYLES", "step_label", "to_html", "to_mermaid", "to_tree"]

STATUS_STYLES = {
    "PENDING": "dim",
    "RUNNING": "cyan",
    "SUCCEEDED": "green",
    "CACHED": "blue",
    "FAILED": "bold red",
    "SKIPPED": "yellow",
    "WAITING": "bold yellow",
}
_FILL = {
    "PENDING": "#eeeeee",
    "RUNNING": "#d0ecf7",
    "SUCCEEDED": "#d4f7d4",
    "CACHED": "#dbe4ff",
    "FAILED": "#ffd6d6",
    "SKIPPED": "#fff3c4",
    "WAITING": "#ffd98a",
}


def _parents(spec: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*spec.get("inputs", {}).values(), *spec.get("after", [])]))


def step_label(name: str, step: StepRun | None) -> str:
    """``name  STATUS 1.2s  key 1a2b3c4d`` (plain text)."""
    if step is None:
        return name
    parts = [name, step.status]
    if step.seconds is not None and step.status != "CACHED":
        parts.append(f"{step.seconds:.2f}s")
    if step.cache_key:
        parts.append(f"key {step.cache_key[:8]}")
    if step.attempts > 1:
        parts.append(f"{step.attempts} attempts")
    return "  ".join(parts)


def to_tree(graph: dict[str, Any], steps: Sequence[StepRun] = (), title: str = "") -> Tree:
    """The DAG as a Rich tree: roots at the top, each step under its first parent; a step
    with more parents is repeated under the others as a reference (``↑ name``)."""
    from rich.markup import escape
    from rich.tree import Tree

    specs = graph.get("steps", [])
    by_step = {s.step: s for s in steps}
    children: dict[str, list[str]] = {spec["name"]: [] for spec in specs}
    first_parent: dict[str, str] = {}
    for spec in specs:
        for parent in _parents(spec):
            children.setdefault(parent, []).append(spec["name"])
            first_parent.setdefault(spec["name"], parent)
    root = Tree(f"[bold]{escape(title or graph.get('name', 'pipeline'))}[/]")

    def label(name: str) -> str:
        step = by_step.get(name)
        text = escape(step_label(name, step))
        if step is not None:
            text = text.replace(
                step.status, f"[{STATUS_STYLES.get(step.status, '')}]{step.status}[/]", 1
            )
            if step.error and step.status in ("FAILED", "SKIPPED", "WAITING"):
                text += f"\n[dim]{escape(step.error.splitlines()[0][:160])}[/]"
        return text

    def add(branch: Tree, name: str) -> None:
        node = branch.add(label(name))
        for child in children.get(name, []):
            if first_parent.get(child) == name:
                add(node, child)
            else:
                node.add(f"[dim]↑ {escape(child)} (also under {escape(first_parent[child])})[/]")

    for spec in specs:
        if spec["name"] not in first_parent:
            add(root, spec["name"])
    return root


def to_mermaid(graph: dict[str, Any], steps: Sequence[StepRun] = ()) -> str:
    """A Mermaid flowchart (paste into Markdown, GitHub renders it)."""
    specs = graph.get("steps", [])
    ids = {spec["name"]: f"s{i}" for i, spec in enumerate(specs)}
    by_step = {s.step: s for s in steps}
    lines = ["flowchart TD"]
    for spec in specs:
        name = spec["name"]
        text = step_label(name, by_step.get(name)).replace("  ", "<br/>", 1).replace('"', "'")
        lines.append(f'    {ids[name]}["{text}"]')
    for spec in specs:
        for argument, parent in spec.get("inputs", {}).items():
            lines.append(f"    {ids[parent]} -->|{argument}| {ids[spec['name']]}")
        for parent in spec.get("after", []):
            lines.append(f"    {ids[parent]} -.-> {ids[spec['name']]}")
    used = sorted({s.status for s in steps})
    for status in used:
        lines.append(f"    classDef {status} fill:{_FILL.get(status, '#fff')},stroke:#555")
    for spec in specs:
        step = by_step.get(spec["name"])
        if step is not None:
            lines.append(f"    class {ids[spec['name']]} {step.status}")
    return "\n".join(lines) + "\n"


def _layers(specs: list[dict[str, Any]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for spec in specs:  # stored in topological order
        parents = _parents(spec)
        depth[spec["name"]] = 1 + max((depth.get(p, 0) for p in parents), default=-1)
    return depth


def to_html(graph: dict[str, Any], steps: Sequence[StepRun] = (), title: str = "") -> str:
    """A self-contained HTML page (no scripts, works offline): the DAG as SVG, and a table
    of the steps with their state, time, cache key and error."""
    specs = graph.get("steps", [])
    by_step = {s.step: s for s in steps}
    depth = _layers(specs)
    rows: dict[int, list[str]] = {}
    for spec in specs:
        rows.setdefault(depth[spec["name"]], []).append(spec["name"])
    box_w, box_h, gap_x, gap_y = 200, 48, 40, 50
    width = max((len(r) for r in rows.values()), default=1) * (box_w + gap_x) + gap_x
    height = len(rows) * (box_h + gap_y) + gap_y
    where: dict[str, tuple[int, int]] = {}
    for level, names in rows.items():
        for index, name in enumerate(names):
            where[name] = (gap_x + index * (box_w + gap_x), gap_y + level * (box_h + gap_y))
    shapes: list[str] = []
    for spec in specs:
        x, y = where[spec["name"]]
        for parent in _parents(spec):
            px, py = where[parent]
            shapes.append(
                f'<line x1="{px + box_w // 2}" y1="{py + box_h}" x2="{x + box_w // 2}" y2="{y}" '
                'stroke="#777" marker-end="url(#arrow)"/>'
            )
    for spec in specs:
        name = spec["name"]
        x, y = where[name]
        step = by_step.get(name)
        fill = _FILL.get(step.status, "#fff") if step else "#fff"
        detail = step.status if step else spec.get("function", "")
        if step is not None and step.seconds is not None and step.status != "CACHED":
            detail += f" {step.seconds:.2f}s"
        shapes.append(
            f'<g><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" '
            f'stroke="#555"/><text x="{x + 10}" y="{y + 20}" font-weight="bold">'
            f'{html.escape(name)}</text><text x="{x + 10}" y="{y + 38}" font-size="11">'
            f"{html.escape(detail[:34])}</text></g>"
        )
    table = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (
                spec["name"],
                spec.get("function", ""),
                by_step[spec["name"]].status if spec["name"] in by_step else "",
                f"{by_step[spec['name']].seconds:.3f}"
                if spec["name"] in by_step and by_step[spec["name"]].seconds is not None
                else "",
                (by_step[spec["name"]].cache_key or "")[:12] if spec["name"] in by_step else "",
                (by_step[spec["name"]].error or "") if spec["name"] in by_step else "",
            )
        )
        + "</tr>"
        for spec in specs
    )
    name = html.escape(title or graph.get("name", "pipeline"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{name}</title><style>body{{font-family:Helvetica,Arial,sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "font-size:13px;text-align:left}text{font-family:Helvetica,Arial,sans-serif}</style>"
        f"</head><body><h1>{name}</h1>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker>'
        f"</defs>{''.join(shapes)}</svg>"
        "<table><tr><th>step</th><th>function</th><th>status</th><th>seconds</th>"
        f"<th>cache key</th><th>error</th></tr>{table}</table></body></html>\n"
    )
