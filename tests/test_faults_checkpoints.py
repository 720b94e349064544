"""Checkpoints that verify themselves (issue #15, "nothing lost, nothing silent").

A damaged newest checkpoint (``meta/`` or ``state/`` deleted, step folder emptied, garbage ``meta``,
one flipped byte in an array file) is named with what is wrong, moved aside, and resume falls back
to the newest intact checkpoint with a warning, continuing bit-identically; with every checkpoint
damaged the run stops with an error naming each one; ``--no-resume`` keeps the old checkpoints; a
seeded pass flips bytes at random offsets of every file of a checkpoint and never gets a silent
restore of changed data. A toy NNX model keeps the loop cases cheap; ``builtin:tiny`` runs the CLI.
"""

import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from qwt.cli import main
from qwt.training import Checkpointer, TrainConfig, load_finetuned, make_optimizer, read_jsonl, train
from qwt.training.checkpoint import (
    MANIFEST, CheckpointCorruptError, CheckpointFallbackWarning, verify_step_dir, write_manifest,
)


class Adapter(nnx.Param):
    """The toy trainable filter."""


class Toy(nnx.Module):
    """A frozen linear map plus a trained low-rank correction."""

    def __init__(self, d=4, r=2):
        rngs = nnx.Rngs(0)
        self.base = nnx.Linear(d, d, rngs=rngs)
        self.a = Adapter(jax.random.normal(rngs.params(), (d, r)) * 0.3)
        self.b = Adapter(jnp.zeros((r, d)))

    def __call__(self, x):
        return self.base(x) + (x @ self.a[...]) @ self.b[...]


class Data:
    """Batch ``i`` depends only on ``i`` (what exact resume needs)."""

    def batch_at(self, i):
        x = np.random.default_rng([7, i]).normal(size=(2, 4)).astype(np.float32)
        return {"x": x, "y": np.roll(x, 1, axis=1)}


def mse(model, batch, key):
    del key
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)


CFG = TrainConfig(steps=3, batch_size=2, lr=0.05, warmup_steps=0, log_every=1, save_every=1, keep_last=3)


def run(out, **kw):
    model = Toy()
    res = train(model, CFG, Data(), trainable_filter=Adapter, loss_fn=mse, out_dir=out, progress=False, **kw)
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, Adapter))], res


def template():
    trainable = nnx.state(Toy(), Adapter)
    return {"trainable": trainable, "opt_state": make_optimizer(CFG).init(trainable),
            "rng": np.asarray(jax.random.key_data(jax.random.key(0)))}


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def assert_same(xs, ys):
    assert len(xs) == len(ys)
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(x, y)


def flip(path: pathlib.Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def array_file(step_dir: pathlib.Path) -> pathlib.Path:
    """The largest array data file of a step (orbax/tensorstore chunk files under ``state/``)."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished 3-step run (checkpoints 1, 2, 3) and its final adapter arrays and losses."""
    out = tmp_path_factory.mktemp("pristine") / "run"
    final, res = run(out)
    assert res.resumed_from is None
    ck = Checkpointer(out / "checkpoints")
    assert ck.all_steps() == [1, 2, 3] and all(ck.verify(s) == [] for s in (1, 2, 3))
    states = {s: leaves(ck.restore(template(), s)[0]) for s in (1, 2, 3)}
    ck.close()
    losses = [r["loss"] for r in read_jsonl(out / "metrics.jsonl")]
    return {"dir": out, "final": final, "states": states, "losses": losses}


def copy_run(pristine, tmp_path) -> pathlib.Path:
    out = tmp_path / "run"
    shutil.copytree(pristine["dir"], out)
    return out


def _garbage(path: pathlib.Path) -> None:
    path.write_bytes(b"\x00{not json")


DAMAGE = {
    "deleted meta": (lambda d: shutil.rmtree(d / "meta"), "folder meta/ is missing"),
    "deleted state": (lambda d: shutil.rmtree(d / "state"), "folder state/ is missing"),
    "emptied step folder": (lambda d: (shutil.rmtree(d), d.mkdir()), "step folder is empty"),
    "garbage meta": (lambda d: _garbage(d / "meta" / "metadata"), "file meta/metadata has 10 bytes"),
    # A manifest rewritten over the garbage still does not let it through: the meta must parse.
    "garbage meta, manifest agrees": (lambda d: (_garbage(d / "meta" / "metadata"), write_manifest(d, 3)),
                                      "meta is unreadable"),
    "flipped byte in an array file": (lambda d: flip(array_file(d), array_file(d).stat().st_size // 2),
                                      "content changed"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_latest_falls_back_and_continues_identically(pristine, tmp_path, case):
    out = copy_run(pristine, tmp_path)
    damage, problem = DAMAGE[case]
    damage(out / "checkpoints" / "3")
    with pytest.warns(CheckpointFallbackWarning) as caught:
        final, res = run(out)
    text = "\n".join(str(w.message) for w in caught if issubclass(w.category, CheckpointFallbackWarning))
    assert str(out / "checkpoints" / "3") in text and problem in text and "step 2" in text
    assert res.resumed_from == 2 and res.step == 3
    # The same continuation as an uninterrupted run (itself equal to any run resumed at step 2).
    assert_same(final, pristine["final"])
    assert [r["loss"] for r in read_jsonl(out / "metrics.jsonl")] == pristine["losses"]
    ck = Checkpointer(out / "checkpoints")
    assert ck.all_steps() == [1, 2, 3] and ck.newest_intact() == (3, {})
    assert_same(leaves(ck.restore(template(), 3)[0]), pristine["states"][3])
    ck.close()
    # Nothing lost: the damaged step is kept for inspection, out of orbax's sight.
    assert (out / "checkpoints.damaged" / "3").is_dir()


def test_every_checkpoint_damaged_is_a_clear_error(pristine, tmp_path):
    out = copy_run(pristine, tmp_path)
    ckdir = out / "checkpoints"
    shutil.rmtree(ckdir / "3" / "meta")
    (ckdir / "2" / MANIFEST).unlink()
    flip(array_file(ckdir / "1"), 0)
    with pytest.raises(CheckpointCorruptError) as err:
        run(out)
    msg = str(err.value)
    assert f"cannot resume the run in {out}" in msg and "no intact checkpoint" in msg
    expected = {3: "folder meta/ is missing (2 files)", 2: "manifest.json is missing", 1: "content changed"}
    for step, what in expected.items():
        assert f"{ckdir / str(step)}: " in msg and what in msg
    # Nothing was moved or deleted, and a direct read says the same.
    assert sorted(p.name for p in ckdir.iterdir()) == ["1", "2", "3"]
    assert not (out / "checkpoints.damaged").exists()
    with pytest.raises(CheckpointCorruptError, match="no intact checkpoint"):
        Checkpointer(ckdir).restore(template())
    with pytest.raises(CheckpointCorruptError, match=r"step 2 .* damaged:\n.*manifest.json is missing"):
        Checkpointer(ckdir).read_meta(2)


def test_random_byte_flips_in_every_file_are_detected(pristine, tmp_path):
    out = copy_run(pristine, tmp_path)
    ckdir = out / "checkpoints"
    step3 = ckdir / "3"
    files = sorted(p for p in step3.rglob("*") if p.is_file())
    assert MANIFEST in {p.name for p in files} and len(files) >= 8
    rng = np.random.default_rng(15)
    tried = 0
    for path in files:
        size = path.stat().st_size
        for offset in sorted({int(o) for o in rng.integers(0, size, 3)}) if size else []:
            flip(path, offset)
            rel = path.relative_to(step3).as_posix()
            ck = Checkpointer(ckdir)
            step, damaged = ck.newest_intact()
            assert step == 2 and list(damaged) == [3], (rel, offset)
            assert any(rel in p or MANIFEST in p for p in damaged[3]), (rel, offset, damaged)
            with pytest.raises(CheckpointCorruptError, match="step 3 .* damaged"):
                ck.restore(template(), 3)
            # The default read falls back, says so, and returns exactly step 2's arrays.
            with pytest.warns(CheckpointFallbackWarning, match="using the newest intact one, step 2"):
                state, meta = ck.restore(template())
            assert meta["step"] == 2
            assert_same(leaves(state), pristine["states"][2])
            ck.close()
            flip(path, offset)  # undo: the next offset starts from the intact checkpoint
            assert verify_step_dir(step3) == [], (rel, offset)
            tried += 1
    assert tried >= 2 * len(files)


def test_resume_false_moves_old_checkpoints_aside(pristine, tmp_path, capsys):
    out = copy_run(pristine, tmp_path)
    for n in (1, 2):
        final, res = run(out, resume=False)
        assert res.resumed_from is None
        assert f"kept in {out / f'checkpoints.old-{n}'}" in capsys.readouterr().err
        old = Checkpointer(out / f"checkpoints.old-{n}")
        assert old.all_steps() == [1, 2, 3] and old.newest_intact() == (3, {})
        old.close()
    assert_same(final, pristine["final"])  # a fresh start over the same data: the same result


TINY = ["finetune", "--method", "lora", "--adapter", "rank=1", "--model", "builtin:tiny", "--dataset", "maths:ages",
        "--n-train", "4", "--n-eval", "2", "--max-len", "80", "--batch-size", "2", "--warmup", "0",
        "--steps", "2", "--save-every", "1", "--keep-last", "2", "--no-eval"]


def adapter_leaves(run_dir):
    from qwt import peft

    model, _, meta = load_finetuned(run_dir)
    return leaves(nnx.state(model, peft.trainable(model))), meta["step"]


def test_cli_fallback_and_no_resume_keep_everything(tmp_path, capsys):
    run_dir, ref = tmp_path / "run", tmp_path / "ref"
    assert main([*TINY, "--out", str(run_dir)]) == 0
    shutil.copytree(run_dir, ref)
    capsys.readouterr()
    # One flipped byte in the newest checkpoint's arrays: named, skipped, step 2 redone identically.
    flip(array_file(run_dir / "checkpoints" / "2"), 1)
    with pytest.warns(CheckpointFallbackWarning, match=r"checkpoints/2: file state/.* content changed"):
        assert main([*TINY, "--out", str(run_dir)]) == 0
    assert "resumed_from: 1" in capsys.readouterr().out
    got, ref_arrays = adapter_leaves(run_dir), adapter_leaves(ref)
    assert got[1] == ref_arrays[1] == 2
    assert_same(got[0], ref_arrays[0])
    # --no-resume starts over but keeps the previous checkpoints, saying where.
    assert main([*TINY, "--out", str(run_dir), "--no-resume"]) == 0
    captured = capsys.readouterr()
    assert "resumed_from: None" in captured.out and str(run_dir / "checkpoints.old-1") in captured.err
    old = Checkpointer(run_dir / "checkpoints.old-1")
    assert old.all_steps() == [1, 2] and old.newest_intact() == (2, {})
    old.close()
    assert Checkpointer(run_dir / "checkpoints").newest_intact() == (2, {})
