"""Forgetting, measured: loss and perplexity on several held-out sets (domain and general) for the base
model and every stage of a run or a chain, side by side; optionally lm-evaluation-harness tasks.

The source article's warning is that fine-tuning on domain data improves the domain and can cost general
ability (catastrophic forgetting), more so from a chat model than from a base model with continued
pretraining. `train eval TARGET --heldout domain=FILE --heldout general=FILE` shows both numbers for
each model: domain loss should fall stage by stage; general loss rising is what was forgotten.

Per set, rows are scored by kind: plain text (``kind=text``) on every token, Q&A on the answer given the
question (the completion-only labels of training), preference pairs on the chosen answer. Every model is
loaded in fp32 (:func:`train.evaluate.eval_dtype`), so differences come from training, not rounding.

Written to ``TARGET/eval/``: ``forgetting.json`` (every number), ``forgetting.md`` (the table) and
``forgetting.png`` (loss per set across the models).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from curate.io import atomic_write_text
from train import data as D
from train.evaluate import EvalError, _loss, eval_dtype, sequence_logprobs
from train.export import base_model_path, load_run_tokenizer, load_trained, read_run, set_pad_token


def parse_sets(items: list[str]) -> dict[str, str]:
    """``NAME=FILE`` (or a bare FILE, named by its stem) -> {name: path}; names must be unique."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise EvalError(f"--heldout {item!r}: expected NAME=FILE")
        if name in out:
            raise EvalError(f"--heldout: two sets are named {name!r}; name them NAME=FILE")
        if not Path(path).exists():
            raise EvalError(f"--heldout {name}: file not found: {path}")
        out[name] = path
    return out


# ------------------------------------------------------------------ which models


def models_of_chain(base: str, stages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(label, model directory): the base, then the result of every policy stage of a chain."""
    out = [("base", base)]
    for s in stages:
        if s["stage"] != "rm" and s.get("result"):
            out.append((f"{s['index']}:{s['name']}", s["result"]))
    return out


def models_of_target(target: Path) -> list[tuple[str, str]]:
    """A chain directory (chain.json) or a run directory (run.json): the models to compare."""
    if (target / "chain.json").is_file():
        doc = json.loads((target / "chain.json").read_text(encoding="utf-8"))
        return models_of_chain(doc["base_model"], doc.get("stages", []))

    try:
        meta = read_run(target)
    except Exception as e:
        raise EvalError(str(e)) from None
    if meta["stage"] == "rm":
        raise EvalError(f"{target} is a reward model: score pairs with `train eval {target} --data PAIRS`")
    return [("base", base_model_path(target, meta)), (meta["stage"], str(target))]


def _tokenizer(path: str):
    return load_run_tokenizer(Path(path)) if (Path(path) / "run.json").is_file() else D.load_tokenizer(path)


def _chat_template(models: list[tuple[str, str]]) -> str | None:
    """The first chat template among the models' tokenizers: a base model without one is scored with the
    template its tuned stages were trained with (`--template`)."""
    for _, path in models:
        try:
            tok = _tokenizer(path)
        except Exception:  # (the model's own load reports it)
            continue
        if tok.chat_template:
            return tok.chat_template
    return None


def _load(path: str):
    """(model, tokenizer) of a model directory or a run directory (an adapter is merged), in fp32."""
    from transformers import AutoModelForCausalLM

    p = Path(path)
    tok = _tokenizer(path)
    if (p / "run.json").is_file():
        model = load_trained(p, read_run(p), merged=True, dtype=eval_dtype(), tokenizer=tok)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=eval_dtype(), use_safetensors=True, local_files_only=True
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    set_pad_token(model, tok)
    return model, tok


# ------------------------------------------------------------------ scoring


def _rows(path: str, limit: int):
    """(records, how they are scored) of one held-out file."""
    kinds = set(D.load_frame([path]).frame["kind"].to_list())
    stage = (
        "pt" if kinds <= {"text"} else "sft" if "sft" in kinds else "dpo" if "preference" in kinds else "pt"
    )
    prep = D.prepare([path], stage)
    how = {"pt": "every token of the text", "sft": "answer given the question", "dpo": "chosen answer"}[stage]
    return prep.rows[:limit], stage, how


def _tokenized(tok, rows, stage: str, max_len: int):
    out = []
    for r in rows:
        if stage == "pt":
            t = D.tokenize_text(tok, r)
        else:
            completion = r["chosen"] if stage == "dpo" else r["completion"]
            try:
                t = D.tokenize_sft(tok, {"prompt": r["prompt"], "completion": completion}, "completion")
            except D.RowError as e:
                raise EvalError(f"cannot render held-out rows with this model's chat template: {e}") from None
        out.append({"input_ids": t["input_ids"][:max_len], "labels": t["labels"][:max_len]})
    return out


def evaluate_models(
    models: list[tuple[str, str]],
    sets: dict[str, str],
    *,
    limit: int = 200,
    batch_size: int = 8,
    max_length: int = 1024,
) -> dict[str, Any]:
    """Loss and perplexity of every model on every held-out set (one model in memory at a time)."""
    loaded_sets = {name: _rows(path, limit) for name, path in sets.items()}
    results: dict[str, dict[str, Any]] = {}
    template = _chat_template(models)
    for label, path in models:
        model, tok = _load(path)
        if not tok.chat_template and template:
            tok.chat_template = template
        results[label] = {}
        for name, (rows, stage, _) in loaded_sets.items():
            seqs = _tokenized(tok, rows, stage, max_length)
            results[label][name] = _loss(sequence_logprobs(model, seqs, tok.pad_token_id, batch_size))
        del model
    return {
        "models": [{"label": lb, "path": p} for lb, p in models],
        "sets": {
            n: {"path": sets[n], "rows": len(r), "scored": how} for n, (r, _, how) in loaded_sets.items()
        },
        "results": results,
    }


# ------------------------------------------------------------------ lm-evaluation-harness


def run_tasks(
    models: list[tuple[str, str]], tasks: list[str], *, limit: int | None = None, batch_size: int = 8
):
    """lm-evaluation-harness tasks (e.g. ``ceval-valid``, ``cmmlu``; datasets from the local HF cache) on
    every model; ``{"skipped": why}`` when lm_eval is not installed (it is optional)."""
    if importlib.util.find_spec("lm_eval") is None:
        return {"skipped": "lm-evaluation-harness is not installed (pip install lm-eval); --tasks skipped"}
    import lm_eval

    out: dict[str, Any] = {}
    for label, path in models:
        p = Path(path)
        if (p / "run.json").is_file():
            p = p / "export"
            if not (p / "config.json").is_file():
                raise EvalError(f"--tasks evaluates whole models: run `train export {path}` first")
        res = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={p},dtype=float32",
            tasks=list(tasks),
            limit=limit,
            batch_size=batch_size,
        )
        out[label] = {
            task: {
                k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            for task, metrics in (res or {}).get("results", {}).items()
        }
    return out


# ------------------------------------------------------------------ report


def table_markdown(res: dict[str, Any]) -> str:
    sets = list(res["sets"])
    base = res["results"].get("base", {})
    head = "| model | " + " | ".join(f"{s} loss | {s} ppl" for s in sets) + " |"
    sep = "|---|" + "---:|---:|" * len(sets)
    lines = [head, sep]
    for m in res["models"]:
        cells = []
        for s in sets:
            r = res["results"][m["label"]][s]
            delta = "" if m["label"] == "base" or s not in base else f" ({r['loss'] - base[s]['loss']:+.3f})"
            cells += [f"{r['loss']:.4f}{delta}", f"{r['ppl']:.2f}"]
        lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    notes = [
        f"- {s}: {v['rows']} rows from {v['path']}, scored on the {v['scored']}"
        for s, v in res["sets"].items()
    ]
    return "\n".join(lines) + "\n\n(loss change against the base in brackets)\n\n" + "\n".join(notes) + "\n"


def plot(res: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [m["label"] for m in res["models"]]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) + 2), 3.5), dpi=100)
    for s in res["sets"]:
        ax.plot(labels, [res["results"][lb][s]["loss"] for lb in labels], "o-", label=s)
    ax.set_ylabel("held-out loss")
    ax.set_title("loss per held-out set, base and each stage")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(res: dict[str, Any], out_dir: Path, console=None) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "forgetting.json", json.dumps(res, ensure_ascii=False, indent=1))
    atomic_write_text(out_dir / "forgetting.md", table_markdown(res))
    plot(res, out_dir / "forgetting.png")
    if console is not None:
        render(res, console)
    return {
        **res,
        "files": [str(out_dir / n) for n in ("forgetting.json", "forgetting.md", "forgetting.png")],
    }


def render(res: dict[str, Any], console) -> None:
    t = Table(title="held-out loss / perplexity per set (change against the base)")
    t.add_column("model")
    for s in res["sets"]:
        t.add_column(f"{s} loss", justify="right")
        t.add_column(f"{s} ppl", justify="right")
    base = res["results"].get("base", {})
    for m in res["models"]:
        cells = []
        for s in res["sets"]:
            r = res["results"][m["label"]][s]
            d = r["loss"] - base[s]["loss"] if m["label"] != "base" and s in base else None
            colour = "" if d is None else ("green" if d < 0 else "red")
            cells += [
                f"{r['loss']:.4f}" + (f" [{colour}]({d:+.3f})[/]" if d is not None else ""),
                f"{r['ppl']:.2f}",
            ]
        t.add_row(m["label"], *cells)
    console.print(t)


def run_forgetting(
    target: Path, heldout: list[str], tasks: list[str], *, limit: int = 200, batch_size: int = 8, console=None
) -> dict[str, Any]:
    """`train eval TARGET --heldout NAME=FILE ... [--tasks T1,T2]`: the per-set table for the base and
    every stage of TARGET (a run or a chain directory), written to ``TARGET/eval/``."""
    models = models_of_target(target)
    out: dict[str, Any] = {}
    if heldout:
        res = evaluate_models(models, parse_sets(heldout), limit=limit, batch_size=batch_size)
        out = write_report(res, target / "eval", console)
    if tasks:
        task_res = run_tasks(models, tasks, limit=limit, batch_size=batch_size)
        out["tasks"] = task_res
        if "skipped" in task_res:
            if console is not None:
                console.print(f"[yellow]note:[/yellow] {task_res['skipped']}")
        else:
            (target / "eval").mkdir(parents=True, exist_ok=True)
            atomic_write_text(target / "eval" / "tasks.json", json.dumps(task_res, indent=1))
            if console is not None:
                for label, per_task in task_res.items():
                    console.print(f"{label}: " + "; ".join(f"{t} {m}" for t, m in per_task.items()))
    return out
