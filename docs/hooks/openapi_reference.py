"""MkDocs hook: the HTTP API page's endpoint reference, made at build time from the OpenAPI
description the node itself serves at ``/openapi.json``.

A hand-written list of routes drifts from the code the first time a route gains a parameter;
this one cannot. The marker ``<!-- openapi-reference -->`` in ``docs/http-api.md`` becomes one
section per operation: method and path, the route's docstring, its parameters (where, type,
default, required) and the answers it declares. The prose around the marker keeps what a
description of each route cannot say (how SSE cursors resume, the subscriber caps).

The app is built the way the node builds it, over a throw-away embedded bus in a temporary
directory, so the build needs no running node and writes nothing into the tree.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

MARKER = "<!-- openapi-reference -->"
PAGE = "http-api.md"


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI description of a node's API with the default configuration."""
    from logfactory.access.store import AccessStore
    from logfactory.api import NodeContext, create_app
    from logfactory.bus.local import LocalBus
    from logfactory.config import Config
    from logfactory.stats import StatsRegistry

    with tempfile.TemporaryDirectory(prefix="logfactory-docs-") as tmp:
        bus = LocalBus(Path(tmp) / "bus")
        producer = bus.producer()
        try:
            ctx = NodeContext(
                config=Config(),
                bus=bus,
                producer=producer,
                registry=StatsRegistry("docs"),
                stats_dir=Path(tmp) / "stats",
                started=time.time(),
                access=AccessStore.in_dir(Path(tmp) / "access"),
            )
            spec: dict[str, Any] = create_app(ctx).openapi()
        finally:
            producer.close()
            bus.close()
    return spec


def _cell(text: object) -> str:
    """Text fit for one cell of a Markdown table."""
    return str(text).replace("|", "&#124;").replace("\n", " ").strip()


def _type_of(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type_of(s) for s in schema["anyOf"] if s.get("type") != "null")
    kind = str(schema.get("type", "any"))
    if "enum" in schema:
        return " or ".join(f"`{v}`" for v in schema["enum"])
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    return kind


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{method.upper()} {path}`", ""]
    description = str(op.get("description") or op.get("summary") or "").strip()
    if description:
        out += [description, ""]
    params = op.get("parameters", [])
    if params:
        out += [
            "| parameter | in | type | default | required | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for p in params:
            schema = p.get("schema", {})
            default = schema.get("default")
            out.append(
                f"| `{_cell(p['name'])}` | {_cell(p.get('in', ''))} | {_cell(_type_of(schema))} "
                f"| {'' if default is None else f'`{_cell(default)}`'} "
                f"| {'yes' if p.get('required') else 'no'} "
                f"| {_cell(p.get('description') or schema.get('description') or '')} |"
            )
        out.append("")
    answers = [
        f"`{code}` {_cell(answer.get('description', ''))}"
        for code, answer in op.get("responses", {}).items()
    ]
    if answers:
        out += ["Answers: " + "; ".join(answers) + ".", ""]
    return out


def reference_markdown(spec: dict[str, Any]) -> str:
    """Every operation of ``spec``, in the order the app declares them."""
    lines: list[str] = []
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            lines += _operation(method, path, op)
    return "\n".join(lines).rstrip() + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook entry point: fill the marker on the HTTP API page."""
    if page.file.src_uri != PAGE or MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference_markdown(openapi_spec()))
