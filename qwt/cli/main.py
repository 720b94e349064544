"""The ``qwt`` command: ``finetune``, ``eval``, ``generate``, ``compare`` and ``pretrain``.

``qwt compare`` is the embedded default job (see ``qwt.training.plans``): the shipped base
``pretrained:maths-small`` scored as is, then LoRA r=8 and QTHA-4q fine-tuned on the built-in
R1-Distill-SFT-shaped trace task with one budget, scored on 560 held-out test problems; ``--full``
runs every method and control with a learning-rate sweep and three seeds (``qwt.training.study``).
``qwt pretrain`` remakes the shipped base from its recipe.

Failures are never a bare traceback: bad input prints ``qwt: error: ...`` naming the flag or file
(exit status 2); a diverged run or a failed save prints what is intact (exit 1); anything else is an
internal error, ``qwt: internal error: TYPE: MESSAGE`` (exit 1), whose traceback ``QWT_DEBUG=1``
prints. A failed command leaves nothing behind: a run directory it created holding no checkpoint
(and no finished ``qwt compare`` unit) is removed; a directory that existed before is never touched.
Off a TTY, training prints a progress line at logged steps at most every 30 s (see
:class:`qwt.training.metrics.ProgressLines`).

Example:
    >>> from qwt.cli import main
    >>> main(["finetune", "--method", "nope"])  # bad input: a clear message, exit status 2
    2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import sys
import traceback
from typing import Sequence

from qwt.cli import executor_eval

__all__ = ["main", "build_parser"]


class UsageError(ValueError):
    """A bad command-line value (exit status 2)."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _kv(items: Sequence[str] | None) -> dict:
    """``["rank=4", "alpha=8"]`` → ``{"rank": 4, "alpha": 8}`` (values parsed as JSON when possible)."""
    out = {}
    for item in items or ():
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--adapter expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(val.strip())
    return out


_TRAIN_FLAGS = {  # flag dest -> TrainConfig field
    "steps": "steps", "batch_size": "batch_size", "grad_accum": "grad_accum", "lr": "lr",
    "warmup": "warmup_steps", "weight_decay": "weight_decay", "clip": "clip_norm", "seed": "seed",
    "base_dtype": "base_dtype", "log_every": "log_every", "eval_every": "eval_every",
    "save_every": "save_every", "keep_last": "keep_last",
}
_JOB_FLAGS = ("model", "method", "dataset", "max_len", "n_train", "n_eval", "difficulty", "template",
              "max_new_tokens")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimiser steps")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step")
    g.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    g.add_argument("--warmup", type=int, help="warm-up steps before the cosine decay")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--clip", type=float, help="global-norm clipping (0: off)")
    g.add_argument("--seed", type=int)
    g.add_argument("--base-dtype", choices=["float32", "bfloat16"], help="dtype of the frozen base weights")
    g.add_argument("--log-every", type=int)
    g.add_argument("--eval-every", type=int)
    g.add_argument("--save-every", type=int, help="checkpoint interval in steps (0: final only)")
    g.add_argument("--keep-last", type=int, help="checkpoints kept")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``qwt`` command."""
    parser = argparse.ArgumentParser(prog="qwt", description="Quantum-tensor hybrid fine-tuning (QTHA, LoRA, DoRA) in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    ft = sub.add_parser("finetune", help="fine-tune a model with adapters")
    ft.add_argument("--config", help="JSON/TOML file of job settings (flags override it)")
    ft.add_argument("--model", help="builtin:tiny | builtin:small | Hugging Face checkpoint directory")
    ft.add_argument("--method", help="qtha | lora | dora")
    ft.add_argument("--targets", type=_csv, help="comma-separated projection names (default q_proj,v_proj)")
    ft.add_argument("--adapter", action="append", metavar="KEY=VALUE", help="adapter setting (repeatable)")
    ft.add_argument("--dataset", help="maths:FAMILY[,FAMILY] or a JSON/JSONL file")
    ft.add_argument("--format", dest="data_format", choices=["auto", "alpaca", "chat", "reasoning", "mmlu"])
    ft.add_argument("--max-len", type=int)
    ft.add_argument("--n-train", type=int, help="generated training examples (maths datasets)")
    ft.add_argument("--n-eval", type=int, help="held-out evaluation examples")
    ft.add_argument("--difficulty", type=int)
    ft.add_argument("--template", help="prompt template (plain, raw, qa, alpaca)")
    ft.add_argument("--max-new-tokens", type=int)
    ft.add_argument("--out", default="runs/finetune", help="run directory (default runs/finetune)")
    ft.add_argument("--no-resume", action="store_true",
                    help="start over even if checkpoints exist; the old ones are moved to "
                         "OUT/checkpoints.old-N (printed), never deleted")
    ft.add_argument("--no-eval", action="store_true", help="skip evaluation (held-out loss and generation)")
    ft.add_argument("--mesh", help="device mesh, e.g. data=2,fsdp=4: batch along data, frozen base along fsdp")
    _add_train_flags(ft)

    ev = sub.add_parser("eval", help="evaluate a fine-tuned run (strict accuracy or BLEU/ROUGE-L)")
    ev.add_argument("run", help="run directory written by qwt finetune")
    ev.add_argument("--dataset", help="another dataset spec (default: the run's held-out set)")
    ev.add_argument("--format", dest="data_format", choices=["auto", "alpaca", "chat", "reasoning", "mmlu"])
    ev.add_argument("--n-eval", type=int)
    ev.add_argument("--max-new-tokens", type=int)
    executor_eval.add_flags(ev)  # --executor/--shots/--noise: the QNNs on a backend

    gen = sub.add_parser("generate", help="generate text with a fine-tuned run or a base model")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run directory written by qwt finetune")
    src.add_argument("--model", help="base model spec (no adapters)")
    gen.add_argument("--prompt", action="append", required=True, help="prompt text (repeatable)")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--template", default=None, help="prompt template (default: the run's)")

    cmp_ = sub.add_parser("compare", help="base vs adapters under one budget: seeds, sweep, CIs, plots")
    cmp_.add_argument("--full", action="store_true",
                      help="every method and control, learning-rate sweep, 3 seeds (resumable; hours on a CPU)")
    cmp_.add_argument("--quick", action="store_true", help="a seconds-long smoke run on a random tiny model")
    cmp_.add_argument("--model", help="base model directory (default: the shipped pretrained:maths-small)")
    cmp_.add_argument("--train", help="training dataset file (with --eval: run the plan on your data)")
    cmp_.add_argument("--eval", dest="eval_file", help="test dataset file")
    cmp_.add_argument("--format", dest="data_format", default="auto",
                      choices=["auto", "alpaca", "chat", "reasoning", "mmlu"],
                      help="dataset format (mmlu: multiple choice, scored by option log-likelihood)")
    cmp_.add_argument("--steps", type=int, help="fine-tuning steps per run (default: the plan's budget)")
    cmp_.add_argument("--seed", type=int, default=0, help="seed of the default (one-seed) job")
    cmp_.add_argument("--out", default="runs/compare", help="output directory (default runs/compare)")

    pre = sub.add_parser("pretrain", help="pretrain the shipped base model from its recipe (bit for bit)")
    pre.add_argument("--out", required=True, help="new directory for the Hugging Face-layout checkpoint")
    pre.add_argument("--quick", action="store_true", help="a seconds-long recipe on the tiny model")
    pre.add_argument("--check", action="store_true",
                     help="compare the result's SHA-256 with the shipped base's (exit 1 if it differs)")
    return parser


def _job_from_args(args):
    from qwt.training import JobSpec, TrainConfig, load_config_file

    cfg = load_config_file(args.config) if args.config else {}
    args.config_keys = set(cfg)  # where a setting came from, for error messages
    train = dict(cfg.pop("train", {}) or {})
    known = {f for f in JobSpec.__dataclass_fields__} - {"train"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise UsageError(f"unknown job setting(s) {unknown} in {args.config}; known: {sorted(known)} and [train]")
    for name in _JOB_FLAGS + ("data_format",):
        if getattr(args, name, None) is not None:
            cfg[name] = getattr(args, name)
    if args.targets is not None:
        cfg["targets"] = args.targets
    if args.adapter:
        cfg["adapter"] = {**cfg.get("adapter", {}), **_kv(args.adapter)}
    for dest, field in _TRAIN_FLAGS.items():
        if getattr(args, dest, None) is not None:
            train[field] = getattr(args, dest)
    cfg.setdefault("model", "builtin:small")
    if args.no_eval:
        cfg["eval_loss"] = False
    return JobSpec(**cfg, train=TrainConfig.from_dict(train))


def _print_summary(summary: dict) -> None:
    for k, v in summary.items():
        if k != "samples":
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    for s in summary.get("samples", []):
        print("sample:", json.dumps(s))


def _holds_work(root: pathlib.Path) -> bool:
    """True when ``root`` holds something worth keeping: a committed checkpoint or a finished unit."""
    for d in root.rglob("checkpoints"):
        if d.is_dir() and any(c.name.isdigit() and c.is_dir() for c in d.iterdir()):
            return True
    return any(root.rglob("result.json"))


@contextlib.contextmanager
def _leave_nothing_on_failure(*paths):
    """On an exception, removes the directories of ``paths`` this command created (the topmost new
    ancestor) unless they hold a checkpoint or a finished unit; existing directories are never touched."""
    roots = []
    for path in paths:
        path = pathlib.Path(path).absolute()
        if path.exists() or path.is_symlink():
            continue
        while not path.parent.exists():
            path = path.parent
        roots.append(path)
    try:
        yield
    except Exception:
        from qwt.training.metrics import is_primary_process

        if not is_primary_process():  # several processes share the run directory: one remover
            raise
        for root in roots:
            if root.is_dir() and not root.is_symlink() and not _holds_work(root):
                shutil.rmtree(root, ignore_errors=True)
        raise


def _source(args, key: str, flag: str) -> str:
    """How an error names a job setting: its flag, the config file it came from, or the default."""
    flagged = getattr(args, key, None) is not None
    in_config = key in getattr(args, "config_keys", ())
    if flagged and in_config:
        return f"{flag} (with {key} in {args.config})"
    if flagged:
        return flag
    return f"{key} in {args.config}" if in_config else f"the default {key}"


_REGEX_CHARS = set("()[]{}*+?|^$\\")


def _check_adapters(model, spec, args) -> None:
    """Refuses, naming the flag, targets that match no linear layer of ``model`` and adapter settings
    the adapter does not accept; builds one adapter per layer shape (never modifies ``model``)."""
    from flax import nnx

    from qwt import peft

    linears = [(".".join(str(k) for k in path), m) for path, m in nnx.iter_modules(model)
               if path and isinstance(m, nnx.Linear)]

    def matches(dotted: str, name: str) -> bool:  # peft's name rule: the attribute or a dotted suffix
        return dotted == name or dotted.endswith("." + name)

    unmatched = [t for t in spec.targets if not any(matches(d, t) for d, _ in linears)]
    if unmatched:
        names = sorted({d.rsplit(".", 1)[-1] for d, _ in linears})
        hint = ("targets are layer names or dotted path suffixes, not regular expressions; "
                if any(_REGEX_CHARS & set(t) for t in unmatched) else "")
        raise UsageError(
            f"{_source(args, 'targets', '--targets')} {','.join(spec.targets)}: {', '.join(map(repr, unmatched))} "
            f"match no un-adapted nnx.Linear of {spec.model}; {hint}its linear layers are named "
            f"{', '.join(names)} (or give a dotted suffix such as self_attn.q_proj)")
    shapes = {}
    for dotted, m in linears:
        if any(matches(dotted, t) for t in spec.targets):
            shapes.setdefault((m.in_features, m.out_features), m)
    try:  # the config checks names and values; building one adapter per shape checks the sizes
        config = peft.make_config(spec.method, **spec.adapter)
        for m in shapes.values():
            config.build(m, nnx.Rngs(spec.train.seed + 1))
    except (TypeError, ValueError) as e:
        given = " ".join(args.adapter) if args.adapter else json.dumps(spec.adapter)
        raise UsageError(f"{_source(args, 'adapter', '--adapter')} {given}: {spec.method} adapter: {e}") from e


def _cmd_finetune(args) -> int:
    from qwt.training import finetune, load_base
    from qwt.training.jobs import _split

    spec = _job_from_args(args)
    mesh = None
    if args.mesh is not None:  # checked before anything is written: axes, device count, batch split
        from qwt.training import mesh as qmesh

        mesh = qmesh.make_mesh(qmesh.parse_mesh(args.mesh))
        qmesh.check_batch_size(spec.train.batch_size, mesh)
    print(f"qwt finetune: {spec.method} on {spec.model}, data {spec.dataset}, {spec.train.steps} steps -> {args.out}")
    with _leave_nothing_on_failure(args.out):
        # Checked before anything is written, each error naming its flag or file: data, model, adapters.
        splits = _split(spec)
        base = load_base(spec.model, seed=spec.train.seed)
        _check_adapters(base[0], spec, args)
        summary = finetune(spec, args.out, resume=not args.no_resume, evaluate=not args.no_eval, base=base,
                           splits=splits, mesh=mesh)
    _print_summary(summary)
    print(f"metrics: {pathlib.Path(args.out) / 'metrics.jsonl'}  plot: {pathlib.Path(args.out) / 'curves.png'}")
    return 0


def _cmd_eval(args) -> int:
    from qwt.training import JobSpec, TrainConfig, evaluate_run, load_finetuned
    from qwt.training.jobs import _split

    ex = executor_eval.executor_from_args(args)  # bad --executor/--shots/--noise fail before loading
    model, tok, meta = load_finetuned(args.run)
    job = dict(meta["job"])
    spec = JobSpec(**{k: v for k, v in job.items() if k != "train"}, train=TrainConfig.from_dict(job["train"]))
    changes = {k: getattr(args, k) for k in ("dataset", "data_format", "n_eval", "max_new_tokens") if getattr(args, k) is not None}
    spec = spec.replace(**changes)
    _, eval_ex = _split(spec)
    how = executor_eval.attach_executor(model, ex, args.noise)
    print(f"qwt eval: {args.run} (step {meta['step']}, {spec.method}) on {spec.dataset}")
    if how:
        print(how)
    _print_summary(evaluate_run(model, tok, spec, eval_ex))
    return 0


def _cmd_generate(args) -> int:
    import jax

    from qwt.training import generate_texts, load_base, load_finetuned

    if args.run:
        model, tok, meta = load_finetuned(args.run)
        template = args.template or meta["job"]["template"]
    else:
        model, tok = load_base(args.model, seed=args.seed)
        template = args.template or "plain"
    outs = generate_texts(model, tok, args.prompt, template=template, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, key=jax.random.key(args.seed) if args.temperature > 0 else None)
    for p, o in zip(args.prompt, outs):
        print(f"### prompt\n{p}\n### output\n{o}")
    return 0


def _cmd_compare(args) -> int:
    import time

    from qwt.training import plans, study
    from qwt.training.tasks import FileTask

    t0 = time.perf_counter()
    if (args.train is None) != (args.eval_file is None):
        raise UsageError("--train and --eval go together (training file and test file)")
    base = args.model or plans.BASE
    task = FileTask(args.train, args.eval_file, args.data_format) if args.train else None
    if args.quick:
        plan = study.quick_plan()
    elif args.full:
        plan = plans.full_plan(base=base, task=task)
    else:
        plan = plans.default_plan(base=base, seed=args.seed)
        if task is not None:
            plan = plan.replace(task=task)
    if args.steps is not None:
        plan = plan.replace(job=plan.job.replace(train=plan.job.train.replace(steps=args.steps)))
    with _leave_nothing_on_failure(args.out):
        result = study.run_study(plan, args.out, log=lambda m: print(m, flush=True))
    print()
    print(study.format_study_table(result["rows"]))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; report {pathlib.Path(args.out) / 'compare.md'}, "
          f"plots {pathlib.Path(args.out)}/*.png")
    return 0


def _cmd_pretrain(args) -> int:
    # not `from qwt.training import pretrain`: the package re-exports the function under that name
    from qwt.training.pretrain import MATHS_SMALL, QUICK, pretrain, shipped_base

    recipe = QUICK if args.quick else MATHS_SMALL
    out = pathlib.Path(args.out)
    with _leave_nothing_on_failure(out, out.with_name(out.name + ".partial")):
        info = pretrain(recipe, args.out, log=lambda m: print(m, flush=True))
    print(f"final loss {info['final_loss']:.4f}, {info['wall_s']:.0f} s; "
          f"model.safetensors sha256 {info['sha256']['model.safetensors']}")
    if args.check:
        shipped = json.loads((shipped_base() / "recipe.json").read_text())
        if shipped["recipe"] != info["recipe"]:
            print("qwt: error: --check compares the full recipe with the shipped base; drop --quick", file=sys.stderr)
            return 2
        same = shipped["sha256"] == info["sha256"]
        print("identical to the shipped base" if same else
              f"DIFFERS from the shipped base ({shipped['sha256']['model.safetensors']}; shipped with jax "
              f"{shipped['versions']['jax']} on {shipped['machine']})")
        return 0 if same else 1
    return 0


_COMMANDS = {"finetune": _cmd_finetune, "eval": _cmd_eval, "generate": _cmd_generate, "compare": _cmd_compare,
             "pretrain": _cmd_pretrain}


def _debug() -> bool:
    return os.environ.get("QWT_DEBUG", "").strip() not in ("", "0")


def _fail(e: BaseException, code: int) -> int:
    if _debug():
        traceback.print_exception(e)
    print(f"qwt: error: {e}", file=sys.stderr)
    return code


def _run(args) -> int:
    from qwt.data import DataError
    from qwt.training import CheckpointError, CheckpointMismatchError, TrainingDiverged

    try:
        return _COMMANDS[args.command](args)
    except (TrainingDiverged, CheckpointError) as e:
        return _fail(e, 1)
    except (UsageError, CheckpointMismatchError, DataError, ValueError, TypeError, FileNotFoundError,
            FileExistsError, PermissionError, NotADirectoryError, IsADirectoryError) as e:
        return _fail(e, 2)
    except OSError as e:  # the machine's, not the input's (disk full, I/O error): said plainly
        return _fail(e, 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``qwt`` command line; returns the exit status.

    Bad input (unknown method or target, missing or malformed dataset or model, a checkpoint from
    another configuration, a path that is not a run directory, ...) prints ``qwt: error: ...``
    naming the flag or file and returns 2; a diverged run, a failed save or an I/O error returns 1
    (the message says which checkpoint is intact). Any other exception is an internal error:
    ``qwt: internal error: TYPE: MESSAGE`` and a hint, exit status 1; with ``QWT_DEBUG=1`` the
    traceback is printed too (for every error). Ctrl-C returns 130 with a one-line message.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its message
        return int(e.code or 0)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("qwt: interrupted (checkpoints already written are kept; run the command again to resume)",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the promise: never a bare library traceback
        if _debug():
            traceback.print_exception(e)
        print(f"qwt: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        if not _debug():
            print("qwt: this is a bug, not your input; rerun with QWT_DEBUG=1 to print the traceback "
                  "(and please report it)", file=sys.stderr)
        return 1
