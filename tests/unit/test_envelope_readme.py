"""The envelope example of the docs (docs/architecture.md, moved there from the README) is what
the factory produces for that record: the same header keys (``severity`` and ``schema`` always
written, no ``pattern`` for a structured workshop's record), body and params; and an envelope
written without ``severity``/``schema`` still reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from logfactory.config import load_config
from logfactory.event import SCHEMA_VERSION, decode_event, encode_event
from logfactory.factory.filter import FilterStage
from logfactory.factory.model import Decoded, Position
from logfactory.factory.package import Outputs, Packager
from logfactory.factory.patterns.library import PatternLibrary
from logfactory.factory.workshops import build_workshops
from logfactory.record import Record
from logfactory.topics import event_types

ROOT = Path(__file__).resolve().parents[2]
SCE_LINE = "2026-11-21 22:38:28.123456|login01|usr1|159.226.3.7|QUERY_RESOURCE|cpus=8 app=app4"


def _readme_example() -> dict[str, Any]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## The envelope") :]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    example: dict[str, Any] = json.loads(block.group(1).replace("…", ""))
    return example


def _produced() -> dict[str, Any]:
    config = load_config(ROOT / "examples" / "demo.yaml")
    record = Record(source="sce", host="collector", received=1_795_306_200 * 10**9, line=SCE_LINE)
    parts = build_workshops(config)["sce"].decode(record)
    decoded = Decoded(
        record=record, position=Position("logs.raw", 0, 1), workshop=parts.workshop,
        time_ns=parts.time_ns, message=parts.message, fields=parts.fields,
    )  # fmt: skip
    drafts = FilterStage(config, PatternLibrary()).apply(decoded)
    out = Outputs()
    Packager({t: f"events.{t}" for t in event_types(config)}).add_record(out, decoded, drafts)
    events: list[dict[str, Any]] = [
        json.loads(value) for topic, _, value in out.messages if topic == "events.USER_OP"
    ]
    assert len(events) == 1
    return events[0]


def test_readme_envelope_example_is_what_the_factory_produces() -> None:
    example, produced = _readme_example(), _produced()
    assert list(produced) == list(example)
    assert sorted(produced["header"]) == sorted(example["header"])
    for key in ("time", "type", "subtype", "severity", "source", "host", "schema"):
        assert produced["header"][key] == example["header"][key], key
    assert produced["body"] == example["body"]
    assert produced["params"] == example["params"]


def test_severity_and_schema_are_always_written_and_old_envelopes_still_read() -> None:
    envelope = json.loads(
        encode_event(decode_event(b'{"header":{"id":"e-1","time":"t","type":"X"}}'))
    )
    assert envelope["header"]["severity"] == "info"
    assert envelope["header"]["schema"] == SCHEMA_VERSION
