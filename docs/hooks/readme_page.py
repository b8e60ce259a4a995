"""MkDocs hook: the site's first page is the README's first part, so the two cannot drift.

A newcomer meets the project either on its repository page (the README) or in this site; both
must say the same prerequisites, the same two commands and the same tour. The marker
``<!-- readme -->`` in ``docs/index.md`` becomes the README from its first paragraph up to its
``## Architecture`` heading (the site has a page of its own for that). Links are written for the
repository's root in the README; here a link into ``docs/`` loses that prefix and a link to any
other file of the repository (the site cannot serve it) becomes its plain text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = "<!-- readme -->"
PAGE = "index.md"
README = Path(__file__).resolve().parents[2] / "README.md"
END = "\n## Architecture"
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def _relink(match: re.Match[str]) -> str:
    text, target = match.group(1), match.group(2)
    if "://" in target or target.startswith(("#", "mailto:")):
        return match.group(0)
    if target.startswith("docs/"):
        return f"[{text}]({target.removeprefix('docs/')})"
    return text


def readme_part(readme: str) -> str:
    """The README without its title line and from ``## Architecture`` on; links site-relative."""
    body = readme.split("\n", 1)[1] if readme.startswith("# ") else readme
    body = body.split(END, 1)[0]
    # a Markdown list needs a blank line before it outside GitHub; the README's has none
    body = re.sub(r"(\*\*[^*\n]+\*\*[^\n]*)\n- ", r"\1\n\n- ", body)
    return _LINK.sub(_relink, body).strip() + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook entry point: fill the marker on the first page."""
    if page.file.src_uri != PAGE or MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, readme_part(README.read_text()))
