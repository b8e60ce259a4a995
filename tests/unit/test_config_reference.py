"""The configuration reference page is made from the config types, so it is only as good as its
freshness: this fails while docs/configuration-reference.md differs from what the types make
now, and says the command that remakes it. Every key must have its line of documentation."""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec
import pytest

from logfactory.config.reference import COMMAND, SECTIONS, field_docs, reference

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration-reference.md"


def test_the_committed_reference_is_what_the_types_make() -> None:
    made = reference()
    committed = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    assert committed == made, (
        f"{PAGE.relative_to(ROOT)} is stale: the config types changed. Remake it with "
        f"`{COMMAND}` (or `make reference`) and commit it."
    )


@pytest.mark.parametrize(("heading", "struct"), SECTIONS, ids=[h for h, _ in SECTIONS])
def test_every_key_of_every_section_is_documented(
    heading: str, struct: type[msgspec.Struct]
) -> None:
    docs = field_docs(struct)  # raises on a key without a doc or a doc of no key
    assert all(text.strip() for text in docs.values()), heading
    for name in docs:
        assert f"| `{name}` |" in reference()


def test_every_struct_a_file_can_hold_has_a_section() -> None:
    """A struct reachable from Config but missing from SECTIONS would be undocumented."""
    listed = {struct for _, struct in SECTIONS}
    seen: set[type] = set()

    def walk(tp: object) -> None:
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            if tp in seen:
                return
            seen.add(tp)
            for field in msgspec.structs.fields(tp):
                walk(field.type)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(SECTIONS[0][1])
    assert seen <= listed, sorted(t.__name__ for t in seen - listed)


def test_a_field_without_a_doc_is_refused() -> None:
    class Undocumented(msgspec.Struct):
        """No attributes here.

        Attributes:
            named: a key that does not exist
        """

        real: int = 0

    with pytest.raises(ValueError, match=r"lacks \['real'\], names no field \['named'\]"):
        field_docs(Undocumented)
