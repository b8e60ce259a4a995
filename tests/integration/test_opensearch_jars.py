"""`make opensearch-jars` (opensearch/node.py jars): says what it builds, where and how big, counts
Maven's downloads, and names what to install when Java or Maven is missing; the example config
points at the node `make opensearch` starts.

The build itself is real Maven building opensearch/pom.xml into an empty local repository, fed
from the Maven cache the OpenSearch tests already use (a file:// mirror: the same transfer
listener and output as Maven Central, without the network).
"""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tests.opensearch_node import LAUNCHER_JAR, POM, build, build_hash, jars_ok

from logfactory.config import load_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WARM = Path.home() / ".m2" / "repository"


def _node_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "opensearch_node_cli", REPO / "opensearch" / "node.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


script = _node_script()


def test_announcement_says_what_where_and_how_big(tmp_path: Path) -> None:
    text = script.announcement(tmp_path / "lib")
    version = re.search(r"<opensearch\.version>([^<]+)<", POM.read_text())
    assert version is not None
    assert f"OpenSearch {version[1]}" in text
    assert "Maven Central" in text
    assert "~/.m2/repository" in text
    assert str(tmp_path / "lib") in text
    assert re.search(r"about \d+ MB", text)


def test_without_java_or_maven_the_step_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    java = shutil.which("java")
    assert java is not None, "Java is not installed: `make test` needs it (see the README)"
    monkeypatch.setenv("LOGFACTORY_OPENSEARCH_LIB", str(tmp_path / "lib"))
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with neither java nor mvn
    out = io.StringIO()
    assert script.jars(out) == 1
    assert out.getvalue().startswith("Building the OpenSearch")
    err = capsys.readouterr().err
    assert err.startswith("opensearch jars: java not found")
    assert "Java 17" in err
    assert "Traceback" not in err

    (tmp_path / "java").symlink_to(java)  # now Java is there, Maven still missing
    assert script.jars(io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.startswith("opensearch jars: mvn not found")
    assert "apt-get install maven" in err
    assert not (tmp_path / "lib").exists()


def test_first_build_prints_a_running_count_and_the_total(tmp_path: Path) -> None:
    assert shutil.which("mvn"), "Maven is not installed: `make test` needs it (see the README)"
    assert list(WARM.glob("org/opensearch/opensearch/*/opensearch-*.jar")), (
        "no OpenSearch jars in ~/.m2 to mirror: `make test` builds them first"
        " (`make opensearch-jars`)"
    )
    settings = tmp_path / "settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>warm</id><mirrorOf>*</mirrorOf>"
        f"<url>{WARM.as_uri()}</url></mirror></mirrors></settings>"
    )
    local, lib = tmp_path / "m2", tmp_path / "lib"
    out = io.StringIO()
    count = build(lib, out, ["-s", str(settings), f"-Dmaven.repo.local={local}"], every_s=0.0)
    lines = out.getvalue().splitlines()
    progress = [int(m[1]) for m in (re.search(r"downloaded (\d+) files", ln) for ln in lines) if m]
    # every_s=0: one line per file, counting up, then the total
    assert progress[:-1] == list(range(1, count.files + 1))
    assert lines[-1] == f"  Maven done: downloaded {count}"
    fetched = [p for p in local.rglob("*") if p.suffix in (".jar", ".pom")]
    assert count.files == len(fetched)
    on_disk = sum(p.stat().st_size for p in fetched)
    assert count.size == pytest.approx(on_disk, rel=0.02)  # Maven rounds each size it prints
    # the launcher and the node's classpath, stamped with what they were built from
    assert (lib / LAUNCHER_JAR).is_file()
    assert list(lib.glob("opensearch-2.19.6.jar"))
    assert list(lib.glob("transport-netty4-client-*.jar"))
    assert list(lib.glob("log4j-core-*.jar"))  # optional in the server pom: declared by ours
    assert jars_ok(lib)
    assert (lib / ".build-sha256").read_text() == build_hash()
    assert not list(tmp_path.glob("lib.tmp*")), "the temp build dir is left behind"


def test_the_example_config_points_at_the_node_make_opensearch_starts() -> None:
    config = load_config(REPO / "examples" / "opensearch.yaml")
    assert config.warnings == ()
    assert config.store.engine == "opensearch"
    (http_port, _transport) = script.FIXED["single"][0]
    assert config.store.opensearch.hosts == [f"http://127.0.0.1:{http_port}"]
    assert config.store.opensearch.replicas == 0  # one node: a replica could never be assigned
