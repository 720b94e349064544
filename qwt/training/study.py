"""The comparison harness behind ``qwt compare``: arms, a learning-rate sweep, seeds, paired statistics.

A :class:`StudyPlan` fixes everything before anything runs: the base model, the task and its
splits (train / validation / test, disjoint by construction), the arms (each a ``qwt.peft`` method
with its settings), the learning-rate grid, the seeds and one training budget shared by every
arm (same steps, batch, data and data order per seed). :func:`run_study` then

1. scores the base model without an adapter on the test set (row ``"base"``);
2. then, arm by arm: trains it at every learning rate with the first seed (the sweep) and keeps the
   rate with the lowest **validation** loss (the test set plays no part in the choice), trains the
   remaining seeds at that rate and scores every seed on the test set by strict accuracy (greedy
   generation, exact final answer); the report is rewritten after each arm;
3. reports per arm mean ± std over seeds and, against the baseline arm, paired bootstrap 95%
   intervals of the difference in strict accuracy (test items resampled, same seeds and problems)
   and in final training loss (seeds resampled), with PNG plots.

Each unit of work writes ``result.json`` when it finishes, and training checkpoints as it goes, so
a killed study continues where it stopped and finished units are never redone; a plan that differs
from the one in ``out_dir/plan.json`` is refused instead of mixed.

Example (seconds, tiny base):
    >>> import tempfile
    >>> from qwt.training.study import quick_plan, run_study
    >>> result = run_study(quick_plan(), tempfile.mkdtemp(), log=lambda m: None)
    >>> [r["arm"] for r in result["rows"]]
    ['base', 'lora', 'qtha']
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from qwt.training.config import TrainConfig
from qwt.training.jobs import JobSpec, finetune, load_base, load_finetuned
from qwt.training.tasks import TraceTask

if TYPE_CHECKING:
    from qwt.peft.config import Method

__all__ = ["Arm", "StudyPlan", "run_study", "quick_plan", "format_study_table"]


@dataclasses.dataclass(frozen=True)
class Arm:
    """One row of the comparison: a name, a ``qwt.peft`` method and its settings.

    ``lrs``, when given, replaces the plan's learning-rate grid for this arm (e.g. the rate a
    validation sweep chose for it, so a one-rate study does not hand one method another's rate).
    """

    name: str
    method: Method
    adapter: dict = dataclasses.field(default_factory=dict)
    lrs: tuple | None = None

    def to_dict(self) -> dict:
        out = {"name": self.name, "method": self.method, "adapter": dict(self.adapter)}
        return out if self.lrs is None else {**out, "lrs": list(self.lrs)}


@dataclasses.dataclass(frozen=True)
class StudyPlan:
    """Everything a study runs, fixed up front.

    Args:
      base_model: model spec of the frozen base (``pretrained:maths-small`` or a directory).
      task: supplies ``splits() -> (train, validation, test)`` example lists.
      arms: the methods compared; ``baseline`` names the one differences are taken against.
      lrs: learning-rate grid of the sweep (one value: no sweep).
      seeds: seeds (initialisation and data order); the sweep uses the first.
      job: the shared budget (steps, batch, schedule in ``job.train``; ``max_len``, template,
        generation length); its model/method/adapter/lr/seed are set per unit.
      baseline: arm name for the paired differences.
      n_resamples: bootstrap resamples.
    """

    base_model: str
    task: Any
    arms: tuple
    lrs: tuple
    seeds: tuple
    job: JobSpec
    baseline: str = "lora"
    n_resamples: int = 10000

    def __post_init__(self):
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"arm names must be unique and non-empty, got {names}")
        if self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not an arm ({names})")
        if not self.lrs or not self.seeds:
            raise ValueError("a study needs at least one learning rate and one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")

    def to_dict(self) -> dict:
        return {"base_model": self.base_model, "task": self.task.to_dict(), "arms": [a.to_dict() for a in self.arms],
                "lrs": list(self.lrs), "seeds": list(self.seeds), "job": self.job.to_dict(),
                "baseline": self.baseline, "n_resamples": self.n_resamples}

    def replace(self, **changes) -> "StudyPlan":
        return dataclasses.replace(self, **changes)

    def arm_lrs(self, arm: Arm) -> tuple:
        """The learning rates ``arm`` is swept over (its own, else the plan's)."""
        return tuple(arm.lrs) if arm.lrs is not None else tuple(self.lrs)


def quick_plan() -> StudyPlan:
    """A seconds-long study on a random tiny model (tests and ``qwt compare --quick``)."""
    task = TraceTask(families=("ages", "rates"), n_train=64, n_val=8, n_test=16)
    job = JobSpec(model="builtin:tiny", method="lora", max_len=128, max_new_tokens=8,
                  train=TrainConfig(steps=3, batch_size=4, warmup_steps=1, log_every=1, eval_batches=2))
    arms = (Arm("lora", "lora", {"rank": 2}), Arm("qtha", "qtha", {"n_qubits": 2, "qnn_layers": 1, "bond": 2}))
    return StudyPlan("builtin:tiny", task, arms, lrs=(3e-3,), seeds=(0,), job=job, n_resamples=200)


def _unit_dir(out: pathlib.Path, arm: Arm, lr: float, seed: int) -> pathlib.Path:
    return out / "runs" / arm.name / f"lr{lr:g}" / f"seed{seed}"


def _spec(plan: StudyPlan, arm: Arm, lr: float, seed: int) -> JobSpec:
    return plan.job.replace(model=plan.base_model, method=arm.method, adapter=dict(arm.adapter),
                            train=plan.job.train.replace(lr=lr, seed=seed))


def _done(path: pathlib.Path):
    f = path / "result.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _write(path: pathlib.Path, obj) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "result.json.tmp"
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    tmp.replace(path / "result.json")  # a unit is finished exactly when result.json exists


def _score(model, tok, plan: StudyPlan, test) -> dict:
    """Per-problem scores on the test set: option log-likelihood (0/1) for a multiple-choice task;
    strict correctness (0/1) when every problem has an answer (plus the base's own-layout reading);
    else per-reply ROUGE-L F1 (dialogue data)."""
    from qwt.data import maths, metrics, strict_matches
    from qwt.training.evaluate import choice_scores, generate_texts

    if getattr(plan.task, "scoring", "generate") == "choice":
        res = choice_scores(model, tok, test, template=plan.job.template)
        return {"metric": "choice_accuracy", "correct": res["correct"], "score": res["accuracy"],
                "native_correct": [0] * len(test), "samples": res["predictions"][:4]}

    preds = generate_texts(model, tok, test, template=plan.job.template, max_new_tokens=plan.job.max_new_tokens)
    if any(e.answer is None for e in test):
        scores = [float(metrics.rouge_l([p], [e.response])) for p, e in zip(preds, test)]
        return {"metric": "rouge_l", "correct": scores, "score": float(np.mean(scores)),
                "native_correct": [0.0] * len(scores), "samples": preds[:4]}
    gold = [e.answer for e in test]
    correct = [int(m) for m in strict_matches(preds, gold)]
    native = [int(m) for m in strict_matches(preds, gold, extract=maths.native_answer)]
    return {"metric": "strict_accuracy", "correct": correct, "score": float(np.mean(correct)),
            "native_correct": native, "samples": preds[:4]}


def _train_unit(plan, arm, lr, seed, out, splits) -> dict:
    d = _unit_dir(out, arm, lr, seed)
    res = _done(d)
    if res is None:
        from qwt.training.metrics import read_jsonl

        summary = finetune(_spec(plan, arm, lr, seed), d, splits=splits, evaluate=False, progress=False,
                           desc=f"{arm.name} lr={lr:g} seed={seed}")
        curve = [(r["step"], r["loss"]) for r in read_jsonl(d / "metrics.jsonl") if "loss" in r]
        res = {"arm": arm.name, "lr": lr, "seed": seed, "curve": curve,
               **{k: summary[k] for k in ("trainable", "total", "final_loss", "eval_loss", "tokens_per_s",
                                          "train_wall_s")}}
        _write(d, res)
    return res


def _test_unit(plan, arm, lr, seed, out, test) -> dict:
    d = _unit_dir(out, arm, lr, seed) / "test"
    res = _done(d)
    if res is None:
        model, tok, _ = load_finetuned(_unit_dir(out, arm, lr, seed))
        res = _score(model, tok, plan, test)
        _write(d, res)
    return res


def _check_plan(plan: StudyPlan, out: pathlib.Path) -> None:
    f = out / "plan.json"
    mine = json.loads(json.dumps(plan.to_dict(), default=float))
    if f.is_file():
        theirs = json.loads(f.read_text())
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{out} holds a study with another plan (differs in {diff}); "
                             f"use another --out or remove it")
    else:
        out.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(mine, indent=1))


def run_study(plan: StudyPlan, out_dir, *, log=print) -> dict:
    """Runs (or resumes) a study; writes ``compare.json``, ``compare.md`` and plots in ``out_dir``.

    Returns:
      ``{"rows": [...], "selection": {arm: lr}, "plan": {...}, "wall_s": float}``.
    """
    from qwt.training.report import build_rows, write_report

    t0 = time.perf_counter()
    out = pathlib.Path(out_dir)
    _check_plan(plan, out)
    train, val, test = plan.task.splits()
    n_units = 1 + sum(len(plan.arm_lrs(a)) + 2 * len(plan.seeds) - 1 for a in plan.arms)
    log(f"study: {len(plan.arms)} arms x {max(len(plan.arm_lrs(a)) for a in plan.arms)} learning rates (sweep, seed {plan.seeds[0]}) + "
        f"{len(plan.seeds) - 1} more seeds, {len(train)} train / {len(val)} val / {len(test)} test problems, "
        f"{plan.job.train.steps} steps each: {n_units} units -> {out}")
    done = [0]

    def tick(what):
        done[0] += 1
        log(f"[{done[0]}/{n_units}] {what} ({time.perf_counter() - t0:.0f} s)")

    base_dir = out / "base"
    base = _done(base_dir)
    if base is None:
        model, tok = load_base(plan.base_model)
        base = _score(model, tok, plan, test)
        _write(base_dir, base)
    tick(f"base: {base['metric']} {base['score']:.1%}")
    sweep, selection, runs = {}, {}, {}
    for k, arm in enumerate(plan.arms):  # arm by arm, so a stopped study has whole arms to report
        for lr in plan.arm_lrs(arm):
            r = _train_unit(plan, arm, lr, plan.seeds[0], out, (train, val))
            sweep[(arm.name, lr)] = r
            tick(f"sweep {arm.name} lr={lr:g}: val loss {r['eval_loss']:.4f}")
        losses = {lr: sweep[(arm.name, lr)]["eval_loss"] for lr in plan.arm_lrs(arm)}
        selection[arm.name] = lr = min(plan.arm_lrs(arm), key=lambda x: (np.nan_to_num(losses[x], nan=np.inf), x))
        for seed in plan.seeds:
            if seed == plan.seeds[0]:
                r = sweep[(arm.name, lr)]
            else:
                r = _train_unit(plan, arm, lr, seed, out, (train, val))
                tick(f"{arm.name} lr={lr:g} seed={seed}: val loss {r['eval_loss']:.4f}")
            r = {**r, "test": _test_unit(plan, arm, lr, seed, out, test)}
            tick(f"test {arm.name} seed={seed}: {r['test']['metric']} {r['test']['score']:.1%}")
            runs.setdefault(arm.name, []).append(r)
        if plan.baseline in runs:
            done_plan = plan.replace(arms=plan.arms[: k + 1])
            result = {"rows": build_rows(done_plan, base, runs, sweep, selection), "selection": dict(selection),
                      "plan": plan.to_dict(), "wall_s": time.perf_counter() - t0, "machine": _machine(),
                      "complete": k + 1 == len(plan.arms), "arms_done": [a.name for a in done_plan.arms],
                      "sweep": [{"arm": a, "lr": x, "eval_loss": v["eval_loss"], "final_loss": v["final_loss"]}
                                for (a, x), v in sweep.items()]}
            write_report(result, runs, out)
    return result


def _machine() -> dict:
    import jax

    from qwt.training.pretrain import describe_machine

    return {"cpu": describe_machine(), "jax": jax.__version__, "backend": jax.default_backend(),
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def format_study_table(rows) -> str:
    from qwt.training.report import format_table

    return format_table(rows)
