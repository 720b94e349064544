"""The comparison harness: the shipped base and its recipe, the trace task's splits, resume and plan
checks of a study, selection on validation only, and the file-based path on a checkpoint written
by ``transformers``."""

import json

import numpy as np
import pytest

from qwt.data import maths
from qwt.training import study
from qwt.training.plans import default_plan
from qwt.training.pretrain import MATHS_SMALL, QUICK, pretrain, sha256_file, shipped_base
from qwt.training.tasks import TraceTask


@pytest.mark.slow
def test_pretrain_is_bit_for_bit_and_atomic(tmp_path):
    a = pretrain(QUICK, tmp_path / "a", progress=False, log=lambda m: None)
    b = pretrain(QUICK, tmp_path / "b", progress=False, log=lambda m: None)
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert not (tmp_path / "a.partial").exists()
    with pytest.raises(FileExistsError):
        pretrain(QUICK, tmp_path / "a", progress=False, log=lambda m: None)
    other = pretrain(QUICK.replace(train=QUICK.train.replace(seed=1)), tmp_path / "c", progress=False,
                     log=lambda m: None)
    assert other["sha256"] != a["sha256"]


def test_shipped_base_matches_its_recipe_and_loads_as_hf_checkpoint():
    from qwt import models
    from qwt.training.jobs import load_base

    path = shipped_base()
    info = json.loads((path / "recipe.json").read_text())
    assert info["recipe"] == MATHS_SMALL.to_dict()
    assert info["sha256"]["model.safetensors"] == sha256_file(path / "model.safetensors")
    model, tok = load_base("pretrained:maths-small")
    ref, _ = models.load(path)  # the plain Hugging Face loader on the same directory
    ids = np.array([tok.encode("What is 2 + 3?\n")])
    np.testing.assert_array_equal(np.asarray(model(ids)), np.asarray(ref(ids)))
    with pytest.raises(FileNotFoundError, match="no shipped base model"):
        shipped_base("nope")


def test_trace_task_splits_are_disjoint_balanced_and_reserved():
    task = default_plan().task
    train, val, test = task.splits()
    assert len(test) >= 500 and len(val) >= 100
    assert len({e.prompt for e in test + val}) == len(test) + len(val)
    assert not {e.prompt for e in train} & {e.prompt for e in test + val}
    assert all(maths.reserved(e.prompt) for e in test + val) and not any(maths.reserved(e.prompt) for e in train)
    counts = {f: sum(e.tag == f for e in test) for f in task.families}
    assert max(counts.values()) - min(counts.values()) <= 1 and {e.tag for e in test + val + train} == set(task.families)
    assert all(e.response.startswith("<think>\n") and e.response.endswith("#### " + e.answer) for e in test)
    # The pretraining corpus never holds an evaluation prompt, and never the trace layout.
    from qwt.training.pretrain import pretrain_examples

    corpus = pretrain_examples(MATHS_SMALL.replace(n_examples=2000))
    assert not {e.prompt for e in corpus} & {e.prompt for e in test + val}
    assert all("####" not in e.response and "<think>" not in e.response for e in corpus)
    assert all(e.response.splitlines()[-1].startswith("Result: ") for e in corpus)


@pytest.mark.slow
def test_study_resumes_without_redoing_and_refuses_another_plan(tmp_path, monkeypatch):
    plan = study.quick_plan().replace(lrs=(1e-3, 1e-2))
    out = tmp_path / "s"
    first = study.run_study(plan, out, log=lambda m: None)
    # Selection uses validation loss only.
    for arm in plan.arms:
        losses = {e["lr"]: e["eval_loss"] for e in first["sweep"] if e["arm"] == arm.name}
        assert first["selection"][arm.name] == min(losses, key=losses.get)

    def boom(*a, **k):
        raise AssertionError("a finished unit was trained again")

    monkeypatch.setattr(study, "finetune", boom)
    again = study.run_study(plan, out, log=lambda m: None)
    assert again["rows"] == first["rows"]
    with pytest.raises(ValueError, match="another plan"):
        study.run_study(plan.replace(seeds=(0, 1)), out, log=lambda m: None)


def test_study_killed_mid_unit_continues(tmp_path, monkeypatch):
    plan = study.quick_plan()
    out = tmp_path / "s"
    calls = []
    real = study._train_unit

    def once_then_die(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(study, "_train_unit", once_then_die)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(plan, out, log=lambda m: None)
    monkeypatch.setattr(study, "_train_unit", real)
    done = sorted(str(p.parent.relative_to(out / "runs")) for p in (out / "runs").rglob("result.json"))
    assert done == ["lora/lr0.003/seed0", "lora/lr0.003/seed0/test"]  # lora finished, qtha never started
    result = study.run_study(plan, out, log=lambda m: None)
    assert [r["arm"] for r in result["rows"]] == ["base", "lora", "qtha"]


@pytest.mark.slow
def test_compare_on_files_and_a_transformers_checkpoint(tmp_path, capsys, tiny_hf_checkpoint):
    from qwt.cli import main

    model_dir = tiny_hf_checkpoint
    rows = [{"question": e.prompt, "answer": e.response} for e in maths.generate(80, families=["ages"], seed=3)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:72]))
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[72:]))
    out = tmp_path / "out"
    assert main(["compare", "--model", str(model_dir), "--train", str(train), "--eval", str(test),
                 "--steps", "2", "--out", str(out)]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert [r["arm"] for r in result["rows"]] == ["base", "lora", "qtha-4q"]
    assert result["rows"][0]["n_test"] == 8 and result["plan"]["task"]["kind"] == "files"


@pytest.mark.slow
def test_every_full_plan_method_trains_through_the_harness(tmp_path):
    from qwt.training.plans import full_plan
    from qwt.training.study import Arm

    methods = sorted({a.method for a in full_plan(base="builtin:tiny").arms})
    assert methods == ["dora", "lora", "mpo_mlp", "mpo_only", "qtha", "qtha_noent", "quanta"]
    small = {"n_qubits": 2, "qnn_layers": 1, "bond": 2}
    arms = tuple(Arm(m, m, {"rank": 2} if m in ("lora", "dora") else ({} if m == "quanta" else dict(small)))
                 for m in methods)
    plan = study.quick_plan().replace(arms=arms, job=study.quick_plan().job.replace(
        train=study.quick_plan().job.train.replace(steps=1)))
    result = study.run_study(plan, tmp_path / "s", log=lambda m: None)
    rows = {r["arm"]: r for r in result["rows"]}
    assert set(rows) == {"base", *methods}
    assert rows["mpo_mlp"]["trainable"] == rows["qtha"]["trainable"]  # the MLP has exactly the QNN's count
    assert rows["mpo_only"]["trainable"] < rows["qtha_noent"]["trainable"] < rows["qtha"]["trainable"]
    assert all(np.isfinite(r["final_loss_mean"]) for r in result["rows"][1:])


def test_arms_can_carry_their_own_learning_rate():
    plan = default_plan()
    assert {a.name: plan.arm_lrs(a) for a in plan.arms} == {"lora": (1e-2,), "qtha-4q": (3e-2,)}
    quick = study.quick_plan()
    assert all(quick.arm_lrs(a) == quick.lrs for a in quick.arms)
    assert "lrs" not in quick.arms[0].to_dict() and plan.arms[1].to_dict()["lrs"] == [3e-2]
