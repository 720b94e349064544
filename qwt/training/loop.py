"""The training loop: jitted steps, periodic eval, JSONL metrics, orbax checkpoints, exact resume.

``train`` is deliberately plain: it owns no model construction and no data loading. It takes an NNX
model (adapters already applied), a batch source with ``batch_at(i) -> dict of arrays`` (e.g.
``qwt.data.Batches``: the same ``i`` gives the same batch on every run) and a :class:`TrainConfig`.

Resume is exact: micro-batch ``i`` of optimiser step ``s`` is ``batches.batch_at(s * grad_accum + i)``
and the step's PRNG key is ``fold_in(key(seed), s)``, so a run restored from the checkpoint at step
``s`` continues with the same data and keys as an uninterrupted one, and ends with the same
parameters. A checkpoint whose fingerprint (trajectory settings + the caller's ``fingerprint``:
model, method, adapter config, data) differs from the current run is refused with the differing
keys named.

Checkpoints verify themselves (see :mod:`qwt.training.checkpoint`): resume takes the newest intact
checkpoint; newer damaged ones are moved to ``checkpoints.damaged/`` and named in a
:class:`~qwt.training.checkpoint.CheckpointFallbackWarning`; when every checkpoint is damaged the run
stops with a :class:`~qwt.training.checkpoint.CheckpointCorruptError` naming each one and touches
nothing. ``resume=False`` never deletes: it moves the old ``checkpoints/`` to
``checkpoints.old-<n>/`` and prints where.

Several processes (``jax.distributed``, a mesh spanning them): every process runs the same loop and
computes the same values; only process 0 (:func:`~qwt.training.metrics.is_primary_process`) writes
``metrics.jsonl`` and ``curves.png``, and checkpoint folder moves happen once, in process 0, between
barriers (:mod:`qwt.training.checkpoint`).

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from flax import nnx
    >>> from qwt.training import TrainConfig, train
    >>> class Toy(nnx.Module):
    ...     def __init__(self):
    ...         self.w = nnx.Param(jnp.zeros((3,)))
    >>> class Data:
    ...     def batch_at(self, i):
    ...         return {"y": np.ones((4, 3), np.float32)}
    >>> loss = lambda m, b, k: jnp.mean((m.w[...][None, :] - b["y"]) ** 2)
    >>> res = train(Toy(), TrainConfig(steps=30, warmup_steps=0, lr=0.1), Data(),
    ...             trainable_filter=nnx.Param, loss_fn=loss)
    >>> res.final_loss < 0.1
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from qwt.training.checkpoint import (
    Checkpointer, CheckpointCorruptError, CheckpointFallbackWarning, CheckpointMismatchError,
)
from qwt.training import mesh as qmesh
from qwt.training.config import TrainConfig
from qwt.training.metrics import (
    MetricsLog, ProgressLines, Throughput, is_primary_process, progress_bar, progress_enabled,
)
from qwt.training.optim import make_optimizer, make_schedule
from qwt.training.plot import plot_curves
from qwt.training.step import cast_floating, lm_loss_fn, make_eval_step, make_train_step, split_model

__all__ = ["train", "TrainResult", "TrainingDiverged", "stack_micro_batches", "evaluate_loss"]


class TrainingDiverged(RuntimeError):
    """The loss (or gradient) became NaN/inf; the model holds the last good parameters."""


@dataclasses.dataclass
class TrainResult:
    """What a run produced.

    Attributes:
      step: optimiser steps completed (including restored ones).
      final_loss: mean training loss over the last logging window.
      eval_loss: last evaluation loss (None without eval data).
      tokens_per_s: training throughput of this process's steps, excluding the first (compile) step
        (for a run resumed at its end: the median rate in its log).
      wall_s: wall-clock seconds of this call.
      records: all metric records of the run (restored ones included).
      resumed_from: checkpoint step the run continued from (None: fresh start).
      out_dir: where metrics/checkpoints/plot went (None: in memory only).
    """

    step: int
    final_loss: float
    eval_loss: float | None
    tokens_per_s: float
    wall_s: float
    records: list[dict[str, Any]]
    resumed_from: int | None = None
    out_dir: str | None = None


def stack_micro_batches(batches, step: int, grad_accum: int) -> dict[str, np.ndarray]:
    """The ``grad_accum`` micro-batches of optimiser step ``step``, stacked on a new leading axis."""
    micro = [batches.batch_at(step * grad_accum + i) for i in range(grad_accum)]
    return {k: np.stack([np.asarray(m[k]) for m in micro]) for k in micro[0]}


def evaluate_loss(eval_step, trainable, rest, eval_data: Sequence[dict]) -> float:
    """Token-weighted mean loss over a list of batches."""
    total, count = 0.0, 0
    for batch in eval_data:
        out = eval_step(trainable, rest, batch)
        n = int(out["tokens"])
        total += float(out["loss"]) * n
        count += n
    return total / max(count, 1)


def _normalise(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _diff_keys(a: dict, b: dict, prefix="") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint {va!r} vs now {vb!r}")
    return out


def _logged_rate(records) -> float:
    # A run resumed at its last step trains nothing now: report the rate its log recorded (median
    # over logging windows, the first one left out because it includes compilation).
    rates = [r["tokens_per_s"] for r in records if isinstance(r.get("tokens_per_s"), (int, float))][1:]
    return float(np.median(rates)) if rates else 0.0


def _resume_step(ckpt: Checkpointer) -> int | None:
    """The step to resume from: the newest intact checkpoint, after moving newer damaged ones aside.

    Args:
      ckpt: the run's checkpoints.

    Returns:
      The step, or None when there is no checkpoint at all (a fresh start).

    Raises:
      CheckpointCorruptError: checkpoints exist but none is intact (each named; nothing moved).
    """
    step, damaged = ckpt.newest_intact()
    if not damaged:
        return step
    if step is None:
        raise CheckpointCorruptError(
            f"cannot resume the run in {ckpt.directory.parent}: no intact checkpoint is left in "
            f"{ckpt.directory}; damaged:\n{ckpt.describe(damaged)}\nNothing was changed. Move them away "
            "or start over with --no-resume (resume=False), which moves them aside."
        )
    described = ckpt.describe(damaged)  # before the move: the message names where they were found
    moved = ckpt.quarantine(damaged)
    warnings.warn(CheckpointFallbackWarning(
        f"damaged checkpoints in {ckpt.directory}:\n{described}\nmoved to "
        f"{', '.join(str(p) for p in moved.values())}; resuming from the newest intact checkpoint, "
        f"step {step} ({ckpt.step_dir(step)})"), stacklevel=4)  # the caller of train
    return step


def train(
    model: nnx.Module,
    cfg: TrainConfig,
    batches,
    *,
    trainable_filter=None,
    loss_fn: Callable = lm_loss_fn,
    eval_data: Sequence[dict] | None = None,
    out_dir=None,
    meta: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool | None = None,
    desc: str = "train",
    mesh=None,
) -> TrainResult:
    """Trains the adapter parameters of ``model`` in place.

    Args:
      model: an NNX model with trainable (adapter) parameters.
      cfg: optimiser/loop/checkpoint settings.
      batches: object with ``batch_at(i) -> {name: array (batch, ...)}``.
      trainable_filter: NNX filter of trained parameters; default ``qwt.peft.trainable(model)``.
      loss_fn: ``loss_fn(model, batch, key) -> scalar`` (default: causal-LM loss on response tokens).
      eval_data: list of evaluation batches (the first ``cfg.eval_batches`` are used).
      out_dir: directory for ``metrics.jsonl``, ``curves.png`` and ``checkpoints/``; None keeps
        everything in memory (no checkpoints).
      meta: JSON-able run description stored in every checkpoint (e.g. model spec, method, adapter
        config); its ``"fingerprint"`` entry must match on resume.
      resume: continue from the newest intact checkpoint in ``out_dir`` if there is one (newer
        damaged ones are moved to ``checkpoints.damaged/`` with a warning); False starts over after
        moving the old ``checkpoints/`` to ``checkpoints.old-<n>/`` (printed to stderr; nothing
        is deleted).
      progress: show a tqdm bar (default: only on a TTY outside CI). Without a bar, and when stderr
        is not a TTY, a progress line (step/total, loss, tokens/s, elapsed, ETA) goes to stderr at
        the first logged step, then at logged steps at most every 30 s, and at the last step (see
        :class:`~qwt.training.metrics.ProgressLines`; ``QWT_NO_PROGRESS`` silences both).
      desc: progress bar / progress line label.
      mesh: optional ``(data, fsdp)`` ``jax.sharding.Mesh`` from :func:`qwt.training.mesh.make_mesh`:
        the frozen base sharded along ``fsdp``, batches along ``data``, adapters and optimizer
        state replicated (:mod:`qwt.training.mesh`); checkpoints resume on any mesh shape.

    Returns:
      A :class:`TrainResult`.

    Raises:
      CheckpointMismatchError: resuming from a checkpoint of another configuration.
      qwt.training.checkpoint.CheckpointCorruptError: checkpoints exist but none is intact.
      TrainingDiverged: non-finite loss; the model keeps (and the last checkpoint holds) the last
        good parameters.
      qwt.training.CheckpointError: a save failed; the previous checkpoint is intact.
    """
    _check_train_args(cfg, batches)
    if trainable_filter is None:
        from qwt.peft import trainable as peft_trainable

        trainable_filter = peft_trainable(model)
    t_start = time.perf_counter()
    meta = dict(meta or {})
    meta["fingerprint"] = _normalise({"train": cfg.trajectory(), **meta.get("fingerprint", {})})
    graphdef, rest, tx, state = _initial_state(model, cfg, trainable_filter, mesh)
    out = pathlib.Path(out_dir) if out_dir is not None else None
    ckpt = Checkpointer(out / "checkpoints", keep_last=cfg.keep_last) if out is not None else None
    state, start, resumed_from = _start_point(ckpt, resume, state, meta["fingerprint"], cfg, mesh)
    log = MetricsLog(out / "metrics.jsonl" if out is not None else None, keep_until_step=start if resumed_from else None)
    run = _Loop.make(cfg, batches, graphdef, tx, rest, state, start, loss_fn, eval_data, mesh, ckpt, meta, t_start, log)
    show_bar = progress_enabled() if progress is None else bool(progress)
    bar = progress_bar(cfg.steps, initial=start, desc=desc, enabled=show_bar)
    lines = ProgressLines(cfg.steps, initial=start, desc=desc, enabled=False if show_bar else None)
    try:
        run.steps(bar, lines)
    finally:
        bar.close()
        run.log.close()
        nnx.update(model, run.trainable)  # the model always holds the last good adapter parameters
        if ckpt is not None:
            ckpt.close()
    return run.result(out, desc, resumed_from)


def _check_train_args(cfg, batches) -> None:
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not hasattr(batches, "batch_at"):
        raise TypeError(f"batches must have a batch_at(step) method, got {type(batches).__name__}")


def _initial_state(model, cfg: TrainConfig, trainable_filter, mesh):
    """Splits the model, places the frozen base, and builds the fresh ``{trainable, opt_state, rng}`` state.

    Returns:
      ``(graphdef, rest, tx, state)``: the frozen part ``rest`` cast and placed as configured, and
      the optimizer ``tx`` the state was initialised by.
    """
    if mesh is not None:
        qmesh.check_batch_size(cfg.batch_size, mesh)  # before any placement or step
    graphdef, trainable, rest = split_model(model, trainable_filter)
    if cfg.base_dtype == "bfloat16":
        rest = cast_floating(rest, jnp.bfloat16)
    if mesh is not None:
        rest = qmesh.place_base(rest, mesh)
    tx = make_optimizer(cfg)
    state = {"trainable": trainable, "opt_state": tx.init(trainable), "rng": jax.random.key_data(jax.random.key(cfg.seed))}
    return graphdef, rest, tx, state


def _start_point(ckpt: Checkpointer | None, resume: bool, state, fingerprint: dict, cfg: TrainConfig, mesh):
    """Where the run starts: old checkpoints moved aside (``resume=False``) or the newest intact one restored.

    Returns:
      ``(state, start, resumed_from)``: the (placed, possibly restored) state, the first step to
      run and the checkpoint step it continues from (``0, None`` for a fresh start).

    Raises:
      CheckpointMismatchError: the checkpoint's fingerprint differs, or its step is past ``cfg.steps``.
    """
    if ckpt is not None and not resume:
        moved = ckpt.move_aside()
        # Said out loud (once, by process 0): a fresh start must not look like lost checkpoints.
        if moved is not None and is_primary_process():
            print(f"qwt: starting over; the previous checkpoints are kept in {moved}", file=sys.stderr)
    if mesh is not None:  # before a restore, which reads each array straight into this placement
        state = qmesh.place_replicated(state, mesh)
    step0 = _resume_step(ckpt) if ckpt is not None and resume else None
    if step0 is None:
        return state, 0, None
    old = ckpt.read_meta(step0)
    diffs = _diff_keys(old.get("fingerprint", {}), fingerprint)
    if diffs:
        raise CheckpointMismatchError(
            f"the checkpoint in {ckpt.directory} (step {old.get('step')}) was written by another "
            f"configuration; differences: {'; '.join(diffs)}. Use another output directory or "
            "--no-resume to start over."
        )
    state, old = ckpt.restore(state, step0)
    start = int(old["step"])
    if start > cfg.steps:
        raise CheckpointMismatchError(f"checkpoint step {start} is beyond the configured {cfg.steps} steps")
    return state, start, start


@dataclasses.dataclass
class _Loop:
    """One call's loop: the fixed pieces (steps, data, sinks) and what changes from step to step.

    Made fresh by each :func:`train` call (no state outlives it); ``trainable``/``opt_state`` are
    always those of step ``last_good``.
    """

    cfg: TrainConfig
    batches: Any
    step_fn: Callable
    eval_step: Callable | None
    eval_list: list
    rest: Any
    rng: Any  # the raw key data, saved with every checkpoint
    base_key: Any  # the run's key; step s uses fold_in(base_key, s)
    schedule: Callable
    mesh: Any
    log: MetricsLog
    ckpt: Checkpointer | None
    meta: dict
    t_start: float
    trainable: Any
    opt_state: Any
    start: int
    last_good: int
    meter: Throughput = dataclasses.field(default_factory=Throughput)
    window: list = dataclasses.field(default_factory=list)
    total_tokens: int = 0
    timed_s: float = 0.0
    eval_loss: float | None = None

    @classmethod
    def make(cls, cfg, batches, graphdef, tx, rest, state, start, loss_fn, eval_data, mesh, ckpt, meta, t_start, log):
        step_fn = make_train_step(graphdef, tx, loss_fn)
        eval_step = make_eval_step(graphdef, loss_fn) if eval_data else None
        if mesh is not None:  # traced under the mesh: per-token circuits chunk per data shard (qwt.nn.quantum)
            step_fn, eval_step = qmesh.under_mesh(step_fn, mesh), eval_step and qmesh.under_mesh(eval_step, mesh)
        base_key = jax.random.wrap_key_data(jnp.asarray(state["rng"]))
        eval_list = list(eval_data or [])[: cfg.eval_batches]
        if mesh is not None:  # each process puts only its devices' rows (cross-process safe)
            eval_list = [qmesh.place_eval_batch(b, mesh) for b in eval_list]
        return cls(cfg, batches, step_fn, eval_step, eval_list, rest, state["rng"],
                   base_key, make_schedule(cfg), mesh, log, ckpt, meta, t_start, state["trainable"], state["opt_state"],
                   start, start)

    def steps(self, bar, lines) -> None:
        """Runs steps ``start .. cfg.steps - 1``, logging, evaluating and saving on their schedules."""
        cfg = self.cfg
        for s in range(self.start, cfg.steps):
            loss, m = self.step(s)
            done = s + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                self.log_window(s, loss, m, bar, lines)
            if self.eval_step is not None and ((cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps):
                self.eval_loss = evaluate_loss(self.eval_step, self.trainable, self.rest, self.eval_list)
                self.log.write({"step": done, "eval_loss": self.eval_loss})
            if self.ckpt is not None and ((cfg.save_every and done % cfg.save_every == 0) or done == cfg.steps):
                self.ckpt.save(done, {"trainable": self.trainable, "opt_state": self.opt_state, "rng": self.rng},
                               {**self.meta, "step": done, "train_config": cfg.to_dict()})
            bar.update(1)

    def step(self, s: int):
        """One optimiser step; keeps its result only when finite. Returns ``(loss, metrics)``."""
        batch = stack_micro_batches(self.batches, s, self.cfg.grad_accum)
        if self.mesh is not None:
            batch = qmesh.place_batch(batch, self.mesh)
        t0 = time.perf_counter()
        new_trainable, new_opt, m = self.step_fn(self.trainable, self.rest, self.opt_state, batch,
                                                 jax.random.fold_in(self.base_key, s))
        loss = float(m["loss"])  # syncs: the step is done
        dt = time.perf_counter() - t0
        if not bool(m["finite"]):
            raise self.diverged(s, loss, m)
        self.trainable, self.opt_state, self.last_good = new_trainable, new_opt, s + 1
        self.window.append(loss)
        if s > self.start:  # the first step of a process includes compilation
            self.total_tokens += int(m["tokens"])
            self.timed_s += dt
        self.meter.add(int(m["tokens"]))
        return loss, m

    def diverged(self, s: int, loss: float, m) -> TrainingDiverged:
        """Logs the non-finite step and returns the error that names the last good step and checkpoint."""
        self.log.write({"step": s + 1, "loss": loss, "grad_norm": float(m["grad_norm"]), "diverged": True})
        ckpt = self.ckpt
        where = (f"the last good checkpoint is step {ckpt.latest_step()} in {ckpt.directory}"
                 if ckpt is not None and ckpt.latest_step() is not None else "no checkpoint was written")
        return TrainingDiverged(
            f"non-finite loss/gradient at step {s + 1} (loss={loss}, grad_norm={float(m['grad_norm'])}); "
            f"training stopped, the model keeps the parameters of step {self.last_good} and {where}. "
            "Lower the learning rate or check the data."
        )

    def log_window(self, s: int, loss: float, m, bar, lines) -> None:
        """Writes the logging window's record (mean loss, lr, rate) and reports progress."""
        window_loss, rate = float(np.mean(self.window)), round(self.meter.rate(), 1)
        self.log.write({
            "step": s + 1, "loss": window_loss, "lr": float(self.schedule(s)),
            "grad_norm": float(m["grad_norm"]), "tokens_per_s": rate,
            "elapsed_s": round(time.perf_counter() - self.t_start, 2),
        })
        self.window = []
        self.meter.reset()
        bar.set_postfix(loss=f"{loss:.4f}")
        lines.report(s + 1, loss=window_loss, tokens_per_s=rate)

    def result(self, out, desc: str, resumed_from: int | None) -> TrainResult:
        """The final evaluation (if none ran), the curves plot and the :class:`TrainResult`."""
        if self.eval_step is not None and self.eval_loss is None and self.eval_list:
            self.eval_loss = evaluate_loss(self.eval_step, self.trainable, self.rest, self.eval_list)
        records = self.log.records
        losses = [r["loss"] for r in records if "loss" in r and not r.get("diverged")]
        if out is not None and is_primary_process():  # one writer for a shared run directory
            plot_curves({desc: records}, out / "curves.png", title=f"{desc}: loss")
        return TrainResult(
            step=max(self.last_good, self.start),
            final_loss=float(losses[-1]) if losses else math.nan,
            eval_loss=self.eval_loss,
            tokens_per_s=self.total_tokens / self.timed_s if self.timed_s > 0 else _logged_rate(records),
            wall_s=time.perf_counter() - self.t_start,
            records=list(records),
            resumed_from=resumed_from,
            out_dir=str(out) if out is not None else None,
        )
