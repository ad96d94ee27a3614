"""Where in a config.yaml a validation error points: the line of an issue's dotted path.

The validator names a place by its path in the data (``providers.openai.models[0].name``);
people read a file by its lines. ``issue_lines`` walks the YAML's node tree (its marks
keep the lines) along each path and returns the line of the deepest node it reaches: a
missing key points at the mapping that lacks it. Syntax errors and duplicate keys
already say ``line N``. A path the text has not got (an environment override) has no line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from llmproxy.config import ConfigIssue

_LINE = re.compile(r"^line (\d+)")
_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


@dataclass(frozen=True, slots=True)
class LineIssue:
    line: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path}: {self.reason}" if self.path else f"{where}{self.reason}"


def issue_lines(text: str, issues: list[ConfigIssue]) -> list[LineIssue]:
    """Each issue with its line in ``text`` (1-based), in the order of the file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    out = [LineIssue(line_of(root, i.path), i.path, i.reason) for i in issues]
    return sorted(out, key=lambda i: (i.line is None, i.line or 0))


def line_of(root: yaml.Node | None, path: str) -> int | None:
    found = _LINE.match(path)
    if found:
        return int(found.group(1))
    if root is None:
        return None
    tokens: list[str | int] = [int(i) if i else str(k) for i, k in _TOKEN.findall(path)]
    node: yaml.Node = root
    line = None  # a path whose first step is not in the text has no line
    while tokens:
        step = _step(node, tokens)
        if step is None:
            break
        node, key_line, used = step
        line = key_line
        tokens = tokens[used:]
    return line


def _step(node: yaml.Node, tokens: list[str | int]) -> tuple[yaml.Node, int, int] | None:
    """The child the next token(s) name, the line to report for it and how many tokens it took."""
    if isinstance(node, yaml.SequenceNode) and isinstance(tokens[0], int):
        if tokens[0] < len(node.value):
            child = node.value[tokens[0]]
            return child, child.start_mark.line + 1, 1
        return None
    if isinstance(node, yaml.MappingNode):
        # A key may hold dots itself (a model called "gpt-4.1"): try the longest match first.
        words = [t for t in _leading_words(tokens)]
        for used in range(len(words), 0, -1):
            name = ".".join(words[:used])
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == name:
                    return value, key.start_mark.line + 1, used
    return None


def _leading_words(tokens: list[str | int]) -> list[str]:
    words = []
    for t in tokens:
        if isinstance(t, int):
            break
        words.append(t)
    return words
