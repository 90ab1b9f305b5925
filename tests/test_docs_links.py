"""Every relative link and image in the README and ``docs/*.md`` points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    """Targets of Markdown links and images that are paths inside the repository (no URL, no anchor)."""
    targets = [m.group(1).split("#")[0] for m in LINK.finditer(text)]
    return [t for t in targets if t and not re.match(r"^[a-z]+:", t)]


def test_link_pattern_finds_links_and_images_but_not_urls():
    text = "see [a](docs/a.md#x), ![p](results/p.png) and [web](https://x.org/y)"
    assert relative_links(text) == ["docs/a.md", "results/p.png"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_resolve(document: Path):
    missing = [t for t in relative_links(document.read_text()) if not (document.parent / t).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"
