"""Every input format by its ``--format`` name, with the aliases users type, and :func:`convert`: one input
row -> one canonical record."""

from __future__ import annotations

from collections.abc import Callable

from curate.io.formats.alpaca import from_alpaca
from curate.io.formats.chat import (
    from_llamafactory_preference,
    from_llamafactory_v1_preference,
    from_openai,
    from_sharegpt,
)
from curate.io.formats.columns import from_qa, from_text
from curate.io.formats.preference import (
    from_hh_rlhf,
    from_implicit_preference,
    from_trl_preference,
    from_trl_prompt_completion,
)
from curate.records import Record, RecordError

CONVERTERS: dict[str, Callable[[dict, dict], Record]] = {
    "openai": from_openai,
    "sharegpt": from_sharegpt,
    "llamafactory-preference": from_llamafactory_preference,
    "llamafactory-v1-preference": from_llamafactory_v1_preference,
    "alpaca": from_alpaca,
    "trl-preference": from_trl_preference,
    "implicit-preference": from_implicit_preference,
    "hh-rlhf": from_hh_rlhf,
    "trl-prompt-completion": from_trl_prompt_completion,
    "text": from_text,
    "qa": from_qa,
}

FORMAT_ALIASES = {
    "messages": "openai",
    "trl-messages": "openai",
    "kto": "openai",
    "preference": "trl-preference",
    "dpo": "trl-preference",
    "prompt-completion": "trl-prompt-completion",
    "plain": "qa",
    "llamafactory-dpo": "llamafactory-preference",
    "pt": "text",
}

FORMATS = sorted(set(CONVERTERS) | {"canonical"})


def convert(row: dict, fmt: str, ctx: dict) -> Record:
    try:
        return CONVERTERS[fmt](row, ctx)
    except KeyError as exc:
        raise RecordError(f"missing field {exc.args[0]!r}", str(exc.args[0])) from None
