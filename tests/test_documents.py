"""The documents' relative links reach a file, and their anchors a heading, as GitHub renders them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "benchmarks/README.md", "benchmarks/RESULTS.md", "benchmarks/NOTEBOOK.md"]
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces as
    hyphens, and a repeated one numbered from -1."""
    seen: dict[str, int] = {}
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
            if seen[slug]:
                seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def test_anchors_follow_githubs_rule_for_punctuation_code_and_repeats():
    text = "# How `history` came to be (issue 19, version 2)\n## p = 0.3\n### resnet20 0.2\n### resnet20 0.2\n"
    assert anchors(text) == {"how-history-came-to-be-issue-19-version-2", "p--03", "resnet20-02", "resnet20-02-1"}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_reaches_a_file_and_every_anchor_a_heading(document):
    path = REPO / document
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{target}: no such heading")
    assert broken == [], f"{document}: {broken}"
