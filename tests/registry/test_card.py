"""Model cards: what a reviewer reads about a version, in Markdown and offline HTML."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import loopml
from loopml.evaluation import Evaluation
from loopml.registry.card import NOT_STATED, model_card
from tests.browser import chromium_page
from tests.evaluation._samples import binary_frame, binary_model
from tests.registry._samples import PASSING, gate, registered, trained

HOSTILE = '<script>alert("card")</script> & <img src=x onerror=alert(1)>'
SECTIONS = [
    "Model details",
    "Intended use",
    "Out-of-scope uses",
    "Limitations",
    "Ethical considerations",
    "<i>review</i>",  # unknown card.* tags: sections after the known ones, by key
    "Input signature",  # ... even when one repeats a title loopml uses
    "Training data",
    "Training",
    "Evaluations",
    "Gates",
    "Alias history",
    "Input signature",
    "Requirements",
]


@dataclass
class Churn:
    ws: loopml.Workspace
    evaluation: Evaluation  # of version 1, with slices and a sensitive column


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Churn]:
    """Version 1 gated, promoted and evaluated; version 2 retrained from it, never evaluated."""
    home = tmp_path_factory.mktemp("card")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)  # runs record the git state of the current folder
        ws = loopml.Workspace.open(home / "ws")
        registered(ws, 1)
        gate(ws, "models:/churn/1", PASSING, champion=None)
        ws.registry.promote("churn", 1, "production", reason="first model")
        evaluation = ws.evaluate(
            "models:/churn/1",
            data=binary_frame(600, seed=3),
            target="churned",
            slices=["region"],
            sensitive="gender",
            bootstrap=50,
        )
        ws.registry.set_description("churn", "Predicts which customers leave within 90 days.")
        ws.registry.set_tags(
            "churn",
            {
                "card.intended_use": "Rank customers for retention offers.\nWeekly batch.",
                "card.owner": "growth-ml",
                "card.ethical_considerations": HOSTILE,
                "card.<i>review</i>": "Reviewed by risk.",
                "card.input_signature": "Column meanings are in the data contract.",
                "team": "growth",  # not a card field
            },
        )
        ws.registry.register(trained(ws, c=3.0), name="churn", parent=1)
        ws.registry.set_tags("churn", {"card.limitations": "Not for new markets."}, version=2)
        yield Churn(ws, evaluation)
        ws.close()


def _section(markdown: str, title: str) -> str:
    """The Markdown of one ``## title`` section, up to the next one."""
    start = markdown.index(f"## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_sections_come_in_order_with_details_data_and_gates(churn: Churn) -> None:
    card = model_card(churn.ws, "models:/churn@production")
    markdown, page = card.to_markdown(), card.to_html()

    assert (card.name, card.version, card.uri) == ("churn", 1, "models:/churn/1")
    headings = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    assert headings == [title.replace("<", "&lt;") for title in SECTIONS]
    assert re.findall(r"<h2>(.*?)</h2>", page) == [
        title.replace("<", "&lt;").replace(">", "&gt;") for title in SECTIONS
    ]
    assert markdown.startswith("# Model card: churn v1\n\nPredicts which customers leave")
    details = _section(markdown, "Model details")
    assert "| Aliases | @production |" in details
    assert "| Owner | growth-ml |" in details
    assert "| Contact | *Not stated by the owner* |" in details
    assert f"({card.lineage.run['id']}) in churn" in details
    assert re.search(r"\| `churn@1` \| train \| 400 \| 5 \|", _section(markdown, "Training data"))
    assert "| C | 0.5 |" in _section(markdown, "Training")
    gates = _section(markdown, "Gates")
    assert "passed against no champion on churn@1" in gates
    assert "| `roc_auc >= 0.5` |" in gates and "**pass**" in gates
    assert "| promote | @production |" in _section(markdown, "Alias history")
    assert "scikit-learn==" in _section(markdown, "Requirements")
    assert "team" not in markdown.split("## Training data")[0]  # plain tags are not fields


def test_owner_fields_show_and_missing_ones_say_so(churn: Churn) -> None:
    first = model_card(churn.ws, "models:/churn/1")
    second = model_card(churn.ws, churn.ws.registry.get("models:/churn/2"))
    markdown = first.to_markdown()

    assert first.missing_fields == ["out_of_scope", "limitations", "contact"]
    assert "Rank customers for retention offers.\nWeekly batch." in _section(
        markdown, "Intended use"
    )
    for title in ("Out-of-scope uses", "Limitations"):
        section = _section(markdown, title)
        assert f"*{NOT_STATED}*" in section
        assert 'ws.registry.set_tags("churn", {"card.' in section  # says how to fill it
    assert "Reviewed by risk." in markdown
    assert first.to_html().count(NOT_STATED) == 3

    # A version's own card.* tag fills the field for that version only.
    assert "Not for new markets." in _section(second.to_markdown(), "Limitations")
    assert second.missing_fields == ["out_of_scope", "contact"]


def test_evaluations_show_intervals_the_worst_slice_fairness_and_robustness(
    churn: Churn,
) -> None:
    card = model_card(churn.ws, "models:/churn/1")
    markdown, page = card.to_markdown(), card.to_html()
    evaluation = churn.evaluation
    assert evaluation.evaluation_id is not None and evaluation.fairness is not None
    newest = _section(markdown, "Evaluations").split("### ")[1]

    assert newest.startswith(f"Evaluation {evaluation.evaluation_id[:8]} on a DataFrame: 600")
    low, high = evaluation.intervals["roc_auc"]
    auc = evaluation.metrics["roc_auc"]
    assert f"| roc_auc (headline) | {auc:.4g} | {low:.4g} to {high:.4g} |" in newest
    # The worst slice leads the slice table: the label is noise in the south.
    worst = evaluation.worst_slice["roc_auc"]
    assert (worst["column"], worst["value"]) == ("region", "south")
    rows = [line for line in newest.splitlines() if line.startswith("| region |")]
    assert rows[0].startswith(f"| region | south | {worst['n']} |")
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        number = f"{evaluation.fairness[key]:.4g}"
        assert number in newest and number in page
    assert "| Sensitive column | gender |" in newest
    rate = evaluation.fairness["by_group"]["f"]["selection_rate"]
    assert re.search(rf"\| f \| \d+ \| {rate:.4g} \|", newest)
    assert "| gaussian_noise | roc_auc |" in newest
    # The gate's evaluation ran on the training data version, and the card warns of it.
    older = _section(markdown, "Evaluations").split("### ")[2]
    assert "> **Note:** churn@1 is a dataset version the model was trained on" in older
    assert "*Not sliced.*" in older and "*No fairness analysis.*" in older


def test_a_version_without_evaluations_or_gates_says_so(churn: Churn) -> None:
    card = model_card(churn.ws, "models:/churn/2")
    markdown, page = card.to_markdown(), card.to_html()

    assert card.evaluations == [] and card.gates == []
    assert "*No evaluations are recorded for this version.*" in markdown
    assert "`loopml evaluate models:/churn/2 --data &lt;dataset>" not in markdown  # code is raw
    assert "`loopml evaluate models:/churn/2 --data <dataset> --target <column>" in markdown
    assert "*No gate has judged this version.*" in markdown
    assert "| Retrained from | models:/churn/1 |" in markdown
    assert "This version has never held an alias." in markdown
    assert "no evaluation" in page and "no gate" in page


def test_a_model_object_card_shows_its_signature_and_unknown_data(churn: Churn) -> None:
    frame = binary_frame(200)
    churn.ws.registry.register(
        binary_model(frame), name="plain", input_example=frame[["tenure", "spend"]].head(3)
    )
    markdown = model_card(churn.ws, "models:/plain/1").to_markdown()

    signature = _section(markdown, "Input signature")
    assert "| tenure | float |" in signature and "| spend | float |" in signature
    assert "| Classes | 0, 1 |" in signature
    assert "*The run recorded no dataset inputs" in _section(markdown, "Training data")
    assert markdown.count(f"*{NOT_STATED}*") == 6


def test_user_text_cannot_inject_markup(churn: Churn) -> None:
    card = model_card(churn.ws, "models:/churn/1")
    markdown, page = card.to_markdown(), card.to_html()

    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&quot;card&quot;)&lt;/script&gt; &amp; &lt;img" in page
    assert "<script" not in markdown and "<img" not in markdown
    assert '&lt;script>alert("card")&lt;/script> & &lt;img' in markdown


def test_write_names_both_files_after_the_version(churn: Churn, tmp_path: Path) -> None:
    card = model_card(churn.ws, "models:/churn/1")
    markdown, page = card.write(tmp_path / "cards" / "new")

    assert (markdown.name, page.name) == ("churn-v1.md", "churn-v1.html")
    assert markdown.read_text(encoding="utf-8") == card.to_markdown()
    assert page.read_text(encoding="utf-8") == card.to_html()
    assert page.stat().st_size < 60_000  # summaries only, no data rows, no scripts


def test_the_html_card_opens_offline_in_headless_chromium(churn: Churn, tmp_path: Path) -> None:
    _, page = model_card(churn.ws, "models:/churn/1").write(tmp_path)
    with chromium_page() as session:
        session.open(page)
        assert session.page.locator("h1").inner_text() == "Model card: churn v1"
        assert session.page.locator("h2").count() == len(SECTIONS)
        ids = session.page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
        assert len(set(ids)) == len(SECTIONS)  # every contents link reaches its own section
        assert session.page.locator("script, img").count() == 0  # the hostile tag stayed text
        assert HOSTILE in session.page.locator("#ethical-considerations").inner_text()
        assert session.errors() == []
        assert session.remote_requests() == []
