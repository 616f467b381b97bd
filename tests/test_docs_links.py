"""Every relative link and image in README.md and docs/**/*.md points at a file or folder of the
repository (anchors are not checked; web addresses are left alone)."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md"),
         *sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))]
# [text](target) and ![alt](target), an optional "title" after the target; <img src="...">.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMG = re.compile(r"<img\s[^>]*src=\"([^\"]+)\"")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def targets(text: str) -> list[str]:
    text = FENCE.sub("", text)  # code blocks hold code, not links
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text) + IMG.findall(text)


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("#")


def test_the_pages_exist():
    assert os.path.exists(PAGES[0])
    assert len(PAGES) > 1, "docs/ holds no pages"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_and_image_exists(page):
    with open(page, encoding="utf-8") as f:
        text = f.read()
    missing = []
    for target in filter(is_relative, targets(text)):
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
        if not os.path.exists(resolved):
            missing.append(target)
    assert not missing, f"{os.path.relpath(page, ROOT)} links to missing files: {missing}"


def test_the_checker_sees_links_images_and_skips_code():
    text = ("[a](docs/x.md) ![b](img/y.png \"t\") [c](https://e.org) [d](#anchor)\n"
            "<img src=\"z.png\">\n```\n[e](not/a/link.md)\n```\n`[f](no.md)`")
    assert [t for t in targets(text) if is_relative(t)] == ["docs/x.md", "img/y.png", "z.png"]
