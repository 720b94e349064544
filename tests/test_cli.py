"""The ``qwt`` command end to end on the built-in tiny model: the comparison (--quick) and its
resume, finetune/eval/generate with checkpoint reload, and every bad-input path."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qwt.cli import main
from qwt.training import Checkpointer

TINY = ["--model", "builtin:tiny", "--dataset", "maths:ages", "--n-train", "32", "--max-len", "96",
        "--batch-size", "4", "--warmup", "0", "--log-every", "1"]


def test_compare_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| arm | method | trainable")
    assert [t.split("|")[1].strip() for t in table[1:]] == ["base", "lora", "qtha"]
    result = json.loads((out / "compare.json").read_text())
    rows = {r["arm"]: r for r in result["rows"]}
    assert rows["base"]["method"] == "base" and rows["base"]["trainable"] == 0
    # LoRA rank 2 on q_proj (64x64) and v_proj (64x32) in 2 layers: 2 * 2 * ((64+64) + (64+32)).
    assert rows["lora"]["trainable"] == 2 * 2 * (128 + 96)
    assert 0 < rows["qtha"]["trainable"] < rows["lora"]["trainable"]
    assert "acc_diff" in rows["qtha"] and "acc_diff" not in rows["lora"]
    for name in ("loss_curves.png", "accuracy.png", "params_vs_accuracy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Finished: a second call redoes nothing and reports the same rows.
    assert main(["compare", "--quick", "--out", str(out)]) == 0
    assert json.loads((out / "compare.json").read_text())["rows"] == result["rows"]


def test_pretrain_command_writes_a_checkpoint_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "base"
    assert main(["pretrain", "--quick", "--out", str(out)]) == 0
    assert "model.safetensors sha256" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "recipe.json", "tokenizer.json"]
    assert main(["pretrain", "--quick", "--out", str(out)]) != 0
    assert "exists" in capsys.readouterr().err


def test_finetune_reload_eval_generate_and_mismatch(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = tmp_path / "job.toml"
    cfg.write_text('method = "lora"\nadapter = {rank = 2}\n[train]\nsteps = 3\nlr = 0.01\nsave_every = 1\nkeep_last = 2\n')
    assert main(["finetune", "--config", str(cfg), *TINY, "--out", str(run), "--no-eval"]) == 0
    assert Checkpointer(run / "checkpoints").all_steps() == [2, 3]
    meta = Checkpointer(run / "checkpoints").read_meta()
    assert meta["adapter_config"]["method"] == "lora" and meta["adapter_config"]["rank"] == 2
    assert meta["job"]["model"] == "builtin:tiny" and meta["step"] == 3
    # Same config again: already complete, resumes at step 3 and does nothing more.
    assert main(["finetune", "--config", str(cfg), *TINY, "--out", str(run), "--no-eval"]) == 0
    assert "resumed_from: 3" in capsys.readouterr().out
    # Another configuration into the same directory: refused, naming the difference.
    assert main(["finetune", "--config", str(cfg), *TINY, "--lr", "0.02", "--out", str(run), "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "lr: checkpoint 0.01 vs now 0.02" in err
    # Reload from the checkpoint for generation and evaluation.
    assert main(["generate", "--run", str(run), "--prompt", "Tia is 3 years old.", "--max-new-tokens", "4"]) == 0
    assert "### output" in capsys.readouterr().out
    assert main(["eval", str(run), "--n-eval", "2", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "strict_accuracy:" in out and "n_eval: 2" in out


def test_nan_loss_through_cli_keeps_last_checkpoint(tmp_path, capsys):
    run = tmp_path / "nan"
    # An absurd learning rate overflows the adapter weights after the first update.
    code = main(["finetune", "--method", "lora", *TINY, "--lr", "1e38", "--steps", "4", "--save-every", "1",
                 "--clip", "0", "--out", str(run), "--no-eval"])
    err = capsys.readouterr().err
    assert code == 1 and "non-finite loss" in err and "last good checkpoint is step" in err
    steps = Checkpointer(run / "checkpoints").all_steps()
    assert steps and max(steps) < 4


@pytest.mark.parametrize("argv, message", [
    (["finetune", "--method", "nope"], "unknown method 'nope'"),
    (["finetune", "--model", "builtin:tiny", "--targets", "w_proj"], "match no un-adapted nnx.Linear"),
    (["finetune", "--model", "builtin:huge"], "unknown built-in model"),
    (["finetune", "--model", "/no/such/dir"], "model directory not found"),
    (["finetune", "--model", "builtin:tiny", "--dataset", "/no/such.jsonl"], "dataset file not found"),
    (["finetune", "--model", "builtin:tiny", "--dataset", "maths:poetry"], "unknown maths families"),
    (["finetune", "--model", "builtin:tiny", "--steps", "0"], "steps must be >= 1"),
    (["finetune", "--adapter", "rank"], "KEY=VALUE"),
    (["compare", "--train", "x.jsonl"], "--train and --eval go together"),
    (["compare", "--train", "/no/such.jsonl", "--eval", "/no/such.jsonl"], "dataset file not found"),
    (["eval", "/no/such/run"], "no checkpoint"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_malformed_dataset_and_config(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": oops\n')
    assert main(["finetune", "--model", "builtin:tiny", "--dataset", str(bad), "--format", "alpaca"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "2" in err
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"methd": "lora"}))
    assert main(["finetune", "--config", str(cfg)]) == 2
    assert "unknown job setting" in capsys.readouterr().err
    assert main(["finetune", "--bogus-flag"]) == 2


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "qwt.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "finetune" in out.stdout and "compare" in out.stdout


def test_dialogue_metrics_path():
    from qwt.data import load_chat
    from qwt.training import JobSpec, build_adapted, evaluate_run, text_metrics

    m = text_metrics(["the cat sat on the mat", "a b c d"], ["the cat sat on the mat", "a b x d"])
    assert m["rouge_l"] == pytest.approx((1.0 + 0.75) / 2)
    assert 0 < m["bleu"] < 1
    assert text_metrics(["a b c d e"], ["a b c d e"])["bleu"] == pytest.approx(1.0)
    import pathlib

    import qwt.data

    chat = load_chat(pathlib.Path(qwt.data.__file__).parent / "samples" / "chat.jsonl")
    spec = JobSpec(model="builtin:tiny", method="lora", adapter={"rank": 2}, max_new_tokens=4)
    model, tok = build_adapted(spec)
    out = evaluate_run(model, tok, spec, chat[:2])  # no answers: BLEU / ROUGE-L instead of strict accuracy
    assert set(out) >= {"bleu", "rouge_l", "n_eval"} and out["n_eval"] == 2 and "strict_accuracy" not in out
