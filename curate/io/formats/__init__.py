"""Q&A formats: detection, conversion to canonical records, and conversion back (lossless).

Supported (``--format`` names):

- ``alpaca``: instruction / input / output [/ system / history]; with chosen/rejected -> preference
  (LLaMA-Factory's alpaca preference); with ``kto_tag`` -> kto
- ``sharegpt``: ``conversations`` of {from, value} (or {role, content}), optional ``system`` and ``tools``
- ``openai``: ``messages`` of {role, content} (also TRL's conversational ``messages``); with ``label`` -> kto
- ``llamafactory-preference``: ``conversations`` + ``chosen``/``rejected`` (message objects or strings)
- ``trl-preference``: ``prompt`` + ``chosen`` + ``rejected`` (strings or message lists)
- ``trl-implicit-preference``: ``chosen`` + ``rejected`` as full conversations (message lists)
- ``hh-rlhf``: ``chosen`` + ``rejected`` strings of "\\n\\nHuman: ...\\n\\nAssistant: ..." dialogues
- ``trl-prompt-completion``: ``prompt`` + ``completion`` (with ``label`` -> kto)
- ``qa``: question/answer columns under any name (``question``, ``query``, ``ask``, ``问题``, ``回答``...)
- ``text``: ``text`` (continued pretraining), also ``.txt`` files

Input keys that no role claims are kept in ``meta``. ``meta._fmt`` remembers the source format, the key
and role names used, and how the question was assembled, so writing a row back in its own format gives
the original object.

The package, by responsibility: :mod:`.detect` (which format, which columns), :mod:`.common` (what every
reader shares), one reader module per format family (:mod:`.chat`, :mod:`.alpaca`, :mod:`.preference`,
:mod:`.columns`), :mod:`.read` (the format table and :func:`convert`) and :mod:`.write` (conversion
back, :func:`to_format`). The names below are the package's public surface.
"""

from curate.io.formats.alpaca import from_alpaca
from curate.io.formats.chat import (
    from_llamafactory_preference,
    from_llamafactory_v1_preference,
    from_openai,
    from_sharegpt,
)
from curate.io.formats.columns import from_qa, from_text
from curate.io.formats.common import ROLE_ALIASES
from curate.io.formats.detect import (
    ANSWER_NAMES,
    QUESTION_NAMES,
    SYSTEM_NAMES,
    detect_format,
    explain_qa,
)
from curate.io.formats.preference import (
    from_hh_rlhf,
    from_implicit_preference,
    from_trl_preference,
    from_trl_prompt_completion,
)
from curate.io.formats.read import CONVERTERS, FORMAT_ALIASES, FORMATS, convert
from curate.io.formats.write import (
    OPENAI_ROLES,
    SHAREGPT_ROLES,
    TOOL_KEYS,
    restore_original,
    semantic_hints,
    to_format,
)

__all__ = [
    "ANSWER_NAMES",
    "CONVERTERS",
    "FORMATS",
    "FORMAT_ALIASES",
    "OPENAI_ROLES",
    "QUESTION_NAMES",
    "ROLE_ALIASES",
    "SHAREGPT_ROLES",
    "SYSTEM_NAMES",
    "TOOL_KEYS",
    "convert",
    "detect_format",
    "explain_qa",
    "from_alpaca",
    "from_hh_rlhf",
    "from_implicit_preference",
    "from_llamafactory_preference",
    "from_llamafactory_v1_preference",
    "from_openai",
    "from_qa",
    "from_sharegpt",
    "from_text",
    "from_trl_preference",
    "from_trl_prompt_completion",
    "restore_original",
    "semantic_hints",
    "to_format",
]
