"""`make kafka-jars` (kafka/broker.py jars) says what it downloads, where and how big, then counts.

The download itself is real Maven resolving kafka/pom.xml into an empty local repository, fed
from the Maven cache the Kafka tests already use (a file:// mirror: the same transfer listener and
output as Maven Central, without the network).
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
from tests.kafka_broker import POM

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WARM = Path.home() / ".m2" / "repository"


def _broker_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_broker_cli", REPO / "kafka" / "broker.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


broker = _broker_script()


def test_announcement_says_what_where_and_how_big(tmp_path: Path) -> None:
    text = broker.announcement(tmp_path / "lib", fetch=True, cds=True)
    version = re.search(r"<kafka\.version>([^<]+)<", POM.read_text())
    assert version is not None
    assert f"Apache Kafka {version[1]}" in text
    assert "Maven Central" in text
    assert "~/.m2/repository" in text
    assert str(tmp_path / "lib") in text
    assert re.search(r"about \d+ MB", text)
    assert "class-data-sharing" in text
    # with the jars in place only the archive is left to do, and only that is announced
    cds_only = broker.announcement(tmp_path / "lib", fetch=False, cds=True)
    assert "Maven" not in cds_only
    assert "class-data-sharing" in cds_only


def test_count_reads_mavens_transfer_lines() -> None:
    count = broker.DownloadCount()
    central = "https://repo.maven.apache.org/maven2"
    lines = [
        f"[INFO] Downloading from central: {central}/org/apache/kafka/kafka_2.13/4.1.1/"
        "kafka_2.13-4.1.1.pom",
        f"[INFO] Downloaded from central: {central}/org/apache/kafka/kafka_2.13/4.1.1/"
        "kafka_2.13-4.1.1.pom (3.9 kB at 261 kB/s)",
        f"[INFO] Downloaded from central: {central}/org/apache/kafka/kafka-clients/4.1.1/"
        "kafka-clients-4.1.1.jar (9.8 MB at 12 MB/s)",
        f"[INFO] Downloaded from central: {central}/org/slf4j/slf4j-api/1.7.36/"
        "slf4j-api-1.7.36.pom (2.7 kB)",  # no speed: it took no measurable time
        "[INFO] BUILD SUCCESS",
    ]
    assert [count.feed(line) for line in lines] == [False, True, True, True, False]
    assert (count.files, count.jars, count.last) == (3, 1, "slf4j-api-1.7.36.pom")
    assert count.size == pytest.approx(9_806_600)
    assert str(count) == "3 files (1 jars), 9.8 MB"


def test_without_maven_the_step_announces_then_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGFACTORY_KAFKA_LIB", str(tmp_path / "lib"))
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without mvn on its PATH
    out = io.StringIO()
    assert broker.jars(out) == 1
    assert out.getvalue().startswith("Fetching the Apache Kafka")
    err = capsys.readouterr().err
    assert err.startswith("kafka jars: mvn not found")
    assert "apt-get install maven" in err
    assert "Traceback" not in err


def test_first_download_prints_a_running_count_and_the_total(tmp_path: Path) -> None:
    assert shutil.which("mvn"), "Maven is not installed: `make test` needs it (see the README)"
    assert list(WARM.glob("org/apache/kafka/kafka_2.13/*/kafka_2.13-*.jar")), (
        "no Kafka jars in ~/.m2 to mirror: `make test` fetches them first (`make kafka-jars`)"
    )
    settings = tmp_path / "settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>warm</id><mirrorOf>*</mirrorOf>"
        f"<url>{WARM.as_uri()}</url></mirror></mirrors></settings>"
    )
    local = tmp_path / "m2"
    out = io.StringIO()
    count = broker.download(out, ["-s", str(settings), f"-Dmaven.repo.local={local}"], every_s=0.0)
    lines = out.getvalue().splitlines()
    progress = [int(m[1]) for m in (re.search(r"downloaded (\d+) files", ln) for ln in lines) if m]
    # every_s=0: one line per file, counting up, then the total
    assert progress[:-1] == list(range(1, count.files + 1))
    assert lines[-1] == f"  Maven done: downloaded {count}"
    fetched = [p for p in local.rglob("*") if p.suffix in (".jar", ".pom")]
    assert count.files == len(fetched)
    assert count.jars == len([p for p in fetched if p.suffix == ".jar"])
    on_disk = sum(p.stat().st_size for p in fetched)
    assert count.size == pytest.approx(on_disk, rel=0.02)  # Maven rounds each size it prints
    assert list(local.glob("org/apache/kafka/kafka_2.13/*/kafka_2.13-*.jar"))
