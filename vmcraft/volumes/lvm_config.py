"""lvm2's configuration syntax, in which volume-group metadata is written.

Nested ``name { ... }`` sections of ``key = value`` pairs, where a value is a quoted string
with backslash escapes, a number, or a ``[ ... ]`` list of them; ``#`` starts a comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

_MAX_NESTING = 32


class ConfigFormatError(ValueError):
    """Bytes that break the format; the caller adds which device they came from."""


_Scalar = str | int | float
_Value = _Scalar | list[_Scalar]
_T = TypeVar("_T")

_TOKEN = re.compile(
    r"""
      (?P<space> (?: \s+ | \#[^\n]* )+ )
    | (?P<string> "(?:[^"\\]|\\.)*" )
    | (?P<punct> [{}\[\]=,] )
    | (?P<word> [^\s{}\[\]=,"\#]+ )
    """,
    re.VERBOSE | re.DOTALL,
)
_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?\d+\.\d*")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass
class Section:
    """One ``name { ... }`` block, with typed accessors that fail as format errors."""

    name: str
    path: str
    values: dict[str, _Value]
    sections: dict[str, Section]

    def child(self, key: str) -> Section:
        if key not in self.sections:
            raise ConfigFormatError(f"{self.path}: no section {key}")
        return self.sections[key]

    def _get(self, key: str, kind: type[_T], what: str) -> _T:
        value = self.values.get(key)
        if not isinstance(value, kind):
            raise ConfigFormatError(f"{self.path}: {key} is not {what}: {value!r}")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key, int, "a count")
        if value < 0:
            raise ConfigFormatError(f"{self.path}: {key} is not a count: {value}")
        return value

    def text(self, key: str) -> str:
        return self._get(key, str, "a string")

    def items(self, key: str) -> list[_Scalar]:
        return self._get(key, list, "a list")

    def strings(self, key: str) -> tuple[str, ...]:
        items = self.items(key)
        if not all(isinstance(item, str) for item in items):
            raise ConfigFormatError(f"{self.path}: {key} is not a list of strings")
        return tuple(str(item) for item in items)


class _Parser:
    """Recursive descent over the tokens of one metadata text."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = list(self._tokenize(text))
        self._next = 0

    def parse(self) -> Section:
        return self._section("", "", 0)

    def _tokenize(self, text: str) -> Iterator[tuple[str, str, int]]:
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise self._error("unterminated string", position)
            if match.lastgroup != "space":
                yield match.lastgroup or "", match.group(), position
            position = match.end()

    def _error(self, message: str, position: int) -> ConfigFormatError:
        line = self._text.count("\n", 0, position) + 1
        return ConfigFormatError(f"line {line}: {message}")

    def _take(self) -> tuple[str, str, int]:
        if self._next == len(self._tokens):
            raise self._error("unexpected end of text", len(self._text))
        self._next += 1
        return self._tokens[self._next - 1]

    def _section(self, name: str, path: str, depth: int) -> Section:
        if depth > _MAX_NESTING:
            raise self._error("sections nested too deeply", len(self._text))

        section = Section(name, path or "metadata", {}, {})
        while self._next < len(self._tokens) or depth:
            kind, key, position = self._take()
            if depth and key == "}" and kind == "punct":
                return section
            if kind != "word":
                raise self._error(f"expected a name, found {key!r}", position)

            _, token, position = self._take()
            if token == "{":
                child_path = f"{path}/{key}" if path else key
                section.sections[key] = self._section(key, child_path, depth + 1)
            elif token == "=":
                section.values[key] = self._value()
            else:
                raise self._error(f"expected '=' or '{{' after {key}", position)

        return section

    def _value(self) -> _Value:
        kind, token, position = self._take()
        if token != "[" or kind != "punct":
            return self._scalar(kind, token, position)

        items: list[_Scalar] = []
        while True:
            kind, token, position = self._take()
            if kind == "punct" and token == "]":
                return items
            if kind == "punct" and token == "," and items:
                continue
            items.append(self._scalar(kind, token, position))

    def _scalar(self, kind: str, token: str, position: int) -> _Scalar:
        if kind == "string":
            return _ESCAPE.sub(r"\1", token[1:-1])
        if kind == "word" and _INTEGER.fullmatch(token):
            return int(token)
        if kind == "word" and _FLOAT.fullmatch(token):
            return float(token)
        raise self._error(f"unexpected {token!r}", position)


def parse_config(text: str) -> Section:
    """Parse metadata text into its root section.

    Raises:
        ConfigFormatError: The text breaks the syntax.
    """
    return _Parser(text).parse()
