"""The ``qwt`` command under faults (issue #15, "nothing lost, nothing silent"): no library traceback
for a user error, no files left by a failed command, errors naming the flag or file, progress lines
off a TTY and an internal-error guard. All on the built-in tiny model, two-step runs."""

import importlib
import io
import os
import subprocess
import sys

import jax.numpy as jnp
import pytest
from flax import nnx

from qwt import models
from qwt.cli import main
from qwt.training import JobSpec, TrainConfig, TrainingDiverged, finetune
from qwt.training.metrics import ProgressLines

CLI = importlib.import_module("qwt.cli.main")  # the module (qwt.cli.main the attribute is the function)
TINY = ["--model", "builtin:tiny", "--dataset", "maths:ages", "--n-train", "16", "--max-len", "96",
        "--batch-size", "2", "--warmup", "0", "--log-every", "1", "--steps", "2", "--method", "lora", "--no-eval"]


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_eval_and_generate_on_a_missing_or_non_run_directory_create_nothing(tmp_path, capsys):
    missing = tmp_path / "runs" / "nonexistent"
    # A real process: orbax's background cleanup printed its traceback at interpreter exit.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "QWT_DEBUG": ""}
    out = subprocess.run([sys.executable, "-m", "qwt.cli", "eval", str(missing)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 2, out.stderr
    assert "qwt: error: no checkpoint in" in out.stderr and str(missing) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()

    assert main(["generate", "--run", str(missing), "--prompt", "hi"]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not a run")
    assert main(["eval", str(plain)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert _tree(plain) == ["notes.txt"]


def test_failed_finetune_removes_only_the_directory_it_created(tmp_path, capsys):
    # Diverges before its first checkpoint (only the final step saves): the new folders go.
    run = tmp_path / "new" / "deeper" / "run"
    code = main(["finetune", *TINY, "--steps", "3", "--lr", "1e38", "--clip", "0", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 1 and "non-finite loss" in err
    assert not (tmp_path / "new").exists()
    # Bad data and bad flags into a new directory: nothing is created.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": oops\n')
    assert main(["finetune", *TINY, "--dataset", str(bad), "--format", "alpaca", "--out", str(tmp_path / "a")]) == 2
    assert main(["finetune", *TINY, "--targets", "nope", "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # A directory that existed before the command is never removed, even when the command fails.
    old = tmp_path / "old"
    old.mkdir()
    (old / "keep.txt").write_text("mine")
    assert main(["finetune", *TINY, "--adapter", "rank=0", "--out", str(old)]) == 2
    assert _tree(old) == ["keep.txt"]


def test_explicit_default_adapter_value_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    # LoRA's defaults spelled out (rank=8, alpha=16 as an int): the same configuration.
    assert main(["finetune", *TINY, "--adapter", "rank=8", "--adapter", "alpha=16", "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert "resumed_from: 2" in captured.out, captured.err
    # A real change is still refused, naming it.
    assert main(["finetune", *TINY, "--adapter", "rank=4", "--out", str(run)]) == 2
    assert "adapter.rank: checkpoint '<absent>' vs now 4" in capsys.readouterr().err


def _nan_tiny():
    model = models.CausalLM(models.builtin_config("tiny"), rngs=nnx.Rngs(0))
    up = model.layers[0].mlp.up_proj.kernel
    up[...] = up[...].at[0, 0].set(jnp.nan)
    return model


def test_nan_base_weights_are_named_not_blamed_on_the_learning_rate(tmp_path, capsys):
    model_dir = tmp_path / "nan-model"
    model = _nan_tiny()
    models.save(model, model_dir)
    models.builtin_tokenizer().save(model_dir)
    run = tmp_path / "run"
    argv = [a if a != "builtin:tiny" else str(model_dir) for a in TINY]
    assert main(["finetune", *argv, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(model_dir) in err and "NaN" in err and "Lower the learning rate" not in err
    assert not run.exists()
    # A base handed to finetune is checked too, before any training.
    spec = JobSpec(model="builtin:tiny", method="lora", dataset="maths:ages", n_train=16, n_eval=2,
                   train=TrainConfig(steps=2, batch_size=2, warmup_steps=0))
    try:
        finetune(spec, tmp_path / "api", base=(model, models.builtin_tokenizer()), evaluate=False)
    except TrainingDiverged as e:  # what it used to be: blamed on the learning rate
        pytest.fail(f"diverged instead of naming the weights: {e}")
    except ValueError as e:
        assert "builtin:tiny" in str(e) and "layers.0.mlp.up_proj.kernel" in str(e)
    else:
        pytest.fail("NaN base weights were trained on")
    assert not (tmp_path / "api").exists()


@pytest.mark.parametrize("flags, names", [
    (["--targets", "("], ["--targets (", "not regular expressions", "q_proj"]),
    (["--targets", "q_proj,v_prj"], ["--targets q_proj,v_prj", "'v_prj'"]),
    (["--adapter", "alpha=x"], ["--adapter alpha=x", "alpha"]),
    (["--adapter", "bogus=1"], ["--adapter bogus=1", "bogus"]),
])
def test_bad_targets_and_adapter_values_name_the_flag(tmp_path, capsys, flags, names):
    run = tmp_path / "run"
    assert main(["finetune", *TINY, *flags, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qwt: error: ") and "Traceback" not in err
    for name in names:
        assert name in err, err
    assert not run.exists()


def test_progress_lines_off_a_tty(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("QWT_NO_PROGRESS", raising=False)
    monkeypatch.setenv("QWT_PROGRESS_SECONDS", "0")
    assert main(["finetune", *TINY, "--out", str(tmp_path / "run")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qwt: lora step")]
    assert [line.split()[3] for line in lines] == ["1/2", "2/2"]
    for part in ("loss ", "tok/s", "elapsed ", "ETA "):
        assert all(part in line for line in lines), lines
    # The default interval: the first logged step, then at most one line per 30 s, and the last step.
    out = io.StringIO()
    bar = ProgressLines(100, initial=0, desc="u", enabled=True, interval=30, stream=out)
    for step in range(10, 101, 10):
        bar.report(step, loss=1.0, tokens_per_s=10.0)
    assert [line.split()[3] for line in out.getvalue().splitlines()] == ["10/100", "100/100"]
    monkeypatch.setenv("QWT_NO_PROGRESS", "1")
    assert not ProgressLines(5).enabled


def test_internal_errors_are_one_line_unless_debugging(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(CLI._COMMANDS, "eval", boom)
    monkeypatch.delenv("QWT_DEBUG", raising=False)
    assert main(["eval", "whatever"]) == 1
    err = capsys.readouterr().err
    assert "qwt: internal error: RuntimeError: boom" in err and "QWT_DEBUG=1" in err
    assert "Traceback" not in err
    monkeypatch.setenv("QWT_DEBUG", "1")
    assert main(["eval", "whatever"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "qwt: internal error: RuntimeError: boom" in err
