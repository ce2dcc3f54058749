"""YAML for files users write (suites): `yaml.SafeLoader` plus the limits it lacks.

SafeLoader never runs code, but it accepts three things that hurt here:
- alias bombs ("billion laughs"): a few dozen aliases expand to 10^9 nodes once the suite is hashed or validated
  (1.1 GB after 120 s in issue 22). Refused: more than `MAX_ALIASES` aliases, or a document that expands to more
  than `MAX_NODES` nodes;
- duplicate keys, where the last silently wins (an edited value that never takes effect). Refused, with both lines;
- a UTF-8 byte-order mark (Windows editors write one), refused as a character PyYAML cannot start with. Accepted.
Hand-written because PyYAML has no option for any of these and ruamel.yaml (which refuses duplicates) still
expands aliases; the checks are a few lines on PyYAML's own composer.
"""
from __future__ import annotations

from typing import Any

import yaml

MAX_ALIASES = 32  # a suite reuses a scenario list a handful of times
MAX_NODES = 10_000  # the largest suite here is under 2,000 nodes


class _BoundedLoader(yaml.SafeLoader):
    aliases_seen = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen += 1
            if self.aliases_seen > MAX_ALIASES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_ALIASES} aliases (*name); a suite "
                                                  f"needs a few", self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader's own error names it
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        f"while constructing a mapping (first {key!r} on line {first.start_mark.line + 1})",
                        node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Nodes of the document with every alias expanded (memoised per node: linear in the composed graph)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once here; construction reports it
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_NODES + 1)
    return memo[id(node)]


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the limits above; raises yaml.YAMLError with the line of the problem."""
    text = text.removeprefix("\ufeff")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"the document expands to more than {MAX_NODES} nodes "
                                              f"(an alias bomb?)", node.start_mark)
        return loader.construct_document(node)
    finally:
        loader.dispose()
