"""Trainer parts on a toy NNX model (independent of qwt.models/qwt.peft): config, schedule,
optimiser step with gradient accumulation, checkpoints, exact resume, faults (mismatch, interrupted
save, NaN), metrics and plot."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from qwt.training import (
    CheckpointError, CheckpointMismatchError, Checkpointer, MetricsLog, TrainConfig, TrainingDiverged,
    cast_floating, load_config_file, make_optimizer, make_schedule, make_train_step, progress_enabled,
    read_jsonl, split_model, train,
)


class Adapter(nnx.Param):
    """The toy trainable filter (like qwt.peft.AdapterParam)."""


class Toy(nnx.Module):
    """Frozen linear + low-rank adapter with a zero-initialised up factor (the lora.py habit)."""

    def __init__(self, d=6, r=2, *, seed=0):
        rngs = nnx.Rngs(seed)
        self.q_proj = nnx.Linear(d, d, rngs=rngs)
        self.a = Adapter(jax.random.normal(rngs.params(), (d, r)) * 0.3)
        self.b = Adapter(jnp.zeros((r, d)))

    def __call__(self, x):
        base = self.q_proj(x)
        return base + (x.astype(self.a.dtype) @ self.a[...]) @ self.b[...]


def mse(model, batch, key):
    del key
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)


class Data:
    """Deterministic batches: batch i depends only on (seed, i); can 'crash' at a given index."""

    def __init__(self, seed=0, d=6, bs=4, crash_at=None, nan_at=None):
        self.seed, self.d, self.bs, self.crash_at, self.nan_at = seed, d, bs, crash_at, nan_at
        # Reachable target: the frozen base of Toy(seed=0) plus a rank-2 update.
        base = Toy(d=d)
        u = np.random.default_rng(99).normal(size=(d, 2)) / 2
        v = np.random.default_rng(98).normal(size=(2, d)) / 2
        self.w = (np.asarray(base.q_proj.kernel[...]) + u @ v).astype(np.float32)
        self.bias = np.asarray(base.q_proj.bias[...])

    def batch_at(self, i):
        if self.crash_at is not None and i == self.crash_at:
            raise KeyboardInterrupt(f"simulated crash at batch {i}")
        rng = np.random.default_rng([self.seed, i])
        x = rng.normal(size=(self.bs, self.d)).astype(np.float32)
        y = x @ self.w + self.bias
        if self.nan_at is not None and i >= self.nan_at:
            y = np.full_like(y, np.nan)
        return {"x": x, "y": y}


CFG = TrainConfig(steps=8, batch_size=4, lr=0.05, warmup_steps=2, log_every=1, save_every=2, keep_last=2)


def run(tmp, cfg=CFG, data=None, **kw):
    model = Toy()
    res = train(model, cfg, data or Data(), trainable_filter=Adapter, loss_fn=mse, out_dir=tmp, **kw)
    return model, res


def adapter_arrays(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, Adapter))]


# --- config -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"steps": 0}, {"lr": -1.0}, {"lr": 0.0}, {"batch_size": 2.5}, {"warmup_steps": -1},
    {"base_dtype": "float16"}, {"b2": 1.0}, {"min_lr_ratio": 2.0}, {"grad_accum": True},
])
def test_config_rejects_bad_values(bad):
    with pytest.raises((ValueError, TypeError)):
        TrainConfig(**bad)


def test_config_files(tmp_path):
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"stepz": 3})
    (tmp_path / "c.json").write_text(json.dumps({"steps": 7}))
    (tmp_path / "c.toml").write_text("steps = 9\nlr = 0.01\n")
    (tmp_path / "bad.json").write_text("{steps: ")
    assert TrainConfig.from_dict(load_config_file(tmp_path / "c.json")).steps == 7
    assert TrainConfig.from_dict(load_config_file(tmp_path / "c.toml")).lr == 0.01
    with pytest.raises(ValueError, match="does not parse"):
        load_config_file(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "none.json")


def test_schedule_hand_values():
    cfg = TrainConfig(steps=110, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    s = make_schedule(cfg)
    assert float(s(0)) == 0.0 and math.isclose(float(s(5)), 0.5, rel_tol=1e-6)
    assert math.isclose(float(s(10)), 1.0, rel_tol=1e-6)
    # halfway through the cosine: 0.1 + 0.9 * (1 + cos(pi/2)) / 2 = 0.55
    assert math.isclose(float(s(60)), 0.55, rel_tol=1e-5)
    assert math.isclose(float(s(110)), 0.1, rel_tol=1e-5)


# --- step -------------------------------------------------------------------------------------

def test_step_grad_accumulation_matches_manual_adamw():
    model = Toy()
    graphdef, params, rest = split_model(model, Adapter)
    cfg = TrainConfig(steps=4, warmup_steps=0, lr=0.01, clip_norm=0.0, weight_decay=0.0, min_lr_ratio=1.0)
    tx = make_optimizer(cfg)
    step = make_train_step(graphdef, tx, mse)
    data = Data()
    b0, b1 = data.batch_at(0), data.batch_at(1)
    stacked = {k: np.stack([b0[k], b1[k]]) for k in b0}
    new, _, m = step(params, rest, tx.init(params), stacked, jax.random.key(0))

    # Oracle: hand-written Adam first step on the mean of the two micro-batch gradients.
    a0, bb0 = np.asarray(model.a[...], np.float64), np.asarray(model.b[...], np.float64)
    w = np.asarray(model.q_proj.kernel[...], np.float64)
    bias = np.asarray(model.q_proj.bias[...], np.float64)
    ga, gb, losses = 0, 0, []
    for b in (b0, b1):
        x, y = b["x"].astype(np.float64), b["y"].astype(np.float64)
        h = x @ a0
        r = x @ w + bias + h @ bb0 - y
        losses.append(np.mean(r ** 2))
        dout = 2 * r / r.size
        ga = ga + x.T @ (dout @ bb0.T) / 2
        gb = gb + h.T @ dout / 2
    assert math.isclose(float(m["loss"]), np.mean(losses), rel_tol=1e-5)
    assert math.isclose(float(m["grad_norm"]), math.sqrt((ga ** 2).sum() + (gb ** 2).sum()), rel_tol=1e-4)
    # Adam's first step: update = -lr * g / (|g| + eps) elementwise (bias-corrected moments).
    eps = 1e-8
    np.testing.assert_allclose(np.asarray(new["a"][...]), a0 - 0.01 * ga / (np.abs(ga) + eps), atol=1e-6)
    np.testing.assert_allclose(np.asarray(new["b"][...]), bb0 - 0.01 * gb / (np.abs(gb) + eps), atol=1e-6)
    assert int(m["tokens"]) == 2 * 4 * 6


def test_step_only_adapters_change_and_clipping_bounds_update():
    model = Toy()
    graphdef, params, rest = split_model(model, Adapter)
    cfg = TrainConfig(steps=4, warmup_steps=0, lr=0.1, clip_norm=1e-3)
    tx = make_optimizer(cfg)
    before_rest = [np.asarray(x) for x in jax.tree.leaves(rest)]
    b = Data().batch_at(0)
    new, _, m = make_train_step(graphdef, tx, mse)(params, rest, tx.init(params), {k: v[None] for k, v in b.items()}, jax.random.key(0))
    assert float(m["grad_norm"]) > 1e-3  # reported before clipping
    for x, y in zip(before_rest, jax.tree.leaves(rest)):
        np.testing.assert_array_equal(x, np.asarray(y))
    assert any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(new)))
    with pytest.raises(ValueError, match="matches no parameter"):
        split_model(model, nnx.BatchStat)


def test_bf16_base_with_fp32_adapters(tmp_path):
    seen = {}

    def loss(model, batch, key):
        seen["kernel"] = model.q_proj.kernel.dtype
        seen["adapter"] = model.a.dtype
        return mse(model, batch, key)

    model = Toy()
    res = train(model, CFG.replace(steps=3, base_dtype="bfloat16"), Data(), trainable_filter=Adapter, loss_fn=loss)
    assert seen == {"kernel": jnp.bfloat16, "adapter": jnp.float32}
    assert model.a.dtype == jnp.float32 and model.q_proj.kernel.dtype == jnp.float32
    assert math.isfinite(res.final_loss)
    assert cast_floating({"i": jnp.arange(3), "f": jnp.ones(2)}, jnp.bfloat16)["i"].dtype == jnp.int32


# --- loop, metrics, checkpoints ------------------------------------------------------------------

def test_train_learns_logs_and_plots(tmp_path):
    model, res = run(tmp_path, CFG.replace(steps=40, lr=0.05, save_every=0, eval_every=10),
                     eval_data=[Data(seed=5).batch_at(0)])
    recs = read_jsonl(tmp_path / "metrics.jsonl")
    losses = [r["loss"] for r in recs if "loss" in r]
    assert len(losses) == 40 and np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    assert [r["step"] for r in recs if "eval_loss" in r] == [10, 20, 30, 40]
    assert res.tokens_per_s > 0 and res.eval_loss == recs[-1]["eval_loss"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert Checkpointer(tmp_path / "checkpoints").all_steps() == [40]  # final save only


def test_resume_after_crash_is_identical(tmp_path):
    straight, res_a = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", data=Data(crash_at=5))  # dies in step 6; checkpoints at 2 and 4
    assert Checkpointer(tmp_path / "b" / "checkpoints").all_steps() == [2, 4]
    resumed, res_b = run(tmp_path / "b")
    assert res_b.resumed_from == 4
    for x, y in zip(adapter_arrays(straight), adapter_arrays(resumed)):
        np.testing.assert_array_equal(x, y)
    la = [r["loss"] for r in read_jsonl(tmp_path / "a" / "metrics.jsonl")]
    lb = [r["loss"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert la == lb  # same data order, same updates, log trimmed to the restored step
    assert Checkpointer(tmp_path / "b" / "checkpoints").all_steps() == [6, 8]  # keep_last=2


def test_resume_refuses_other_config(tmp_path):
    run(tmp_path, CFG.replace(steps=4), meta={"fingerprint": {"method": "lora"}})
    with pytest.raises(CheckpointMismatchError, match="lr: checkpoint 0.05 vs now 0.01"):
        run(tmp_path, CFG.replace(steps=4, lr=0.01), meta={"fingerprint": {"method": "lora"}})
    with pytest.raises(CheckpointMismatchError, match="method"):
        run(tmp_path, CFG.replace(steps=4), meta={"fingerprint": {"method": "qtha"}})
    # Same fingerprint but another model shape: named entry and shapes.
    ck = Checkpointer(tmp_path / "checkpoints")
    other = nnx.state(Toy(d=6, r=3), Adapter)
    template = {"trainable": other, "opt_state": make_optimizer(CFG).init(other), "rng": np.zeros(2, np.uint32)}
    with pytest.raises(CheckpointMismatchError, match="entry 'opt_state.0.count'|shape"):
        ck.restore(template)
    with pytest.raises(CheckpointMismatchError, match="missing"):
        ck.restore({"trainable": other})
    # Not resuming starts over in the same directory.
    _, res = run(tmp_path, CFG.replace(steps=4, lr=0.01), meta={"fingerprint": {"method": "lora"}}, resume=False)
    assert res.resumed_from is None


def _break_json_save(monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    for name in ("save", "async_save"):
        if hasattr(ocp.JsonCheckpointHandler, name):
            monkeypatch.setattr(ocp.JsonCheckpointHandler, name, boom)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    ck = Checkpointer(tmp_path, keep_last=3)
    ck.save(1, {"w": np.ones(3, np.float32)}, {"step": 1})
    with monkeypatch.context() as mp:
        _break_json_save(mp)  # the array item is written, then the JSON item fails: no commit
        with pytest.raises(CheckpointError, match="step 1 in .* is intact"):
            ck.save(2, {"w": np.full(3, 2, np.float32)}, {"step": 2})
    assert ck.all_steps() == [1]
    state, meta = Checkpointer(tmp_path).restore({"w": np.zeros(3, np.float32)})
    assert state["w"].tolist() == [1, 1, 1] and meta["step"] == 1
    # A leftover temporary directory without the commit is never taken for a checkpoint.
    os.makedirs(tmp_path / "7.orbax-checkpoint-tmp-123" / "state")
    assert Checkpointer(tmp_path).latest_step() == 1
    ck.save(2, {"w": np.full(3, 2, np.float32)}, {"step": 2})  # the failed step can be saved again
    assert Checkpointer(tmp_path).all_steps() == [1, 2]


def test_loop_save_failure_is_clear(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ocp.JsonCheckpointHandler.async_save

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", flaky)
    with pytest.raises(CheckpointError, match="saving checkpoint step 4 .* step 2 .* intact"):
        run(tmp_path)
    monkeypatch.undo()
    _, res = run(tmp_path)  # resumes from the intact step 2
    assert res.resumed_from == 2 and res.step == 8


def test_nan_loss_stops_and_keeps_last_good(tmp_path):
    model = Toy()
    with pytest.raises(TrainingDiverged, match=r"step 6 .*last good checkpoint is step 4"):
        train(model, CFG, Data(nan_at=5), trainable_filter=Adapter, loss_fn=mse, out_dir=tmp_path)
    state, meta = Checkpointer(tmp_path / "checkpoints").restore(
        {"trainable": nnx.state(Toy(), Adapter)}
        | {"opt_state": make_optimizer(CFG).init(nnx.state(Toy(), Adapter)), "rng": np.zeros(2, np.uint32)}
    )
    assert meta["step"] == 4
    good = [np.asarray(x) for x in jax.tree.leaves(state["trainable"])]
    assert all(np.isfinite(x).all() for x in good)
    # The model holds step 5's parameters (the last finite step), not NaNs.
    assert all(np.isfinite(x).all() for x in adapter_arrays(model))
    recs = read_jsonl(tmp_path / "metrics.jsonl")
    assert recs[-1]["diverged"] is True and recs[-1]["loss"] == "nan"


def test_metrics_log_and_progress(tmp_path, monkeypatch):
    p = tmp_path / "m.jsonl"
    with MetricsLog(p) as log:
        for s in (1, 2, 3):
            log.write({"step": s, "loss": float(s), "x": np.float32(0.5)})
    with MetricsLog(p, keep_until_step=2) as log:
        log.write({"step": 3, "loss": 9.0})
    assert [r["loss"] for r in read_jsonl(p)] == [1.0, 2.0, 9.0]
    p.write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=":2"):
        read_jsonl(p)

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("QWT_NO_PROGRESS", raising=False)
    assert progress_enabled(Tty()) and not progress_enabled(tmp_path)
    monkeypatch.setenv("CI", "1")
    assert not progress_enabled(Tty())


def test_train_input_errors():
    with pytest.raises(TypeError, match="TrainConfig"):
        train(Toy(), {"steps": 1}, Data(), trainable_filter=Adapter, loss_fn=mse)
    with pytest.raises(TypeError, match="batch_at"):
        train(Toy(), CFG, [1, 2], trainable_filter=Adapter, loss_fn=mse)
