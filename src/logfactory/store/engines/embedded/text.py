"""Text as tantivy's ``default`` tokenizer sees it, and values made safe for its regexes.

The message is indexed by tantivy's ``default`` analyzer: split at every character that is not
alphanumeric (Rust's ``char::is_alphanumeric``; Python's ``str.isalnum`` agrees on letters and
digits of every script), words of 40 bytes or more dropped (their place kept), lower-cased. A
query value is cut the same way here, so a value with punctuation becomes the phrase of its
words at the same relative places (``10.3.17.5`` -> ``10 3 17 5``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_WORD_BYTES", "regex_literal", "words"]

MAX_WORD_BYTES: Final = 40


def words(text: str) -> list[tuple[int, str]]:
    """(place, word) for each word tantivy indexes from ``text``."""
    out: list[tuple[int, str]] = []
    place = 0
    start = -1
    for i, char in enumerate(text + " "):
        if char.isalnum() and i < len(text):
            if start < 0:
                start = i
            continue
        if start >= 0:
            word = text[start:i]
            if len(word.encode()) < MAX_WORD_BYTES:
                out.append((place, word.lower()))
            place += 1
            start = -1
    return out


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def regex_literal(text: str) -> str:
    """``text`` as a Rust regex matching exactly it: every character that is not a plain ASCII
    letter, digit or ``_`` is written as its code point (``\\x{2e}``), so no character of user
    text can act as regex syntax."""
    return "".join(char if char in _PLAIN else f"\\x{{{ord(char):x}}}" for char in text)
