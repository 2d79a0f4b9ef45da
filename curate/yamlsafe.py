"""One safe way to read YAML: PyYAML's SafeLoader (no ``!!python`` tags) with a bound on alias expansion.

YAML anchors and aliases share one node, so a "billion laughs" document (``a: &a [x, x, ...]``,
``b: &b [*a, *a, ...]``, ...) composes quickly but expands exponentially in every consumer that walks
it: recipe validation, canonical JSON for cache keys, line-number maps. A 9^7-leaf recipe took 51 s and
1.1 GB before any error. Every YAML the project reads (recipes, rule sets, train configs, chain files,
``--set`` values) goes through :func:`load` / :func:`compose`, which measure the expanded size of the
node graph (linear in the distinct nodes, memoised) and refuse documents whose aliases would add more
than :data:`MAX_ALIAS_EXPANSION` nodes, before any consumer sees them.
"""

from __future__ import annotations

from typing import Any

import yaml

# nodes that aliases may add on top of the document's own nodes: generous for the anchors people write
# by hand (a shared block of options reused a few dozen times), tiny next to a bomb
MAX_ALIAS_EXPANSION = 100_000


class AliasBombError(yaml.YAMLError):
    """A document whose aliases expand past the limit (raised before any object is built)."""

    def __init__(self, expanded: int, distinct: int, limit: int, mark: yaml.Mark | None = None):
        self.problem_mark = mark
        self.problem = (
            f"aliases expand the document to more than {limit + distinct:,} nodes ({distinct:,} written, "
            f"{expanded:,} after expansion): refused as an alias bomb; "
            f"repeat the values instead of nesting anchors"
        )
        self.context = None
        super().__init__(self.problem)

    def __str__(self) -> str:
        where = f" (line {self.problem_mark.line + 1})" if self.problem_mark is not None else ""
        return self.problem + where


def expanded_size(node: yaml.Node | None) -> tuple[int, int]:
    """(expanded node count, distinct node count) of a composed document, in time linear in the
    distinct nodes (so the answer is cheap even for a bomb)."""
    if node is None:
        return 0, 0
    memo: dict[
        int, int
    ] = {}  # by node identity: an aliased node is measured once (Python ints do not overflow)

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        memo[key] = 1  # a cycle (recursive anchor) counts once here; PyYAML itself refuses to build it
        total = 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                total += size(v)
        memo[key] = total
        return total

    total = size(node)
    return total, len(memo)


def check_node(node: yaml.Node | None, limit: int = MAX_ALIAS_EXPANSION) -> None:
    expanded, distinct = expanded_size(node)
    if expanded - distinct > limit:
        raise AliasBombError(expanded, distinct, limit, getattr(node, "start_mark", None))


class BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that checks the alias expansion of each document before constructing it.
    Subclass it to add constructors (the rule loader keeps line numbers this way)."""

    alias_limit = MAX_ALIAS_EXPANSION

    def get_single_node(self):
        node = super().get_single_node()
        check_node(node, self.alias_limit)
        return node

    def get_node(self):
        node = super().get_node()
        check_node(node, self.alias_limit)
        return node


def load(text: str, loader: type[BoundedSafeLoader] = BoundedSafeLoader) -> Any:
    """``yaml.safe_load`` with the alias bound (raises :class:`yaml.YAMLError` subclasses)."""
    return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass


def compose(text: str) -> yaml.Node | None:
    """``yaml.compose`` with the SafeLoader and the alias bound."""
    return yaml.compose(text, Loader=BoundedSafeLoader)
