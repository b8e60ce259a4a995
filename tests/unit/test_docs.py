"""The documentation holds together: the MkDocs site builds with ``--strict`` (a broken link
between pages, a page missing from the nav or a bad anchor fails ``make test``, not a reader),
and the README stays the short first page it was cut down to, every relative link of it
pointing at a file that exists (GitHub shows those links; MkDocs never sees the README)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# [text](target) outside code; the target up to a space, a ')' or a '#' fragment
LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """Run the same build as ``make docs``, into a temporary directory so the tree stays clean."""
    mkdocs = Path(sys.executable).parent / "mkdocs"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_docs_config_fetches_nothing_from_the_internet() -> None:
    """``theme.font: false`` and no ``social``/``privacy`` plugin: the site builds and reads
    offline, as the node's own API docs do."""
    config = (ROOT / "mkdocs.yml").read_text()
    assert re.search(r"^\s+font: false$", config, re.M)
    for plugin in ("social", "privacy"):
        assert f"- {plugin}" not in config


def test_readme_is_short() -> None:
    """A newcomer's first page: everything else lives in docs/."""
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_relative_links_exist() -> None:
    """Every relative link of the README names a file of the repository."""
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.S)
    targets = [t for t in LINK.findall(text) if "://" not in t and not t.startswith("mailto:")]
    assert targets, "the README links into docs/"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
