"""The ``--mix FILE:RATIO`` and ``--reward RULE[=WEIGHT]`` specs, parsed and checked. Pure Python:
:mod:`train.config` validates them when a config is resolved, without loading data or model code
(:mod:`train.mix` draws the rows, :mod:`train.rewards` scores the completions)."""

from __future__ import annotations

from dataclasses import dataclass

# ------------------------------------------------------------------ --mix


class MixError(ValueError):
    """A malformed --mix spec (the message names it)."""


@dataclass(frozen=True)
class MixSpec:
    path: str
    ratio: float


def parse_mix(specs: list[str]) -> list[MixSpec]:
    """``FILE:RATIO`` strings -> specs; RATIO in (0, 1), ratios summing below 1. (The file is split at the
    last colon, so Windows drive letters and colons in names keep working.)"""
    out = []
    for spec in specs or []:
        path, sep, ratio_s = str(spec).rpartition(":")
        if not sep or not path.strip():
            raise MixError(f"mix {spec!r}: expected FILE:RATIO, e.g. general.jsonl:0.2")
        try:
            ratio = float(ratio_s)
        except ValueError:
            raise MixError(f"mix {spec!r}: RATIO {ratio_s!r} is not a number") from None
        if not 0 < ratio < 1:
            raise MixError(
                f"mix {spec!r}: RATIO must be in (0, 1) (the share of the training rows drawn from the file), "
                f"got {ratio}"
            )
        out.append(MixSpec(path.strip(), ratio))
    total = sum(m.ratio for m in out)
    if out and total >= 1:
        raise MixError(
            f"mix: the ratios sum to {total:g}; they must leave room for the domain data (sum < 1)"
        )
    return out


# ------------------------------------------------------------------ --reward


RULES = ("exact", "contains", "format", "length")
NEEDS_REFERENCE = ("exact", "contains")


class RewardSpecError(ValueError):
    pass


@dataclass(frozen=True)
class RuleSpec:
    name: str  # exact | contains | format | length
    weight: float = 1.0
    target: int | None = None  # length:N

    @property
    def label(self) -> str:
        return f"length_{self.target}" if self.name == "length" else self.name


def parse_rewards(specs: list[str]) -> list[RuleSpec]:
    """``exact``, ``contains=0.5``, ``format``, ``length:64=0.2`` -> specs (errors name the spec)."""
    out = []
    for spec in specs or []:
        body, _, weight_s = str(spec).partition("=")
        name, _, arg = body.strip().partition(":")
        name = name.strip().lower()
        if name not in RULES:
            raise RewardSpecError(
                f"reward {spec!r}: unknown rule {name!r}; known: exact, contains, format, length:N"
            )
        try:
            weight = float(weight_s) if weight_s.strip() else 1.0
        except ValueError:
            raise RewardSpecError(f"reward {spec!r}: weight {weight_s!r} is not a number") from None
        target = None
        if name == "length":
            if not arg.strip().isdigit() or int(arg) < 1:
                raise RewardSpecError(
                    f"reward {spec!r}: expected length:N with N >= 1 tokens, e.g. length:128"
                )
            target = int(arg)
        elif arg:
            raise RewardSpecError(f"reward {spec!r}: {name} takes no argument")
        out.append(RuleSpec(name, weight, target))
    labels = [r.label for r in out]
    if len(set(labels)) != len(labels):
        raise RewardSpecError(f"reward: a rule is listed twice ({', '.join(labels)})")
    return out
