"""augment's settings (:class:`AugmentConfig`) and the generating model's, shared with pairs
(:class:`GeneratorConfig`): light, for `curate augment --help` and `curate pairs --help` (see
:mod:`curate.configs`); the stage is :mod:`curate.augment`, the model clients
:mod:`curate.augment.teachers`.

GeneratorConfig is declared once for every stage that calls a model that writes text: augment
(``--cot``: chain-of-thought rationales) and pairs (mode ``generated``: the rejected answers). Both
stages' Configs inherit it, so the command line, recipes and the Python API spell each setting the
same way in both (``--model`` / ``model:``, ``--model-url``, ``--model-name`` and the client's
limits), with one help text and one range check. augment's older spellings (``--teacher``,
``--teacher-url``, ``--teacher-model``; recipe keys ``teacher``...) are deprecated aliases of these
(the ``deprecated`` metadata of AugmentConfig's fields: :func:`generator_field`).

The generation cache is keyed by the model's identity (its directory's content or its endpoint and
served name), the generation parameters and the messages (:class:`curate.augment.teachers.TeacherCache`),
never by the names of these settings: the same model asked the same thing is a cache hit whichever
spelling asked.
"""

from __future__ import annotations

import warnings
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING

from curate.core.coerce import OptionError
from curate.core.stage import deprecated_keys

if TYPE_CHECKING:  # pragma: no cover
    from curate.augment.teachers import Teacher

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RESPONSE_BYTES = 8 << 20  # a chat completion of a few thousand tokens is a few tens of KB
STYLES = ("plain", "think")  # chain-of-thought styles (--cot-style)


def setting(default, help: str, **meta):
    """A field with its command-line help and the rest of its option (curate.commands.generated: a
    range ``min``/``max``/``min_open``, ``choices``, ``path``, ``flag``...)."""
    return field(default=default, metadata={"help": help, **meta})


def generator_field(name: str, **meta):
    """:class:`GeneratorConfig`'s field ``name`` again, with more metadata (a stage's deprecated
    spellings of it): the default and help stay declared once."""
    base = GeneratorConfig.__dataclass_fields__[name]
    return field(default=base.default, metadata={**base.metadata, **meta})


@dataclass
class GeneratorConfig:
    """The generating model and its client: which model, how requests are made, how it generates."""

    model: str | None = setting(
        None, "The generating model: a local Hugging Face model directory, or an OpenAI-compatible base URL."
    )
    model_url: str | None = setting(None, "OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1).")
    model_name: str | None = setting(None, "Model name sent to the endpoint.")
    api_key_env: str = setting(
        "OPENAI_API_KEY", "Environment variable holding the endpoint's API key (sent as a Bearer token)."
    )
    concurrency: int = setting(4, "Endpoint: parallel requests (>= 1).", min=1)
    rpm: float | None = setting(
        None, "Endpoint: at most this many requests per minute (default or 0: no limit).", min=0
    )
    max_retries: int = setting(
        5,
        "Endpoint: retries on 429/5xx/connection errors (exponential backoff, Retry-After honoured); "
        "0: one attempt only.",
        min=0,
    )
    timeout: float = setting(
        DEFAULT_TIMEOUT,
        "Endpoint: overall deadline of one request in seconds (connect, send, wait and the whole body; "
        "a slow-drip answer is cut there and retried).",
        min=0,
        min_open=True,
    )
    max_response_bytes: int = setting(
        DEFAULT_MAX_RESPONSE_BYTES,
        "Endpoint: refuse a response body larger than this (read in chunks, never whole).",
        min=1024,
    )
    max_new_tokens: int = setting(
        512,
        "Longest generation, in tokens; an endpoint's completion longer than that (its usage count, or "
        "over 16 characters per token) is rejected with that reason.",
        min=1,
    )
    temperature: float = setting(0.0, "0 = greedy (reproducible).")
    cache: str | None = setting(
        None,
        "SQLite cache of generations keyed by (model, parameters, prompt); default "
        "~/.cache/tamis/teacher.sqlite (or $TAMIS_CACHE/teacher.sqlite). A re-run pays nothing twice.",
        path="file",
    )
    no_cache: bool = setting(False, "Neither read nor write the generation cache.", flag=True)
    trust_remote_code: bool = setting(
        False, "Local model: allow code shipped with the model (off by default).", flag=True
    )

    @property
    def has_model(self) -> bool:
        return bool(self.model or self.model_url)

    def check_generator(self) -> None:
        """The client's limits (each Config calls it from its own validation)."""
        if self.concurrency < 1:
            raise OptionError("concurrency", f"must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise OptionError("max_retries", f"must be >= 0, got {self.max_retries}")
        if self.rpm is not None and self.rpm < 0:
            raise OptionError("rpm", f"must be >= 0 (0: no limit), got {self.rpm}")
        if self.max_new_tokens < 1:
            raise OptionError("max_new_tokens", f"must be at least 1, got {self.max_new_tokens}")
        if self.timeout <= 0:
            raise OptionError("timeout", f"must be > 0 seconds, got {self.timeout}")
        if self.max_response_bytes < 1024:
            raise OptionError("max_response_bytes", f"must be at least 1024, got {self.max_response_bytes}")

    def make_generator(self, **kwargs) -> Teacher:
        """The model client these settings describe (``kwargs``: a stage's own extras, batch_size)."""
        from curate.augment import teachers  # the clients: not for --help (see curate.configs)

        return teachers.make_teacher(  # through the module: tests replace make_teacher there
            self.model,
            url=self.model_url,
            model=self.model_name,
            cache_path=self.cache,
            no_cache=self.no_cache,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            api_key_env=self.api_key_env,
            concurrency=self.concurrency,
            rpm=self.rpm,
            max_retries=self.max_retries,
            trust_remote_code=self.trust_remote_code,
            timeout=self.timeout,
            max_response_bytes=self.max_response_bytes,
            **kwargs,
        )

    def generator_models(self) -> list[str]:
        """The model, as cache keys and manifests name it: never a query string or user:password (an
        API key can ride there)."""
        from curate.augment import teachers  # not for --help

        target, served = teachers.resolve_target(self.model, self.model_url, self.model_name)
        if served is None:
            return [target]
        return [f"{teachers.endpoint_urls(target)[1]}#{served}"]


def check_teacher_limits(config: GeneratorConfig) -> None:
    """The endpoint limits shared by augment and pairs (the name before :class:`GeneratorConfig`)."""
    GeneratorConfig.check_generator(config)


@dataclass
class AugmentConfig(GeneratorConfig):
    """augment's settings; the chain-of-thought teacher is the generating model of
    :class:`GeneratorConfig` (``model``, ``model_url``, ``model_name`` and its client settings)."""

    # the teacher, spelled as pairs spells its model; augment's older spellings are deprecated
    model: str | None = generator_field("model", deprecated=("--teacher",))
    model_url: str | None = generator_field("model_url", deprecated=("--teacher-url",))
    model_name: str | None = generator_field("model_name", deprecated=("--teacher-model",))
    fewshot: int = setting(0, "Add a variant with K retrieved demonstrations.")
    cot: bool = setting(
        False, "Add chain-of-thought variants written by --model (checked against the answer).", flag=True
    )
    rephrase: int = setting(0, "Add N template rephrasings of the instruction per row.")
    system_variants: int = setting(0, "Add N system-prompt variants per row (templates).")
    # few-shot retrieval
    embed_model: str = setting("use", "Few-shot retrieval: use, minilm or a local dir.")
    near_dup: float = setting(
        0.9,
        "Few-shot: a candidate whose question or answer embedding has at least this cosine with the "
        "row's is a near-duplicate and never a demonstration.",
    )
    answer_overlap: float = setting(
        0.5,
        "Few-shot: a candidate whose answer shares this fraction of character 5-grams with the row's "
        "answer (containment) is never a demonstration.",
    )
    # chain of thought
    check: str = setting(
        "contains",
        "How a rationale must reach the reference answer: contains, final (text after the final-answer "
        "marker equals it) or overlap:X (share X of its character bigrams, for long answers).",
    )
    cot_style: str = setting(
        "plain",
        "plain: the teacher's text; think: <think>reasoning</think> followed by the reference answer.",
        choices=("plain", "think"),
    )
    batch_size: int = setting(8, "Local teacher: prompts per generate call.")
    # templates
    lang: str = setting("auto", "Template language (auto: from each question).", choices=("auto", "zh", "en"))
    templates: str | None = setting(
        None,
        "Directory overriding the built-in templates (cot_zh.txt, rephrase_en.txt, system_zh.txt...).",
        path="dir",
        exists=True,
    )
    replace_system: bool = setting(
        False, "System variants also for rows that have a system prompt.", flag=True
    )
    seed: int = setting(0, "Random seed for the choice of rephrasing and system-prompt templates.")
    variants_only: bool = setting(
        False, "Write only the variants (originals go to the dropped file).", flag=True
    )
    # the deprecated spellings as keyword arguments, for Python callers
    teacher: InitVar[str | None] = None
    teacher_url: InitVar[str | None] = None
    teacher_model: InitVar[str | None] = None

    def __post_init__(self, teacher=None, teacher_url=None, teacher_model=None) -> None:
        self._adopt_teacher_spellings(teacher=teacher, teacher_url=teacher_url, teacher_model=teacher_model)
        for name in ("fewshot", "rephrase", "system_variants"):
            if getattr(self, name) < 0:
                raise OptionError(name, f"must be >= 0, got {getattr(self, name)}")
        if not (self.fewshot or self.cot or self.rephrase or self.system_variants):
            asks = ("fewshot", "cot", "rephrase", "system_variants")
            raise OptionError(
                None,
                "nothing to do: ask for {fewshot}, {cot}, {rephrase} or {system_variants}",
                mentions=asks,
            )
        if self.cot and not self.has_model:
            raise OptionError(
                "cot", "needs a teacher model ({model} or {model_url})", mentions=("model", "model_url")
            )
        for name in ("near_dup", "answer_overlap"):
            if not 0 < getattr(self, name) <= 1:
                raise OptionError(name, f"must be in (0, 1], got {getattr(self, name)}")
        from curate.augment.cot import parse_check  # the stage's parser: not for --help

        parse_check(self.check)
        if self.cot_style not in STYLES:
            raise OptionError("cot_style", f"must be one of {', '.join(STYLES)}")
        if self.lang not in ("auto", "zh", "en"):
            raise OptionError("lang", "must be auto, zh or en")
        self.check_generator()

    def _adopt_teacher_spellings(self, **old: str | None) -> None:
        renamed = deprecated_keys(type(self))
        for key, value in old.items():
            if value is None:
                continue
            target = renamed[key]
            if getattr(self, target) is not None:
                raise ValueError(f"{key} and {target} are the same setting: give only {target}")
            warnings.warn(
                f"AugmentConfig({key}=...) is deprecated: use {target}", DeprecationWarning, stacklevel=4
            )
            setattr(self, target, value)
