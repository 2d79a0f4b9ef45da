"""The settings of the model that writes text, declared once for every stage that calls one: augment
(``--cot``: chain-of-thought rationales) and pairs (mode ``generated``: the rejected answers).

Both stages' Configs inherit :class:`GeneratorConfig`, so the command line, recipes and the Python API
spell each setting the same way in both (``--model`` / ``model:``, ``--model-url``, ``--model-name``
and the client's limits), with one help text and one range check. augment's older spellings
(``--teacher``, ``--teacher-url``, ``--teacher-model``; recipe keys ``teacher``...) are deprecated
aliases of these (the ``deprecated`` metadata of AugmentConfig's fields: :func:`generator_field`).

The generation cache is keyed by the model's identity (its directory's content or its endpoint and
served name), the generation parameters and the messages (:class:`curate.augment.teachers.TeacherCache`),
never by the names of these settings: the same model asked the same thing is a cache hit whichever
spelling asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curate.augment import teachers
from curate.augment.teachers import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, endpoint_urls


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
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.rpm is not None and self.rpm < 0:
            raise ValueError(f"rpm must be >= 0 (0: no limit), got {self.rpm}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.max_response_bytes < 1024:
            raise ValueError(f"max_response_bytes must be at least 1024, got {self.max_response_bytes}")

    def make_generator(self, **kwargs) -> teachers.Teacher:
        """The model client these settings describe (``kwargs``: a stage's own extras, batch_size)."""
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
        target, served = teachers.resolve_target(self.model, self.model_url, self.model_name)
        if served is None:
            return [target]
        return [f"{endpoint_urls(target)[1]}#{served}"]


def check_teacher_limits(config: GeneratorConfig) -> None:
    """The endpoint limits shared by augment and pairs (the name before :class:`GeneratorConfig`)."""
    GeneratorConfig.check_generator(config)
