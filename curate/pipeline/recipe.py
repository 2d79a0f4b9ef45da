"""Recipes: one YAML file naming the inputs, the stages in order with their options, and the outputs.

```yaml
name: ops-qa                    # optional; default: the recipe file's stem
inputs:                         # what `curate ingest` reads: files of any format, Parquet shard
  - ops_qa.jsonl                #   folders, save_to_disk folders, a LLaMA-Factory dataset_info.json
  - path: ops_qa.gbk.csv
    format: qa                  # optional overrides, as on the command line
    map: {question: 问题, answer: 回答}
stages:                         # in order; ingest is implicit (first) unless listed with options
  - dedup: {threshold: 0.8}
  - filter
  - select: {target: 1000}
outputs:
  data: ../out/ops_qa.curated.jsonl
work_dir: ../.tamis/ops_qa      # stage cache and run manifests (default: .tamis/<name> beside the recipe)
state: ../.tamis/ops_qa/state   # dataset versions for `curate refresh` (default: <work_dir>/state)
max_rejected: 5                 # as --max-rejected: unreadable input rows tolerated before exit 1
```

Relative paths are resolved against the recipe file's directory, so a recipe runs the same from any
working directory. Every error names the file, the line and the key (``recipe.yaml:7: stages[1].dedup:
unknown option 'treshold' (did you mean 'threshold'?)``).
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate import engines, rejects, yamlsafe
from curate import stages as stage_registry
from curate.core.errors import ConfigError, UsageError
from curate.core.stage import Scope, StageContext
from curate.core.vocab import side_path
from curate.pipeline.starter import STARTER, starter  # noqa: F401  (re-exported: `curate init`)
from curate.redact import scrub

TOP_KEYS = tuple("name description engine inputs stages outputs work_dir state version max_rejected".split())
# `engine: ray` or `engine: {name: ray, ray_address: auto, ray_cpus: 8, block_rows: 20000, actors: 4}`:
# the command line's names (--ray-address...); `address` and `num_cpus` still work, with a warning
ENGINE_KEYS = engines.SETTINGS
OUTPUT_KEYS = ("data", "dropped", "rejects", "report", "manifest")
# a recipe's `ingest:` options: the source stage's Config fields (the inputs' defaults)
INGEST_KEYS = tuple(f.name for f in stage_registry.source().fields())
INPUT_KEYS = ("path", *INGEST_KEYS)


class RecipeError(UsageError):
    """A recipe that cannot run; the message names file, line and key."""


@dataclass
class InputSpec:
    path: Path
    format: str | None = None
    mapping: dict[str, list[str]] = field(default_factory=dict)
    sheet: str | None = None
    encoding: str | None = None  # None: detected
    # what the input itself set in the recipe; the ingest stage's options fill in the rest
    own: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    where: tuple | None = field(default=None, repr=False, compare=False)  # its key path in the recipe

    def as_dict(self) -> dict[str, Any]:
        d = {"path": str(self.path), "format": self.format, "map": self.mapping, "sheet": self.sheet}
        if self.encoding:
            d["encoding"] = self.encoding
        return d


@dataclass
class Step:
    """One stage of a recipe: its registry name, a unique id within the recipe, and its options."""

    name: str
    id: str
    options: dict[str, Any]
    line: int | None = None
    # options set by `--set` (their errors name the flag, not a recipe line)
    overridden: set[str] = field(default_factory=set, compare=False, repr=False)

    def config_hash(self) -> str:
        return _hash(canonical_json({"name": self.name, "options": self.options}))


@dataclass
class Recipe:
    path: Path | None
    name: str
    inputs: list[InputSpec]
    steps: list[Step]
    outputs: dict[str, Path]
    work_dir: Path
    state_dir: Path
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    text_sha256: str | None = None
    engine: engines.EngineSpec | None = None  # None: local
    max_rejected: float | int = 0  # `max_rejected:` (--max-rejected overrides it): see curate.rejects

    @property
    def base(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def resolved(self) -> dict[str, Any]:
        """The fully resolved configuration (what a manifest records; URLs without credentials)."""
        return scrub(
            {
                "name": self.name,
                "recipe": str(self.path) if self.path else None,
                "inputs": [i.as_dict() for i in self.inputs],
                "stages": [{"stage": s.name, "id": s.id, "options": s.options} for s in self.steps],
                "outputs": {k: str(v) for k, v in self.outputs.items()},
                "work_dir": str(self.work_dir),
                "state": str(self.state_dir),
                "engine": (self.engine or engines.EngineSpec()).settings(),
                **({"max_rejected": self.max_rejected} if self.max_rejected else {}),
            }
        )


def default_outputs(recipe: Recipe) -> dict[str, Path]:
    """The recipe's outputs, with the defaults of those it does not name (data in the work directory,
    dropped and rejects beside the data)."""
    outs = dict(recipe.outputs)
    data = outs.get("data") or (recipe.work_dir / "output" / f"{recipe.name}.curated.jsonl")
    outs["data"] = data
    outs.setdefault("dropped", side_path(data, "dropped"))
    outs.setdefault("rejects", side_path(data, "rejects"))
    return outs


def parse_engine(value: Any, ctx: Any = None):
    """``engine:`` of a recipe -> an EngineSpec (None when absent). The engine never changes results,
    so it is not part of any cache key: the same recipe re-runs from cache on either engine."""
    if value is None:
        return None

    def error(path: tuple, msg: str) -> RecipeError:
        return ctx.error(path, msg) if ctx else RecipeError(f"{_fmt_path(path)}: {msg}")

    if not isinstance(value, str | dict):
        raise error(
            ("engine",), f"expected local, ray or a mapping of {', '.join(ENGINE_KEYS)}, got {value!r}"
        )
    for k in value if isinstance(value, dict) else ():
        if k not in ENGINE_KEYS and k not in engines.OLD_SPELLINGS:
            raise error(
                ("engine", k),
                f"unknown engine key{_suggest(k, ENGINE_KEYS)}; allowed: {', '.join(ENGINE_KEYS)}",
            )
    try:
        return engines.from_settings(value if isinstance(value, dict) else {"name": value})
    except engines.SettingError as exc:
        raise error(("engine", exc.key) if isinstance(value, dict) else ("engine",), exc.message) from None


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class _Lines:
    """Key path -> line number, from the YAML node tree (so errors can point at a line)."""

    def __init__(self, node: yaml.Node | None):
        self.map: dict[tuple, int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple) -> None:
        self.map[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                self.map[path + (key,)] = k.start_mark.line + 1
                self._walk(v, path + (key,))
                self.map[path + (key,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, path + (i,))

    def line(self, path: tuple) -> int | None:
        while path:
            if path in self.map:
                return self.map[path]
            path = path[:-1]
        return self.map.get(())


def _fmt_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class _Ctx:
    def __init__(self, file: str, lines: _Lines):
        self.file = file
        self.lines = lines

    def error(self, path: tuple, message: str) -> RecipeError:
        line = self.lines.line(path)
        where = f"{self.file}:{line}" if line else self.file
        key = _fmt_path(path)
        return RecipeError(f"{where}: {key + ': ' if key else ''}{message}")


class _NoLines:
    def line(self, path: tuple) -> None:
        return None


_NO_LINES = _Ctx("--set", _NoLines())  # type: ignore[arg-type]


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_recipe(path: Path | str, *, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file (the stages' own options are checked by the registry)."""
    shown = Path(path)
    if not shown.is_file():
        raise RecipeError(f"{shown}: recipe file not found")
    path = shown.resolve()  # work dirs, outputs and manifests hold absolute paths
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_recipe(text, path, overrides=overrides, shown=str(shown))


def parse_recipe(
    text: str, path: Path | None = None, *, overrides: dict[str, Any] | None = None, shown: str | None = None
) -> Recipe:
    file = shown or (str(path) if path else "<recipe>")
    try:
        node = yamlsafe.compose(text)
        data = yamlsafe.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"{where}: invalid YAML: {problem}") from None
    ctx = _Ctx(file, _Lines(node))
    if data is None:
        raise ctx.error((), "the recipe is empty; run `curate init` for a starter")
    if not isinstance(data, dict):
        raise ctx.error(
            (), f"a recipe is a mapping of keys ({', '.join(TOP_KEYS)}), got {type(data).__name__}"
        )
    for key in data:
        if key not in TOP_KEYS:
            raise ctx.error((key,), f"unknown key{_suggest(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}")
    base = path.parent if path else Path.cwd()

    def resolve(p: Any, where: tuple) -> Path:
        if not isinstance(p, str) or not p.strip():
            raise ctx.error(where, f"expected a path, got {p!r}")
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(os.path.normpath(base / q))

    name = data.get("name") or (path.stem if path else "recipe")
    if not isinstance(name, str):
        raise ctx.error(("name",), "expected a string")
    name = name.strip()
    if not name or any(c in name for c in "/\\\0"):
        raise ctx.error(("name",), f"{name!r} cannot be used as a directory name")

    inputs = _parse_inputs(ctx, data, resolve)
    steps = _parse_steps(ctx, data, inputs)
    outputs = _parse_outputs(ctx, data, resolve, inputs, path)

    work_dir = resolve(data["work_dir"], ("work_dir",)) if data.get("work_dir") else base / ".tamis" / name
    state_dir = resolve(data["state"], ("state",)) if data.get("state") else work_dir / "state"
    desc = data.get("description")
    engine = parse_engine(data.get("engine"), ctx)
    recipe = Recipe(
        path=path,
        name=name,
        inputs=inputs,
        steps=steps,
        outputs=outputs,
        work_dir=work_dir,
        state_dir=state_dir,
        description=str(desc) if desc is not None else None,
        raw=data,
        text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        engine=engine,
        max_rejected=_max_rejected(ctx, data.get("max_rejected")),
    )
    if overrides:
        apply_overrides(recipe, overrides)
    recipe.lines = ctx  # type: ignore[attr-defined]  # kept for stage-option errors
    return recipe


def _parse_inputs(ctx: _Ctx, data: dict[str, Any], resolve: Callable[[Any, tuple], Path]) -> list[InputSpec]:
    """``inputs:``: paths, or mappings with ``path:`` and per-input format, map, sheet, encoding."""
    raw_inputs = data.get("inputs")
    if raw_inputs is None:
        raise ctx.error((), "no `inputs:` (a list of files to read)")
    if isinstance(raw_inputs, str):
        raw_inputs = [raw_inputs]
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ctx.error(("inputs",), "expected a non-empty list of inputs")
    inputs = []
    for i, item in enumerate(raw_inputs):
        where = ("inputs", i)
        if isinstance(item, str):
            inputs.append(InputSpec(resolve(item, where), where=where))
            continue
        if not isinstance(item, dict) or "path" not in item:
            raise ctx.error(where, "expected a path or a mapping with `path:` (and format, map, sheet)")
        for k in item:
            if k not in INPUT_KEYS:
                raise ctx.error(
                    where + (k,), f"unknown key{_suggest(k, INPUT_KEYS)}; allowed: {', '.join(INPUT_KEYS)}"
                )
        inputs.append(
            InputSpec(
                resolve(item["path"], where + ("path",)),
                _opt_str(ctx, item, "format", where),
                _mapping(ctx, item.get("map"), where + ("map",)),
                _opt_str(ctx, item, "sheet", where),
                _encoding(ctx, item, where),
                where=where + ("path",),
            )
        )
    return inputs


def _max_rejected(ctx: _Ctx, value: Any) -> float | int:
    """``max_rejected:``: the rule of ``--max-rejected`` (a row count, or a fraction below 1)."""
    try:
        if isinstance(value, bool):
            raise ValueError(f"{value!r}: expected a row count (5) or a fraction below 1 (0.01)")
        return rejects.parse(value, name="")
    except ValueError as exc:
        raise ctx.error(("max_rejected",), str(exc)) from None


def _parse_steps(ctx: _Ctx, data: dict[str, Any], inputs: list[InputSpec]) -> list[Step]:
    """``stages:``: names from the stage registry, each with its options; ingest first (added when
    the recipe does not name it; its options are the inputs' defaults), exports last."""
    raw_stages = data.get("stages") or []
    if not isinstance(raw_stages, list):
        raise ctx.error(
            ("stages",), "expected a list of stages, e.g. `- dedup` or `- dedup: {threshold: 0.8}`"
        )
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw_stages):
        where = ("stages", i)
        if isinstance(item, str):
            sname, opts = item.strip(), {}
        elif isinstance(item, dict) and len(item) == 1:
            sname, opts = next(iter(item.items()))
            where = where + (sname,)
            if opts is None:
                opts = {}
            if not isinstance(opts, dict):
                raise ctx.error(where, f"the options of a stage are a mapping, got {opts!r}")
        else:
            raise ctx.error(where, "each stage is a name (`- filter`) or one `name: {options}` mapping")
        order = stage_registry.names()  # read now: a stage registered after import counts
        if sname not in order:
            raise ctx.error(
                where,
                f"unknown stage {sname!r}{_suggest(sname, order)}; stages: {', '.join(order)}",
            )
        if stage_registry.get(sname).scope is Scope.SOURCE:
            if i != 0:
                raise ctx.error(where, f"{sname} reads the inputs, so it can only be the first stage")
            for k in opts:
                if k not in INGEST_KEYS:
                    raise ctx.error(
                        where + (k,),
                        f"unknown {sname} option{_suggest(k, INGEST_KEYS)}; allowed: {', '.join(INGEST_KEYS)}",
                    )
            try:  # the values as its Config checks them (the one `curate ingest` builds)
                stage_registry.get(sname).build_config(opts, StageContext())
            except ConfigError as exc:
                raise ctx.error(where + ((exc.key,) if exc.key else ()), exc.message) from None
        seen[sname] = seen.get(sname, 0) + 1
        sid = sname if seen[sname] == 1 else f"{sname}-{seen[sname]}"
        steps.append(Step(sname, sid, dict(opts), ctx.lines.line(where)))
    source = stage_registry.source().name
    if not steps or steps[0].name != source:
        steps.insert(0, Step(source, source, {}, None))
    for spec in inputs:
        spec.own = {
            "format": spec.format,
            "map": dict(spec.mapping),
            "sheet": spec.sheet,
            "encoding": spec.encoding,
        }
    _apply_ingest_options(inputs, steps[0].options, ctx)
    # a final stage (export) comes last among the stages that change rows
    final = [stage_registry.get(s.name).final for s in steps]
    if any(final):
        first = final.index(True)
        for j in range(first, len(steps)):
            if not final[j]:
                name = steps[first].name
                raise ctx.error(
                    ("stages", j - (1 if steps[0].line is None else 0)),
                    f"{name} writes the final dataset, so only other {name}s may follow it",
                )
    return steps


def _parse_outputs(
    ctx: _Ctx,
    data: dict[str, Any],
    resolve: Callable[[Any, tuple], Path],
    inputs: list[InputSpec],
    path: Path | None,
) -> dict[str, Path]:
    """``outputs:``: each its own file, never an input or the recipe itself."""
    raw_out = data.get("outputs") or {}
    if isinstance(raw_out, str):
        raw_out = {"data": raw_out}
    if not isinstance(raw_out, dict):
        raise ctx.error(("outputs",), "expected a mapping: data, dropped, rejects, report")
    outputs: dict[str, Path] = {}
    for k, v in raw_out.items():
        if k not in OUTPUT_KEYS:
            raise ctx.error(
                ("outputs", k), f"unknown output{_suggest(k, OUTPUT_KEYS)}; allowed: {', '.join(OUTPUT_KEYS)}"
            )
        if v is not None:
            outputs[k] = resolve(v, ("outputs", k))
    in_paths = {spec.path.resolve() for spec in inputs}
    seen_out: dict[Path, str] = {}
    for k, p in outputs.items():
        if p.resolve() in in_paths:
            raise ctx.error(("outputs", k), f"{p} is an input; a recipe never overwrites its inputs")
        if path is not None and p.resolve() == path.resolve():
            raise ctx.error(("outputs", k), f"{p} is this recipe file; a recipe never overwrites itself")
        other = seen_out.get(p.resolve())
        if other is not None:
            raise ctx.error(
                ("outputs", k),
                f"{p} is also outputs.{other}; every output needs its own file",
            )
        seen_out[p.resolve()] = k
    return outputs


def _apply_ingest_options(inputs: list[InputSpec], opts: dict[str, Any], ctx: _Ctx | None) -> None:
    """Ingest options apply to the inputs that do not set their own."""
    where = ("stages", 0, stage_registry.source().name, "map")
    default_map = _mapping(ctx or _NO_LINES, opts.get("map"), where)
    for spec in inputs:
        own = spec.own or {
            "format": spec.format,
            "map": dict(spec.mapping),
            "sheet": spec.sheet,
            "encoding": spec.encoding,
        }
        spec.encoding = own.get("encoding") or (str(opts["encoding"]) if opts.get("encoding") else None)
        spec.format = own["format"] or (str(opts["format"]) if opts.get("format") else None)
        spec.sheet = own["sheet"] or (str(opts["sheet"]) if opts.get("sheet") is not None else None)
        spec.mapping = dict(own["map"]) or dict(default_map)


def _encoding(ctx: _Ctx, item: dict, where: tuple) -> str | None:
    name = _opt_str(ctx, item, "encoding", where)
    if name:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ctx.error(where + ("encoding",), f"unknown encoding {name!r}") from None
    return name


def _opt_str(ctx: _Ctx, item: dict, key: str, where: tuple) -> str | None:
    v = item.get(key)
    if v is None:
        return None
    if not isinstance(v, str | int):
        raise ctx.error(where + (key,), f"expected a string, got {v!r}")
    return str(v)


def _mapping(ctx: _Ctx, value: Any, where: tuple) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.error(where, "expected a mapping FIELD: COLUMN (or a list of columns)")
    out = {}
    for k, v in value.items():
        if isinstance(v, str):
            out[str(k)] = [c.strip() for c in v.split(",") if c.strip()]
        elif isinstance(v, list) and all(isinstance(c, str) for c in v):
            out[str(k)] = list(v)
        else:
            raise ctx.error(where + (k,), f"expected a column name or a list of names, got {v!r}")
    return out


def apply_overrides(recipe: Recipe, overrides: dict[str, Any]) -> None:
    """``--set dedup.threshold=0.9`` style overrides (already parsed to {"dedup.threshold": 0.9})."""
    for dotted, value in overrides.items():
        if "." not in dotted:
            raise RecipeError(f"--set {dotted}: expected STAGE.OPTION=VALUE")
        sid, key = dotted.split(".", 1)
        for step in recipe.steps:
            if step.id == sid:
                if stage_registry.get(step.name).scope is Scope.SOURCE:
                    if key.startswith("map."):  # --set ingest.map.question=问题
                        key, value = "map", {**(step.options.get("map") or {}), key[4:]: value}
                    if key not in INGEST_KEYS:
                        raise RecipeError(
                            f"--set {dotted}: unknown ingest option{_suggest(key, INGEST_KEYS)}; "
                            f"allowed: {', '.join(INGEST_KEYS)}"
                        )
                    if key == "map" and not isinstance(value, dict):
                        raise RecipeError(
                            f"--set {dotted}: expected a mapping, e.g. --set ingest.map.question=问题"
                        )
                    step.options[key] = value
                    step.overridden.add(key)
                    try:  # checked by its Config, as the recipe's own `ingest:` settings are
                        stage_registry.get(step.name).build_config(step.options, StageContext())
                    except ConfigError as exc:
                        raise option_error(recipe, step, exc.key, exc.message) from None
                    _apply_ingest_options(recipe.inputs, step.options, getattr(recipe, "lines", None))
                    break
                step.options[key] = value
                step.overridden.add(key)
                break
        else:
            ids = [s.id for s in recipe.steps]
            raise RecipeError(
                f"--set {dotted}: no stage {sid!r} in the recipe{_suggest(sid, ids)}; stages: {', '.join(ids)}"
            )


def option_error(recipe: Recipe, step: Step, key: str | None, message: str) -> RecipeError:
    """An error about one stage option, pointing at the recipe line (or at ``--set`` when the option
    came from the command line)."""
    if key is not None and key in step.overridden:
        return RecipeError(f"{step.id}.{key}: {message} (from --set)")
    if key is None and step.overridden:
        shown = ", ".join(f"{step.id}.{k}" for k in sorted(step.overridden))
        message = f"{message} (with --set {shown})"
    ctx: _Ctx | None = getattr(recipe, "lines", None)
    idx = recipe.steps.index(step)
    # the implicit ingest is not in the file: indices shift by one
    file_idx = idx if recipe.steps[0].line is not None else idx - 1
    path: tuple = ("stages", file_idx, step.name) + ((key,) if key else ())
    if ctx is None:
        return RecipeError(f"{_fmt_path(path)}: {message}")
    return ctx.error(path, message)
