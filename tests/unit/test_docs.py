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


def test_benchmarks_page_names_each_run_and_its_machine(tmp_path: Path) -> None:
    """The table the build puts on the benchmarks page comes from bench/results/*.json: a row
    per result file with its time, its machine and its headline figures; an unreadable file is
    said, not a failed build."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import bench_results
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    results = tmp_path / "results"
    results.mkdir()
    (results / "pipeline.json").write_text(
        '{"benchmark": "pipeline", "measured_at": "2026-12-06T04:51:42Z", "machine": '
        '{"cpu": "Test CPU", "cores": 2, "memory_gib": 23.5, "python": "3.11.7", '
        '"reference_loop_ms": 37.1}, "throughput_records_per_s": 42807.1, "latency_p99_ms": 8.83}'
    )
    (results / "broken.json").write_text("{not json")
    table = bench_results.results_table(results)
    rows = table.splitlines()
    assert len(rows) == 4  # header, rule, two files
    assert "| `pipeline.json` | 2026-12-06T04:51:42Z | Test CPU, 2 cores" in table
    assert "reference loop 37.1 ms" in table
    assert "records/s 42,807; p99 ms 8.83" in table
    assert "`broken.json` | cannot be read" in table
    page = bench_results.on_page_markdown("before\n<!-- bench-results -->\nafter")
    assert "<!-- bench-results -->" not in page
    for result in sorted((ROOT / "bench" / "results").glob("*.json")):
        assert f"`{result.name}`" in page  # every committed result has its row


def test_http_api_page_lists_every_route_of_the_app() -> None:
    """The HTTP API page's endpoints come from the app's own OpenAPI description: every
    operation the node serves appears with its parameters and declared answers, so a route
    added to the code appears in the docs without anyone writing it there."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import openapi_reference
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    spec = openapi_reference.openapi_spec()
    text = openapi_reference.reference_markdown(spec)
    operations = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    assert ("POST", "/api/v1/ingest") in operations
    for method, path in operations:
        assert f"### `{method} {path}`" in text
    assert "| `types` | query | string |  | yes |" in text  # a required parameter, no default
    assert "`429` the node is overloaded" in text  # an answer declared beside the route
    page = (ROOT / "docs" / "http-api.md").read_text()
    assert openapi_reference.MARKER in page


def test_first_page_is_the_readme_tour_not_a_copy() -> None:
    """docs/index.md holds no copy of the README's tour (two copies drift): the build puts the
    README's first part there, its links into docs/ made site-relative and links to other files
    of the repository (which the site cannot serve) made plain text."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import readme_page
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    index = (ROOT / "docs" / "index.md").read_text()
    assert readme_page.MARKER in index
    assert "make run" not in index
    part = readme_page.readme_part(README.read_text())
    assert "make run" in part
    assert "make test" in part
    assert "## Architecture" not in part
    assert "](docs/" not in part
    assert "[File tail and HTTP ingest](sources/file-http.md)" in part
    sample = "# t\n\nSee [the demo](examples/demo.yaml) and [x](https://x.org).\n## Architecture\n"
    assert readme_page.readme_part(sample) == "See the demo and [x](https://x.org).\n"
