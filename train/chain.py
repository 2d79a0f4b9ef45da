"""`train chain chain.yaml`: the source article's vertical-domain recipe as one resumable run.

The article's "full version" is base model + continued pretraining + SFT, then DPO or RLHF; its "youth
version" is chat model + SFT. A chain file lists the stages in order, each with its data and settings::

    model: models/Qwen2.5-0.5B          # what the first stage starts from
    settings: {method: lora}            # shared by every stage (any `train` setting)
    stages:
      - stage: pt
        data: data/domain_corpus.jsonl
      - stage: sft
        data: out/ops_qa.trl.jsonl
        mix: data/general_sft.jsonl:0.2  # stage settings may sit beside `data` or under `settings:`
      - stage: rm                        # a reward model; the policy passes it by
        data: out/ops_qa.pairs.jsonl
      - stage: rloo                      # its reward model is the chain's rm stage unless given
        data: out/ops_qa.trl.jsonl
        settings: {reward: [contains=0.5]}
    eval:                                # optional: held-out sets, loss/perplexity per set and stage
      domain: out/ops_qa.eval.jsonl
      general: data/general_eval.jsonl

Each policy stage starts from the previous policy stage's result: a run with whole weights (``full``,
``freeze``, ``bitfit``) hands over ``final/``; an adapter run is merged into its base first
(``RUN/export``, the weights ``train export`` writes), so the next stage's LoRA (and DPO's or RLOO's
adapter-disabled reference) sits on the right base. An ``rm`` stage trains a reward model from the current
policy and is the default reward model of later ``rloo``/``grpo`` stages.

Paths are relative to the chain file. Stage run directories live in the chain directory (``output:``,
default ``runs/chain-<file stem>`` beside the chain file) and are named by the stage's run key (data,
settings, starting model), so a re-run finds them: a finished stage is skipped, an interrupted one
resumes from its last checkpoint, a changed one trains into a new directory (and so do the stages after
it, whose starting model changed). ``chain.json`` names every stage's run directory, data hashes, final
metrics and result, rewritten after each stage. Everything is checked before any model is loaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import train.data as D
from curate.core.errors import Failed, TamisError
from curate.io import atomic_write_text
from train.callbacks import TrainInterrupted
from train.check import render_report
from train.config import STAGES, ConfigError, load_yaml, resolve
from train.data import DataError, sha256_file
from train.export import export_run
from train.methods import detect_device
from train.mix import MixError, parse_mix
from train.multieval import evaluate_models, models_of_chain, write_report
from train.online import preflight
from train.plan import render_plan
from train.run import RunError, prepare, run_key, train

POLICY_STAGES = ("pt", "sft", "dpo", "kto", "orpo", "rloo", "grpo")
WHOLE_WEIGHT_METHODS = ("full", "freeze", "bitfit")
UNMERGEABLE = ("prefix", "prompt", "ptuning")
PATH_SETTINGS = ("reward_model", "template", "eval_data")
STAGE_KEYS = ("stage", "name", "data", "settings")
PENDING_RM = "<the chain's rm stage>"  # a reward model an earlier stage of the chain will train


class ChainError(TamisError):
    """A chain file that cannot run (exit 2, one line naming the file and the stage)."""


@dataclass
class StageSpec:
    index: int  # 1-based
    name: str
    stage: str
    data: list[str]
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return f"stage {self.index} ({self.name})"


@dataclass
class Chain:
    path: Path
    model: str
    output: Path
    settings: dict[str, Any]
    stages: list[StageSpec]
    eval_sets: dict[str, str] = field(default_factory=dict)


def _abs(base: Path, value: str, keep_unknown: bool = False) -> str:
    """A path of the chain file: relative to the file's directory, else to the current directory.
    ``keep_unknown``: a value that is no existing path stays as written (the hub id of a model in the
    local cache, ``template: chatml``); otherwise it is taken relative to the chain file (and the stage's
    check reports it missing)."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    if (base / p).exists():
        return str((base / p).resolve())
    if p.exists():
        return str(p.resolve())
    return value if keep_unknown else str(base / p)


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def load_chain(path: str | Path) -> Chain:
    """Parse and check a chain file: stage names, data files, settings (typed like `train` flags), mix
    files, reward models, methods that the next stage cannot start from. Loads no model."""
    path = Path(path)
    try:
        doc = load_yaml(path)
    except ConfigError as e:
        raise ChainError(str(e)) from None
    base = path.resolve().parent
    where = str(path)
    unknown = set(doc) - {"model", "output", "settings", "stages", "eval"}
    if unknown:
        raise ChainError(
            f"{where}: unknown key {sorted(unknown)[0]!r} (known: model, output, settings, stages, eval)"
        )
    if not doc.get("model"):
        raise ChainError(f"{where}: no `model:` (the model the first stage starts from)")
    model = _abs(base, str(doc["model"]), keep_unknown=True)
    shared = doc.get("settings") or {}
    if not isinstance(shared, dict):
        raise ChainError(f"{where}: `settings:` must be a mapping of train settings")
    raw_stages = doc.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ChainError(f"{where}: `stages:` must list at least one stage")
    output = (
        Path(_abs(base, str(doc["output"]))) if doc.get("output") else base / "runs" / f"chain-{path.stem}"
    )
    stages: list[StageSpec] = []
    for i, entry in enumerate(raw_stages, 1):
        if not isinstance(entry, dict) or "stage" not in entry:
            raise ChainError(f"{where}: stage {i}: expected a mapping with `stage:` and `data:`")
        stage = str(entry["stage"])
        name = str(entry.get("name") or stage)
        label = f"{where}: stage {i} ({name})"
        if stage not in STAGES:
            raise ChainError(f"{label}: unknown stage {stage!r}; known: {', '.join(STAGES)}")
        data = _as_list(entry.get("data"))
        if not data:
            raise ChainError(f"{label}: no `data:`")
        data = [_abs(base, d) for d in data]
        for d in data:
            if not Path(d).exists():
                raise ChainError(f"{label}: data file not found: {d}")
        settings = dict(shared)
        settings.update(entry.get("settings") or {})
        settings.update({k: v for k, v in entry.items() if k not in STAGE_KEYS})
        settings = {k.replace("-", "_"): v for k, v in settings.items()}
        for key in ("data", "output", "model"):
            if key in settings:
                raise ChainError(
                    f"{label}: `{key}` is set by the chain (the stage's data, its run directory, the previous result)"
                )
        for key in PATH_SETTINGS:
            if key in settings and settings[key]:
                keep = key == "template"  # (a template may be a name: chatml)
                if isinstance(settings[key], list):
                    settings[key] = [_abs(base, v, keep) for v in settings[key]]
                else:
                    settings[key] = _abs(base, str(settings[key]), keep)
        if settings.get("mix"):
            try:
                specs = parse_mix(_as_list(settings["mix"]))
            except MixError as e:
                raise ChainError(f"{label}: {e}") from None
            settings["mix"] = [f"{_abs(base, m.path)}:{m.ratio}" for m in specs]
            for m in parse_mix(settings["mix"]):
                if not Path(m.path).exists():
                    raise ChainError(f"{label}: mix file not found: {m.path}")
        stages.append(StageSpec(i, name, stage, data, settings))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ChainError(f"{where}: two stages share a name ({', '.join(names)}); give them `name:`")
    eval_sets = {}
    for set_name, p in (doc.get("eval") or {}).items():
        eval_sets[str(set_name)] = _abs(base, str(p))
        if not Path(eval_sets[str(set_name)]).exists():
            raise ChainError(f"{where}: eval set {set_name}: file not found: {p}")
    chain = Chain(path.resolve(), model, output, shared, stages, eval_sets)
    _check_stage_configs(chain)
    return chain


def _check_stage_configs(chain: Chain) -> None:
    """Every stage's settings resolve (types, ranges, choices), reward models are classifiers, and no
    policy stage that another one follows uses a method whose adapter cannot be merged."""
    has_rm = False
    policy_positions = [s.index for s in chain.stages if s.stage in POLICY_STAGES]
    for spec in chain.stages:
        label = f"{chain.path}: {spec.label}"
        try:
            cfg = stage_config(spec, chain.model, rm_run=(PENDING_RM if has_rm else None))
        except ConfigError as e:
            raise ChainError(f"{label}: {e}") from None
        if spec.stage == "rm":
            has_rm = True
        if spec.stage in POLICY_STAGES and spec.index != policy_positions[-1] and cfg.method in UNMERGEABLE:
            raise ChainError(
                f"{label}: method {cfg.method} adds virtual tokens that cannot be merged into the weights the "
                "next stage starts from; use lora (or full), or make it the last stage"
            )
        if spec.stage in ("rloo", "grpo") and cfg.reward_model != PENDING_RM:
            try:
                preflight(cfg)
            except DataError as e:
                raise ChainError(f"{label}: {e}") from None


def stage_config(spec: StageSpec, model: str, rm_run: str | None = None, output: str | None = None):
    """The stage's typed config (the same resolution as `train <stage>` flags)."""
    flags = dict(spec.settings)
    if spec.stage in ("rloo", "grpo") and not flags.get("reward_model") and rm_run:
        flags["reward_model"] = rm_run
    flags.update(model=model, data=spec.data)
    if output:
        flags["output"] = output
    return resolve(spec.stage, flags={k: v for k, v in flags.items() if v is not None})


# ------------------------------------------------------------------ running


def result_model(run_dir: Path, cfg, console=None) -> Path:
    """What the next stage starts from: ``final/`` of a whole-weights run, else the merged export."""
    if cfg.method in WHOLE_WEIGHT_METHODS or not (run_dir / "final" / "adapter_config.json").is_file():
        return run_dir / "final"
    out = run_dir / "export"
    if (out / "export.json").is_file():
        return out

    dtype = "bf16" if detect_device().bf16 and cfg.bf16 is not False else "fp32"
    if console:
        console.print(f"merging the adapter of {run_dir.name} into its base for the next stage ({dtype})")
    export_run(run_dir, out, merge=True, dtype=dtype)
    return out


def _metrics(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("global_step", "first_loss", "last_loss", "first_reward", "last_reward", "last_kl", "seconds")
    out = {k: meta[k] for k in keys if meta.get(k) is not None}
    tm = meta.get("train_metrics") or {}
    out.update({k: v for k, v in tm.items() if k in ("train_loss", "train_runtime")})
    return out


def _write_manifest(
    chain: Chain, stages: list[dict[str, Any]], status: str, extra: dict | None = None
) -> Path:
    doc = {
        "chain": str(chain.path),
        "chain_sha256": sha256_file(chain.path),
        "base_model": chain.model,
        "output": str(chain.output),
        "status": status,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "stages": stages,
        **(extra or {}),
    }
    chain.output.mkdir(parents=True, exist_ok=True)
    path = chain.output / "chain.json"
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=1, default=str))
    return path


def run_chain(chain: Chain, console, *, dry_run: bool = False, callbacks_for=None) -> dict[str, Any]:
    """Run (or plan, with ``dry_run``) every stage in order. ``callbacks_for(index)`` may add Trainer
    callbacks to a stage (tests interrupt a stage with one)."""
    earlier_eval = _earlier_eval(chain)  # (the manifest is rewritten stage by stage below)
    policy = chain.model
    rm_run: str | None = None
    done: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    for spec in chain.stages:
        start = policy  # an rm stage starts from the current policy too (a fresh one-score head)
        if dry_run:  # an earlier rm stage has not trained yet: its reward model is only planned
            rm_run = (
                PENDING_RM if any(s.stage == "rm" and s.index < spec.index for s in chain.stages) else None
            )
        cfg = stage_config(spec, start, rm_run=rm_run)
        header = f"[bold]{spec.label}[/bold]: train {spec.stage} from {start}"
        if dry_run and spec.index > 1 and spec.stage != "pt":
            header += " (planned on the chain's base model: the stage starts from the result before it)"
        console.print(header, soft_wrap=True)
        try:
            ctx = prepare(cfg, preflight=getattr(cfg, "reward_model", None) != PENDING_RM)
        except (DataError, RunError, FileNotFoundError) as e:
            raise ChainError(f"{chain.path}: {spec.label}: {e}") from None
        render_plan(ctx.plan, console)
        render_report(ctx.report, console, preview=False)
        if ctx.report.failed and not cfg.skip_check:
            raise Failed(
                f"{chain.path}: {spec.label}: pre-flight checks failed (fix the data, or skip_check: true)"
            )
        if dry_run:
            plans.append({"index": spec.index, "name": spec.name, "stage": spec.stage, "plan": ctx.plan})
            continue
        fp = D.fingerprint(ctx.prep.files)
        run_dir = chain.output / f"{spec.index:02d}-{spec.name}-{run_key(cfg, fp)}"
        cfg.output = str(run_dir)
        finished_before = _status(run_dir) == "done"
        try:
            train(ctx, console, callbacks=list(callbacks_for(spec.index) if callbacks_for else ()))
        except TrainInterrupted:
            # the stage saved a checkpoint: the same command resumes it (and skips the stages before it)
            _write_manifest(
                chain, done, "interrupted", {"interrupted_stage": spec.index, "run_dir": str(run_dir)}
            )
            raise
        except (RunError, DataError) as e:
            _write_manifest(chain, done, "failed")
            raise Failed(f"{chain.path}: {spec.label}: {e}") from None
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        entry: dict[str, Any] = {
            "index": spec.index,
            "name": spec.name,
            "stage": spec.stage,
            "method": cfg.method,
            "run_dir": str(run_dir),
            "model": start,
            "data": [{"path": f["path"], "sha256": f["sha256"]} for f in meta.get("data", [])],
            "data_fingerprint": meta.get("data_fingerprint"),
            "status": meta.get("status"),
            "skipped": finished_before,
            "metrics": _metrics(meta),
        }
        if spec.stage == "rm":
            rm_run = str(run_dir)
            entry["result"] = str(run_dir)
        else:
            policy = str(result_model(run_dir, cfg, console))
            entry["result"] = policy
        if getattr(cfg, "reward_model", None):
            entry["reward_model"] = cfg.reward_model
        done.append(entry)
        _write_manifest(chain, done, "running")
        word = "skipped (finished earlier)" if finished_before else "done"
        console.print(f"[green]{spec.label} {word}[/green]: {run_dir}", soft_wrap=True)
    if dry_run:
        return {"chain": str(chain.path), "dry_run": True, "stages": plans}
    extra: dict[str, Any] = {"result": policy}
    if chain.eval_sets:
        extra["eval"] = _chain_eval(chain, done, console, earlier_eval)
    manifest = _write_manifest(chain, done, "done", extra)
    return {"chain": str(chain.path), "manifest": str(manifest), "result": policy, "stages": done, **extra}


def _earlier_eval(chain: Chain) -> dict[str, Any]:
    try:
        return json.loads((chain.output / "chain.json").read_text(encoding="utf-8")).get("eval") or {}
    except (OSError, ValueError):
        return {}


def _chain_eval(chain: Chain, done: list[dict[str, Any]], console, earlier: dict[str, Any]) -> dict[str, Any]:
    """The per-set losses of the base and every stage; an unchanged chain (same models, same held-out
    files) reuses the numbers of its last run instead of scoring again."""
    models = models_of_chain(chain.model, done)
    key = {
        "models": [[label, path] for label, path in models],
        "sets": {name: sha256_file(Path(p)) for name, p in chain.eval_sets.items()},
    }
    if earlier.get("key") == key and all(Path(f).is_file() for f in earlier.get("files", [])):
        if console:
            console.print(f"held-out evaluation unchanged: {chain.output / 'eval'}")
        return earlier
    res = evaluate_models(models, chain.eval_sets)
    return {**write_report(res, chain.output / "eval", console), "key": key}


def _status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError):
        return None
