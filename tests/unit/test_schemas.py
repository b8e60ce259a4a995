"""The published JSON Schemas: valid draft 2020-12, true to the envelope the package stage writes,
strict where it is our contract (header) and open where sites extend (body); and the runtime
checker in logfactory.schemas agrees with the jsonschema package."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the dev set
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logfactory.config import parse_config
from logfactory.event import BUILTIN_TYPES, Event, Header, encode_event, position_event_id
from logfactory.schemas import known_types, schema_for, validate

T = "2026-11-21T22:38:28.123456Z"
BODIES: dict[str, dict[str, Any]] = {
    "USER_OP": {"user": "usr1", "addr": "159.226.3.7", "op": "QUERY_RESOURCE"},
    "ADMIN_OP": {"user": "admin1", "addr": "10.1.0.2", "op": "CREATE_GROUP"},
    "JOB_STATUS": {
        "job_id": "123456",
        "state": "COMPLETED",
        "user": None,
        "partition": "normal",
        "nodes": "cn[01-04]",
        "exit_code": 0,
    },
    "APP_STATUS": {
        "app": "gromacs",
        "version": "2024.3",
        "action": "install",
        "cluster": "era",
        "host": "mgmt01",
    },
    "CLUSTER_STATUS": {
        "cluster": "era",
        "state": "up",
        "nodes_total": 256,
        "nodes_down": 2,
        "running_jobs": 57,
        "queued_jobs": 12,
    },
    "ALERT": {"account": "root", "count": 6, "addrs": ["192.0.2.1"], "evidence": ["..."]},
    "NEW_PATTERN": {
        "template": "sensor <*> reports <*>",
        "example": "sensor PSU1 reports ok",
        "workshop": "syslog",
        "first_seen": T,
        "pattern": "p-41d0",
    },
}
REQUIRED_BODY = {
    "USER_OP": ["user", "op"],
    "ADMIN_OP": ["user", "op"],
    "JOB_STATUS": ["job_id", "state"],
    "APP_STATUS": ["app", "action"],
    "CLUSTER_STATUS": ["cluster", "state"],
    "ALERT": [],
    "NEW_PATTERN": ["template", "example", "workshop", "first_seen", "pattern"],
}


def envelope(event_type: str) -> dict[str, Any]:
    """An envelope exactly as the package stage serialises one (through event.Event)."""
    event = Event(
        header=Header(
            id=position_event_id("logs.raw", 1, 42),
            time=T,
            type=event_type,
            subtype="PASSWORD_ATTACK" if event_type == "ALERT" else None,
            severity="high" if event_type == "ALERT" else "info",
            source="syslog",
            host="login01",
            received=T,
            pattern="p-41d0",
            reason="6 failed passwords for account root within 60s"
            if event_type == "ALERT"
            else None,
        ),
        body=copy.deepcopy(BODIES[event_type]),
        params={"cpus": 8, "app": "app4"} if event_type == "USER_OP" else None,
    )
    result: dict[str, Any] = json.loads(encode_event(event))
    return result


def both_valid(env: dict[str, Any], schema: dict[str, Any], config: Any = None) -> bool:
    """Validity by jsonschema, asserting that logfactory.schemas.validate agrees."""
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(env), key=str)
    ours = validate(env, config)
    assert (not errors) == (not ours), (errors, ours)
    return not errors


def test_one_file_per_builtin_type_and_nothing_else() -> None:
    folder = resources.files("logfactory").joinpath("schemas")
    names = {p.name for p in folder.iterdir() if p.name.endswith(".json")}
    assert names == {f"{t}.json" for t in BUILTIN_TYPES}
    assert known_types() == list(BUILTIN_TYPES)


@pytest.mark.parametrize("event_type", BUILTIN_TYPES)
def test_schema_is_valid_draft_2020_12_and_names_its_type(event_type: str) -> None:
    schema = schema_for(event_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    header = schema["properties"]["header"]
    assert header["properties"]["type"] == {"const": event_type}
    assert header["additionalProperties"] is False
    assert schema["properties"]["body"]["additionalProperties"] is True
    assert schema["properties"]["body"]["required"] == REQUIRED_BODY[event_type]


def test_header_schema_lists_exactly_the_header_fields() -> None:
    fields = {f.name for f in msgspec.structs.fields(Header)}
    for event_type in BUILTIN_TYPES:
        header = schema_for(event_type)["properties"]["header"]
        assert set(header["properties"]) == fields
        assert {"id", "time", "type"} <= set(header["required"])
    assert "reason" in schema_for("ALERT")["properties"]["header"]["required"]


@pytest.mark.parametrize("event_type", BUILTIN_TYPES)
def test_a_real_envelope_validates(event_type: str) -> None:
    env = envelope(event_type)
    assert both_valid(env, schema_for(event_type))
    assert validate(env) == []


@pytest.mark.parametrize(
    ("event_type", "field"), [(t, f) for t, fs in REQUIRED_BODY.items() for f in fs]
)
def test_missing_required_body_field_is_invalid(event_type: str, field: str) -> None:
    env = envelope(event_type)
    del env["body"][field]
    assert not both_valid(env, schema_for(event_type))
    assert validate(env) == [f"body.{field}: required but missing"]


@pytest.mark.parametrize(
    ("event_type", "change", "message"),
    [
        ("ALERT", lambda e: e["header"].pop("reason"), "header.reason: required but missing"),
        ("USER_OP", lambda e: e["header"].pop("time"), "header.time: required but missing"),
        ("USER_OP", lambda e: e["header"].update(colour="red"), "header.colour: not allowed"),
        ("USER_OP", lambda e: e["header"].update(severity="warning"), "is not one of"),
        ("USER_OP", lambda e: e["header"].update(time="yesterday"), "does not match"),
        ("USER_OP", lambda e: e["header"].update(id="42"), "does not match"),
        ("USER_OP", lambda e: e["header"].update(schema=True), "expected integer"),
        ("USER_OP", lambda e: e.update(params=[1]), "params: expected object"),
        ("USER_OP", lambda e: e["body"].update(user=None), "body.user: expected string"),
        ("USER_OP", lambda e: e.update(extra={}), "extra: not allowed"),
        ("USER_OP", lambda e: e.pop("body"), "body: required but missing"),
        ("CLUSTER_STATUS", lambda e: e["body"].update(nodes_down="2"), "expected integer"),
    ],
)
def test_broken_envelopes_are_invalid(event_type: str, change: Any, message: str) -> None:
    env = envelope(event_type)
    change(env)
    assert not both_valid(env, schema_for(event_type))
    assert any(message in error for error in validate(env)), validate(env)


def test_sites_may_add_body_fields_and_leave_out_optional_ones() -> None:
    env = envelope("USER_OP")
    env["body"]["department"] = "physics"
    del env["body"]["addr"]
    del env["params"]
    assert both_valid(env, schema_for("USER_OP"))
    alert = envelope("ALERT")
    del alert["body"]  # an empty body is omitted by the encoder
    assert both_valid(alert, schema_for("ALERT"))


def test_envelope_without_a_known_type() -> None:
    assert validate({"header": {}}) == ["header.type: missing; every envelope names its type"]
    assert validate([]) == ["header.type: missing; every envelope names its type"]
    assert "unknown event type 'NOPE'" in validate({"header": {"type": "NOPE"}})[0]
    with pytest.raises(ValueError, match="unknown event type 'NOPE'"):
        schema_for("NOPE")


SITE = """
event_types:
  - name: SSH_LOGIN
    description: A user opened an ssh session.
    required: [user, addr]
  - name: USER_OP
    required: [department]
"""


def test_site_types_get_a_generated_schema() -> None:
    config = parse_config(SITE, "site.yaml")
    assert known_types(config) == [*BUILTIN_TYPES, "SSH_LOGIN"]
    schema = schema_for("SSH_LOGIN", config)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["description"] == "A user opened an ssh session."
    assert schema["properties"]["header"]["properties"]["type"] == {"const": "SSH_LOGIN"}
    assert schema["properties"]["body"]["required"] == ["user", "addr"]
    env = envelope("USER_OP")
    env["header"]["type"] = "SSH_LOGIN"
    env["body"] = {"user": "usr1", "addr": "159.226.3.7", "method": "publickey"}
    assert both_valid(env, schema, config)
    del env["body"]["addr"]
    assert not both_valid(env, schema, config)
    with pytest.raises(ValueError, match="unknown event type"):
        schema_for("SSH_LOGIN")  # without the config it is not known


def test_a_site_can_require_more_of_a_builtin_type() -> None:
    config = parse_config(SITE, "site.yaml")
    schema = schema_for("USER_OP", config)
    assert schema["properties"]["body"]["required"] == ["user", "op", "department"]
    env = envelope("USER_OP")
    assert not both_valid(env, schema, config)
    env["body"]["department"] = "physics"
    assert both_valid(env, schema, config)
    # the shipped schema is untouched by what a caller or a config did to a copy
    assert schema_for("USER_OP")["properties"]["body"]["required"] == ["user", "op"]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.sampled_from([T, "e-0a1b", "info", "warning", "e-", ""]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.sampled_from(BUILTIN_TYPES),
    part=st.sampled_from(["header", "body", "top"]),
    key=st.sampled_from(["id", "time", "severity", "schema", "user", "state", "params", "x"]),
    value=_VALUES,
    drop=st.booleans(),
)
def test_runtime_checker_agrees_with_jsonschema(
    event_type: str, part: str, key: str, value: Any, drop: bool
) -> None:
    env = envelope(event_type)
    target = env if part == "top" else env[part]
    if drop:
        target.pop(key, None)
    else:
        target[key] = value
    both_valid(env, schema_for(event_type))
