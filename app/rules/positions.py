"""Map a pydantic error location such as `("rules", 0, "send", "after")` to a line and column.

The rule linter reports `file:line:col: message`, but pydantic only knows the path into the
loaded data. We compose the same YAML text into a node tree (which keeps source marks) and
walk that tree with the path. Composition never constructs Python objects, so it is as safe
as `yaml.safe_load` and tolerates tags such as `!!python/object` that `safe_load` rejects later.
The same tree shows duplicate keys, which `safe_load` drops silently (the last one wins).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import Mark, YAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Pydantic appends this step when a dict *key* (not its value) failed validation.
_KEY_STEP = "[key]"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Position:
    """A place in the text; both parts are 1-based and the column counts characters."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


_START = Position(1, 1)


@dataclass(frozen=True)
class DuplicateKey:
    """A key written again in the same mapping: `safe_load` keeps only the last value."""

    key: str
    first: Position
    again: Position


@dataclass(frozen=True)
class _Reached:
    """Where a walk ended: the deepest value node, and the key node that led to it, if any."""

    node: Node
    key: Node | None
    complete: bool


class YamlPositions:
    """Source positions for one YAML document, looked up by pydantic-style paths."""

    def __init__(self, root: Node | None) -> None:
        self._root = root

    @classmethod
    def from_text(cls, text: str) -> YamlPositions:
        """Compose `text`; raises yaml.YAMLError for bad YAML (and for several documents)."""
        # SafeLoader matches the loader that produced the data pydantic saw; compose stops
        # before construction, so unknown or Python tags stay inert labels on the nodes.
        return cls(yaml.compose(text, Loader=yaml.SafeLoader))

    def locate(self, path: Sequence[str | int]) -> Position:
        """Position of the value at `path`, or of the deepest node that exists on the way."""
        if self._root is None:
            return _START
        return _position(_walk(self._root, path).node)

    def locate_key(self, path: Sequence[str | int]) -> Position:
        """Position of the key written for the last step (e.g. a typo `sned:`).

        Falls back to `locate` when the last step is not a mapping key that exists.
        """
        if self._root is None:
            return _START
        reached = _walk(self._root, path)
        if reached.complete and reached.key is not None:
            return _position(reached.key)
        return _position(reached.node)

    def duplicate_keys(self) -> list[DuplicateKey]:
        """Every key repeated within one mapping, anywhere in the document, in text order.

        Keys are compared as `safe_load` builds them, so `1` and `1.0`, or `yes` and `true`,
        are the same key; merged keys (`<<: *anchor`) may be overridden and are not counted.
        """
        if self._root is None:
            return []
        found: list[DuplicateKey] = []
        for mapping in _mappings(self._root):
            seen: dict[Hashable, Node] = {}
            for key, _ in _mapping_pairs(mapping):
                if key.tag == _MERGE_TAG or not isinstance(key, ScalarNode):
                    continue
                identity = _key_identity(key)
                first = seen.setdefault(identity, key)
                if first is not key:
                    found.append(DuplicateKey(str(key.value), _position(first), _position(key)))
        return sorted(found, key=lambda duplicate: (duplicate.again.line, duplicate.again.column))


def yaml_error_position(error: yaml.YAMLError) -> Position | None:
    """Where a YAML syntax error was found, or None when PyYAML gave no mark.

    A ReaderError (e.g. a control character) only carries a character offset, not a
    line, so it also yields None.
    """
    if not isinstance(error, yaml.MarkedYAMLError):
        return None
    # The problem mark is the precise spot; the context mark (e.g. where an unclosed
    # flow collection began) is the next best thing.
    mark = error.problem_mark or error.context_mark
    return None if mark is None else _mark_position(mark)


def _walk(root: Node, path: Sequence[str | int]) -> _Reached:
    node, key = root, None
    for step in path:
        if step == _KEY_STEP and key is not None:
            # A key scalar has nothing below it, so this is always the end of the walk.
            return _Reached(node=key, key=None, complete=True)
        entry = _follow(node, step)
        if entry is None:
            # Unfollowable: a missing key, an index past the end, a path through a scalar,
            # or a pydantic-only step such as a union tag. The deepest node is the best hint.
            return _Reached(node=node, key=key, complete=False)
        key, node = entry
    return _Reached(node=node, key=key, complete=True)


def _follow(node: Node, step: str | int) -> tuple[Node | None, Node] | None:
    """(key node or None, value node) one step below `node`, or None if there is none."""
    if isinstance(node, MappingNode):
        return _mapping_entry(node, step)
    if isinstance(node, SequenceNode) and isinstance(step, int):
        items = _sequence_items(node)
        # Negative steps never come from pydantic and must not wrap around to the end.
        if 0 <= step < len(items):
            return None, items[step]
    return None


def _mapping_entry(node: MappingNode, step: str | int) -> tuple[Node, Node] | None:
    # An int step can address a mapping with integer keys (`dict[int, ...]` fields).
    wanted = str(step)
    found: tuple[Node, Node] | None = None
    merges: list[Node] = []
    for key, value in _mapping_pairs(node):
        if key.tag == _MERGE_TAG:
            merges.append(value)
        elif isinstance(key, ScalarNode) and key.value == wanted:
            # Later duplicates win, as they do in safe_load.
            found = (key, value)
    if found is not None:
        return found
    return _merged_entry(merges, step)


def _merged_entry(merges: list[Node], step: str | int) -> tuple[Node, Node] | None:
    """Look through `<<: *anchor` merges, which safe_load flattens into the mapping."""
    for merged in merges:
        sources = _sequence_items(merged) if isinstance(merged, SequenceNode) else [merged]
        # Explicit keys win over merged ones and earlier merge sources win over later ones.
        for source in sources:
            if isinstance(source, MappingNode):
                entry = _mapping_entry(source, step)
                if entry is not None:
                    return entry
    return None


def _mappings(root: Node) -> Iterator[MappingNode]:
    """Every mapping in the tree once, aliases included (an alias is the same node object)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            yield node
            for key, value in _mapping_pairs(node):
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(_sequence_items(node))


def _key_identity(key: ScalarNode) -> Hashable:
    """The key as `safe_load` would build it; the raw text when it would refuse to."""
    try:
        # A scalar only: SafeConstructor builds plain values and refuses Python tags.
        value = SafeConstructor().construct_object(key, deep=True)
        hash(value)
    except (YAMLError, TypeError):
        return (key.tag, key.value)
    # safe_load keys compare like dict keys: `1`, `1.0` and `true` are one key.
    identity: Hashable = value
    return identity


def _mapping_pairs(node: MappingNode) -> list[tuple[Node, Node]]:
    # The stubs type node values as Any; the composer guarantees these shapes.
    pairs: list[tuple[Node, Node]] = node.value
    return pairs


def _sequence_items(node: SequenceNode) -> list[Node]:
    items: list[Node] = node.value
    return items


def _position(node: Node) -> Position:
    mark: Mark | None = node.start_mark
    return _START if mark is None else _mark_position(mark)


def _mark_position(mark: Mark) -> Position:
    # PyYAML marks are 0-based and count characters of the decoded text.
    return Position(line=mark.line + 1, column=mark.column + 1)
