"""lark's parse errors -> :class:`~logfactory.errors.QueryError`: the column, and what to write.

lark reports an unexpected token or character with the set of terminals it would have taken
there. Those sets are the grammar's names (``VALUE``, ``_RPAR``); this module says them in
words, and for the common mistakes says what to write instead:

- an unclosed or stray parenthesis: the column of the parenthesis at fault, found by a scan
  that skips quoted text (outside quotes every ``(`` and ``)`` is one, no value holds them);
- an unclosed quote; a ``-`` not followed by what it leaves out;
- a field with no value (``host:``), or a group as a value (``host:(a OR b)``);
- a range or comparison cut short; AND/OR with nothing on one side.

The column is 1-based over the whole text (a newline counts as one character); at the end of
the text it is the column just after its last non-blank character.
"""

from __future__ import annotations

import re
from typing import Final

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from logfactory.errors import QueryError

__all__ = ["explain", "paren_problem"]

_WORDS: Final[dict[str, str]] = {
    "TEXT": "a word",
    "QUOTED": "a quoted phrase",
    "FIELD": "field:value",
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_NOT": "NOT",
    "_MINUS": "'-'",
    "_AND": "AND",
    "_OR": "OR",
    "VALUE": "a value",
    "CMP": "a comparison (>=, >, <=, <)",
    "BOUND": "a number, a time or *",
    "LBOUND": "'[' or '{'",
    "RBOUND": "']' or '}'",
    "_TO": "TO",
    "$END": "the end of the query",
}
_CLAUSE_STARTS: Final = frozenset({"TEXT", "QUOTED", "FIELD", "_LPAR", "_NOT", "_MINUS"})
_FIELD_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*:)\s*$")
_LAST_RUN = re.compile(r"(\S+)\s*$")


def _fail(where: int, message: str) -> QueryError:
    return QueryError(f"column {where}: {message}", where)


def paren_problem(text: str) -> QueryError | None:
    """The first stray ``)`` or the first ``(`` never closed, outside quotes, or None."""
    opened: list[int] = []
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "(":
            opened.append(index + 1)
        elif char == ")":
            if not opened:
                return _fail(index + 1, "unbalanced parenthesis: this ')' closes no '('")
            opened.pop()
    if opened:
        return _fail(opened[0], "unbalanced parenthesis: this '(' is never closed")
    return None


def explain(error: UnexpectedInput, text: str) -> QueryError:
    """The :class:`QueryError` for lark's ``error`` while parsing ``text``."""
    problem = paren_problem(text)
    if problem is not None:
        return problem
    if isinstance(error, UnexpectedCharacters):
        where = error.pos_in_stream or 0
        found = text[where]
        expected = set(error.allowed)
    elif isinstance(error, UnexpectedToken) and error.token.type != "$END":
        where = error.token.start_pos or 0
        found = str(error.token)
        expected = set(error.expected)
    else:
        where = len(text.rstrip())
        found = ""
        expected = set(getattr(error, "expected", ()) or ())
    return _fail(where + 1, _message(text[:where], found, expected))


def _message(before: str, found: str, expected: set[str]) -> str:
    shown = f"'{found}'" if found else "the end of the query"
    last = _LAST_RUN.search(before)
    after = f" after '{last.group(1)}'" if last else ""
    if found.startswith('"'):
        return "this quote is never closed: end the phrase with '\"'"
    if found == "-":
        return "write '-' right before what to leave out (-word, -host:cn01), or use NOT"
    if "VALUE" in expected:
        field = _FIELD_BEFORE.search(before)
        name = field.group(1) if field else "field:"
        if found == "(":
            bare = name[:-1]
            return f"a field takes one value: write ({bare}:a OR {bare}:b)"
        return (
            f"expected a value after '{name}' ({name}abc, {name}\"two words\","
            f" {name}abc*, {name}>=10, {name}[10 TO 20])"
        )
    if "BOUND" in expected:
        return f"expected a number, a time or *{after}, found {shown}"
    if "_TO" in expected:
        return f"expected TO between the bounds of a range ([10 TO 20]), found {shown}"
    if "RBOUND" in expected:
        return f"expected ']' or '}}' to close the range, found {shown}"
    if expected & _CLAUSE_STARTS:
        if found in ("AND", "OR"):
            return f"'{found}' needs a search term on each side"
        if not found:
            return f"expected a search term{after}"
        if found == ")":
            return "expected a search term before ')'"
    words = " or ".join(sorted(_WORDS.get(name, name) for name in expected))
    return f"unexpected {shown}; expected {words}"
