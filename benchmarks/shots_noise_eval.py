"""How a fine-tuned QTHA-4q model's strict accuracy degrades with shots and noise on its QNN.

The model is the ``qtha-4q`` arm of ``qwt compare`` (:func:`qwt.training.plans.default_plan`: the
shipped base ``pretrained:maths-small``, the built-in trace task, the shared 200-step budget, the
learning rate the committed ``--full`` sweep chose for the arm), trained by the harness's own unit
function (the run folder is reused when it is already there, so a rerun only evaluates). Its
4-qubit QNNs are then run, through the ``qwt eval --executor`` path
(:func:`qwt.cli.executor_eval.executor_from_args` and ``attach_executor``), under every setting of
:data:`SETTINGS`, and each setting is scored by strict accuracy of greedy generations on the first
K problems of the task's **test** split. 4 qubits keep the density-matrix noise path in reach (it
stops at 8 qubits).

The settings, all fixed before any result was seen:

* ``reference``: the layers' own exact simulator (what ``qwt compare`` scores);
* control A ``local-exact``: the same exact values through ``LocalExecutor()`` (must agree);
* control B ``zero-qnn``: the QNN's output zeroed, by setting the fusion weight α of every QTHA
  adapter to 0 on the loaded model (``z = α⊙QNN(h) + β⊙h`` becomes ``β⊙h``; the QNN still runs,
  but nothing of it reaches the output): how much the QNN path matters at all;
* control C ``random-angles``: every QNN's ansatz angles re-drawn uniformly in [0, 2π) (the
  layer's own initial distribution; fixed key): the trained angles against arbitrary ones;
* noiseless shots 16, 64, 256, 1024 per measurement group;
* ``depolarizing:p`` for p in 0.001, 0.01, 0.05, exact (density matrix) and with 1024 shots;
  ``readout:0.02`` with 1024 shots; ``depolarizing:0.05`` with 16 shots.

Executor seed 0 throughout. Statistics (:mod:`shots_noise_stats`): accuracy with a percentile
bootstrap 95% interval over problems, and the paired difference from the reference with a paired
bootstrap 95% interval (10,000 resamples of the problems, seed 0, the same resamples for every
setting). Results: ``benchmarks/results/shots_noise/shots_noise.{json,md,png}``.

Run (``--timing`` first: it prints wall times only, no accuracy, to size ``--k`` and ``--seeds``)::

    python benchmarks/shots_noise_eval.py --timing --k 32
    python benchmarks/shots_noise_eval.py --k 64 --seeds 0 1   # the committed run
    python benchmarks/shots_noise_eval.py --quick          # seconds-long smoke run on builtin:tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# benchmarks/ only, as the other scripts do: the repository root holds the source folder
# `kernels/` (installed as qwt.kernels), which on sys.path would shadow other packages' `kernels`
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import shots_noise_stats as sns  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "shots_noise"
WORK = ROOT / "runs" / "shots_noise"
COMPARE_FULL = ROOT / "benchmarks" / "results" / "compare_full"
EXECUTOR_SEED = 0
N_RESAMPLES = 10000


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way of running the QNNs.

    Args:
      name: key (file names, JSON).
      group: ``reference``, ``control``, ``noiseless`` or ``noisy`` (table order and plot series).
      shots: shots per measurement group (None: exact expectations).
      noise: a :func:`qwt.executors.parse_noise` spec (None: noiseless).
      executor: run the QNNs through the ``qwt eval`` executor path (False: their own simulator).
      control: ``"zero_qnn"`` or ``"random_angles"`` (a change to the loaded model), or None.
    """

    name: str
    group: str
    shots: int | None = None
    noise: str | None = None
    executor: bool = True
    control: str | None = None

    def describe(self) -> str:
        if self.control == "zero_qnn":
            return "control B: QNN output zeroed (α = 0)"
        if self.control == "random_angles":
            return "control C: QNN angles re-drawn at random"
        if not self.executor:
            return "exact simulator (reference)"
        how = "exact" if self.shots is None else f"{self.shots} shots"
        what = "noiseless" if self.noise is None else self.noise
        return f"{'control A: ' if self.name == 'local-exact' else ''}LocalExecutor, {what}, {how}"


SETTINGS = (
    Setting("reference", "reference", executor=False),
    Setting("local-exact", "control"),
    Setting("zero-qnn", "control", executor=False, control="zero_qnn"),
    Setting("random-angles", "control", executor=False, control="random_angles"),
    *(Setting(f"shots{n}", "noiseless", shots=n) for n in (16, 64, 256, 1024)),
    *(Setting(f"dep{p}-exact", "noisy", noise=f"depolarizing:{p}") for p in ("0.001", "0.01", "0.05")),
    *(Setting(f"dep{p}-1024", "noisy", shots=1024, noise=f"depolarizing:{p}") for p in ("0.001", "0.01", "0.05")),
    Setting("readout0.02-1024", "noisy", shots=1024, noise="readout:0.02"),
    Setting("dep0.05-16", "noisy", shots=16, noise="depolarizing:0.05"),
)
"""The full grid (fixed before any result was seen)."""

QUICK = ("reference", "local-exact", "shots64", "dep0.01-exact")
"""``--quick``: these settings, K = 4, on the harness's seconds-long tiny plan."""
TIMING = ("reference", "local-exact", "shots1024", "dep0.05-exact", "dep0.05-1024")
"""``--timing``: one setting of each cost class (own simulator, executor exact / shots / density
matrix / density matrix with shots); the others cost as their class does."""


def setting(name: str) -> Setting:
    """The setting called ``name`` (ValueError naming the known ones otherwise)."""
    for s in SETTINGS:
        if s.name == name:
            return s
    raise ValueError(f"unknown setting {name!r}; known: {', '.join(s.name for s in SETTINGS)}")


def make_executor(s: Setting):
    """The executor ``qwt eval --executor local --shots N --noise SPEC --executor-seed 0`` builds for
    ``s`` (the CLI's own function), or None for settings on the layers' own simulator."""
    if not s.executor:
        return None
    from qwt.cli.executor_eval import executor_from_args

    args = argparse.Namespace(executor="local", shots=s.shots, noise=s.noise, executor_seed=EXECUTOR_SEED)
    return executor_from_args(args)


def plan_and_arm(quick: bool, seed: int):
    """The study plan and arm of the fine-tune: ``qwt compare``'s ``qtha-4q`` (or the quick plan's ``qtha``)."""
    from qwt.training import plans, study

    plan = study.quick_plan() if quick else plans.default_plan(seed=seed)
    arm = next(a for a in plan.arms if a.name == ("qtha" if quick else "qtha-4q"))
    return plan.replace(seeds=(seed,)), arm


def fine_tune(quick: bool, seed: int, work: pathlib.Path, splits):
    """Trains (or reuses) the arm's unit for ``seed`` with the harness's own unit function; returns
    ``(run_dir, unit_result)``."""
    from qwt.training import study

    plan, arm = plan_and_arm(quick, seed)
    lr = plan.arm_lrs(arm)[0]
    res = study._train_unit(plan, arm, lr, seed, work, splits)
    return study._unit_dir(work, arm, lr, seed), res


def prepare(run_dir: pathlib.Path, s: Setting):
    """The fine-tuned model of ``run_dir`` (freshly loaded: settings never share state) with ``s``'s
    control applied and its executor attached; returns ``(model, tokenizer, spec, description)``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from qwt.cli.executor_eval import attach_executor
    from qwt.nn import QuantumLayer
    from qwt.peft.qtha import QTHALinear
    from qwt.training import JobSpec, TrainConfig, load_finetuned

    model, tok, meta = load_finetuned(run_dir)
    job = dict(meta["job"])
    spec = JobSpec(**{k: v for k, v in job.items() if k != "train"}, train=TrainConfig.from_dict(job["train"]))
    if s.control == "zero_qnn":
        adapters = [m for _, m in nnx.iter_modules(model) if isinstance(m, QTHALinear)]
        for m in adapters:
            m.alpha[...] = jnp.zeros_like(m.alpha[...])
        assert adapters, "zero_qnn: the model has no QTHA adapters"
    elif s.control == "random_angles":
        layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, QuantumLayer)]
        keys = jax.random.split(jax.random.key(12345), len(layers))
        for k, layer in zip(keys, layers):
            w = layer.weights[...]
            layer.weights[...] = jax.random.uniform(k, w.shape, w.dtype, 0.0, 2 * np.pi)
        assert layers, "random_angles: the model has no quantum layers"
    ex = make_executor(s)
    how = attach_executor(model, ex, s.noise) or s.describe()
    return model, tok, spec, how


def evaluate(run_dir, s: Setting, problems) -> dict:
    """Greedy generations on ``problems`` under ``s``, scored strictly (as ``qwt compare`` does)."""
    from qwt.data import strict_matches
    from qwt.training.evaluate import generate_texts

    t0 = time.perf_counter()
    model, tok, spec, how = prepare(run_dir, s)
    preds = generate_texts(model, tok, problems, template=spec.template, max_new_tokens=spec.max_new_tokens)
    correct = [int(m) for m in strict_matches(preds, [e.answer for e in problems])]
    return {"setting": s.name, "how": how, "correct": correct, "predictions": preds,
            "wall_s": time.perf_counter() - t0}


def cached_eval(work: pathlib.Path, seed: int, run_dir, s: Setting, problems, log) -> dict:
    """:func:`evaluate`, stored per (seed, setting, K) under ``work/eval`` so a rerun is cheap."""
    f = work / "eval" / f"seed{seed}" / f"{s.name}-k{len(problems)}.json"
    if f.is_file():
        return json.loads(f.read_text())
    res = evaluate(run_dir, s, problems)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.with_suffix(".tmp").write_text(json.dumps(res))
    f.with_suffix(".tmp").replace(f)
    log(f"  seed {seed} {s.name}: {res['wall_s']:.0f} s")  # no accuracy printed while the sweep runs
    return res


def committed_check(seed: int, reference_correct) -> bool | None:
    """Whether the reference scores equal the committed ``compare_full`` test scores of the same
    unit on the same problems (a check that the fine-tune reproduced); None when none is committed."""
    f = COMPARE_FULL / "runs" / "qtha-4q" / "lr0.03" / f"seed{seed}" / "test" / "result.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text())["correct"][: len(reference_correct)] == list(reference_correct)


def cost_class(s: Setting) -> str:
    """The :data:`TIMING` setting whose wall time stands for ``s``'s (same simulator path)."""
    if not s.executor:
        return "reference"
    if s.noise is None:
        return "local-exact" if s.shots is None else "shots1024"
    return "dep0.05-exact" if s.shots is None else "dep0.05-1024"


def projected_s(timing: dict, k: int, n_seeds: int) -> float:
    """The sweep's wall time that the timing pass predicts, scaled linearly in K (an upper bound:
    loading and compiling do not grow with K)."""
    per = timing["wall_s"]
    return n_seeds * sum(per[cost_class(s)] for s in SETTINGS) * k / timing["k"]


def timing_pass(args, log) -> None:
    """Wall time per setting class on ``--k`` problems of seed ``--seeds[0]``; prints no accuracy."""
    seed = args.seeds[0]
    train, val, test = plan_and_arm(args.quick, seed)[0].task.splits()
    run_dir, _ = fine_tune(args.quick, seed, args.work, (train, val))
    times = {}
    for name in TIMING:
        t0 = time.perf_counter()
        evaluate(run_dir, setting(name), test[: args.k])  # results dropped unseen
        times[name] = time.perf_counter() - t0
        log(f"timing {name}: {times[name]:.1f} s for {args.k} problems")
    out = {"k": args.k, "seed": seed, "wall_s": times, "machine": machine()}
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "timing.json").write_text(json.dumps(out, indent=1))
    log(json.dumps(out, indent=1))


def machine() -> str:
    from benchmarks.common import machine_description

    return machine_description("shared machine: 2 cores, other agents' work running; wall times are noisy")


def run(args, log) -> dict:
    """Fine-tunes (or reuses) every seed, evaluates every setting, returns the results dict."""
    from qwt.training import study

    names = QUICK if args.quick else [s.name for s in SETTINGS]
    settings = [setting(n) for n in names]
    t0 = time.perf_counter()
    train, val, test = plan_and_arm(args.quick, args.seeds[0])[0].task.splits()
    if args.k > len(test):
        raise ValueError(f"--k {args.k} exceeds the test split ({len(test)} problems)")
    problems = test[: args.k]
    per_seed, units = {}, {}
    for seed in args.seeds:
        run_dir, unit = fine_tune(args.quick, seed, args.work, (train, val))
        units[seed] = {k: v for k, v in unit.items() if k != "curve"}
        log(f"seed {seed}: model {run_dir} (train {unit['train_wall_s']:.0f} s)")
        per_seed[seed] = {s.name: cached_eval(args.work, seed, run_dir, s, problems, log) for s in settings}
    seeds = list(args.seeds)
    ref = [per_seed[sd]["reference"]["correct"] for sd in seeds]
    rows = []
    for s in settings:
        sc = [per_seed[sd][s.name]["correct"] for sd in seeds]
        summ = sns.summarize(sc, ref, n_resamples=args.resamples, seed=0)
        changed = sum(a != b for sd in seeds for a, b in zip(per_seed[sd][s.name]["predictions"],
                                                             per_seed[sd]["reference"]["predictions"]))
        rows.append({"setting": s.name, "group": s.group, "describe": s.describe(), "shots": s.shots,
                     "noise": s.noise, "executor": s.executor, "control": s.control, **summ,
                     "identical_predictions": changed == 0, "changed_predictions": int(changed),
                     "how": per_seed[seeds[0]][s.name]["how"], "correct": {str(sd): c for sd, c in zip(seeds, sc)},
                     "wall_s": {str(sd): per_seed[sd][s.name]["wall_s"] for sd in seeds}})
    plan, arm = plan_and_arm(args.quick, seeds[0])
    timing = args.work / "timing.json"
    return {
        "rows": rows, "k": args.k, "seeds": seeds, "n_resamples": args.resamples, "executor_seed": EXECUTOR_SEED,
        "quick": args.quick, "arm": arm.to_dict(), "plan": plan.to_dict(), "units": units,
        "reference_equals_committed_compare_full": None if args.quick else
            {str(sd): committed_check(sd, per_seed[sd]["reference"]["correct"]) for sd in seeds},
        "sizing": {"note": "quick smoke run (sizes fixed by --quick)", "timing_pass": None} if args.quick
                  else sizing(timing, args.k, len(seeds)),
        "machine": machine(), "wall_s": time.perf_counter() - t0, "study_module": study.__name__,
        "eval_wall_s_sum": sum(r["wall_s"][str(sd)] for r in rows for sd in seeds),
    }


def sizing(timing: pathlib.Path, k: int, n_seeds: int) -> dict:
    """How K and the seeds were chosen: the timing pass and the sweep time it predicts."""
    t = json.loads(timing.read_text()) if timing.is_file() else None
    return {"note": "K and the seeds were set from the timing pass's wall times only (it prints no accuracy), "
                    "before any accuracy of this study was seen",
            "timing_pass": t, "projected_s": None if t is None else projected_s(t, k, n_seeds)}


def plot(result: dict, path: pathlib.Path) -> pathlib.Path:
    """Accuracy vs shots (noiseless and noisy series, 95% intervals; exact values at the right),
    the reference as a line with its band, controls B and C as dotted lines."""
    from matplotlib.figure import Figure

    rows = {r["setting"]: r for r in result["rows"]}
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    exact_x = 4096  # where the exact (infinite-shot) values sit on the log axis
    ref = rows["reference"]
    ax.axhline(ref["accuracy"], color="k", lw=1, label="exact simulator (reference)")
    ax.axhspan(*ref["ci"], color="k", alpha=0.08)
    series = [("noiseless", None, "C0"), ("depolarizing:0.001", "depolarizing:0.001", "C1"),
              ("depolarizing:0.01", "depolarizing:0.01", "C2"), ("depolarizing:0.05", "depolarizing:0.05", "C3"),
              ("readout:0.02", "readout:0.02", "C4")]
    for k, (label, noise, color) in enumerate(series):
        pts = [r for r in result["rows"] if r["executor"] and r["control"] is None and r["noise"] == noise]
        pts.sort(key=lambda r: r["shots"] or exact_x)
        if not pts:
            continue
        x = [(r["shots"] or exact_x) * (1 + 0.04 * (k - 2)) for r in pts]  # small offsets: bars stay apart
        y = [r["accuracy"] for r in pts]
        err = [[r["accuracy"] - r["ci"][0] for r in pts], [r["ci"][1] - r["accuracy"] for r in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, color=color, label=label)
    for name, style in (("zero-qnn", ":"), ("random-angles", "-.")):
        if name in rows:
            ax.axhline(rows[name]["accuracy"], color="gray", ls=style, lw=1, label=rows[name]["describe"])
    ax.set_xscale("log", base=2)
    ticks = [16, 64, 256, 1024, exact_x]
    ax.set_xticks(ticks, [*map(str, ticks[:-1]), "exact"])
    ax.set_xlabel("shots per measurement group (QNN read-out)")
    ax.set_ylabel(f"strict accuracy, first {result['k']} test problems")
    seeds = ", ".join(map(str, result["seeds"]))
    ax.set_title(f"QTHA-4q: accuracy vs shots and noise (seed {seeds}; 95% bootstrap intervals)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def table(result: dict) -> str:
    """The Markdown table: setting, accuracy, its 95% interval, Δ vs reference with its interval."""
    seeds = " / ".join(f"seed {sd}" for sd in result["seeds"])
    lines = [f"| setting | accuracy ({seeds}) | 95% CI | Δ vs reference [paired 95% CI] | Δ excludes 0 | changed outputs | wall s |",
             "|---|---:|---:|---:|:---:|---:|---:|"]
    for r in result["rows"]:
        delta = "—" if r["setting"] == "reference" else sns.fmt_delta(r["delta"])
        ex = "—" if r["setting"] == "reference" else ("yes" if r["delta"]["excludes_zero"] else "no")
        wall = " / ".join(f"{w:.0f}" for w in r["wall_s"].values())
        per = " / ".join(sns.fmt_pct(x) for x in r["per_seed"]) if len(r["per_seed"]) > 1 else ""
        acc = f"{sns.fmt_pct(r['accuracy'])} ({per})" if per else sns.fmt_pct(r["accuracy"])
        lines.append(f"| {r['describe']} | {acc} | [{sns.fmt_pct(r['ci'][0])}, "
                     f"{sns.fmt_pct(r['ci'][1])}] | {delta} | {ex} | {r['changed_predictions']} | {wall} |")
    return "\n".join(lines)


def sizing_text(z: dict) -> str:
    t = z["timing_pass"]
    if t is None:
        return ""
    walls = ", ".join(f"{n} {w:.0f} s" for n, w in t["wall_s"].items())
    return (f" (timing pass on {t['k']} problems, seed {t['seed']}: {walls}; projected sweep, linear in K, "
            f"{z['projected_s']:.0f} s)")


def write(result: dict, out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "shots_noise.json").write_text(json.dumps(result, indent=1, default=float))
    png = plot(result, out / "shots_noise.png")
    rows = {r["setting"]: r for r in result["rows"]}
    excl = [r["setting"] for r in result["rows"] if r["setting"] != "reference" and r["delta"]["excludes_zero"]]
    a = rows.get("local-exact")
    units = list(result["units"].values())
    md = [f"# Shots and noise on {result['arm']['name']}'s QNN ({'quick' if result['quick'] else 'full'} run)", "",
          f"Machine: {result['machine']}. Evaluation wall time, summed over settings and seeds: "
          f"{result['eval_wall_s_sum']:.0f} s (fine-tunes: "
          f"{', '.join(format(u['train_wall_s'], '.0f') + ' s' for u in units)}).", "",
          f"Model: arm `{result['arm']['name']}` ({result['arm']['method']}, {result['arm']['adapter']}, lr "
          f"{units[0]['lr']:g}), seeds {result['seeds']} (final train loss "
          f"{', '.join(format(u['final_loss'], '.4f') for u in units)}); strict accuracy on the first {result['k']} test "
          f"problems; executor seed {result['executor_seed']}; {result['n_resamples']} bootstrap resamples (seed 0).",
          "", f"Sizing: {result['sizing']['note']}{sizing_text(result['sizing'])}.", "", table(result), "",
          "Accuracy: mean over seeds and problems (per seed in brackets); 95% CI: percentile bootstrap over "
          "problems; Δ: paired bootstrap over problems (same resamples for every setting). Changed outputs: "
          "(seed, problem) generations whose text differs from the reference's. Wall s: per seed, including "
          "loading the model and compiling the decode loop.", "",
          f"Δ intervals that exclude 0: {'; '.join(excl) if excl else 'none'}.", ""]
    if a is not None:
        md.append(f"Control A (LocalExecutor exact) predictions identical to the reference: "
                  f"{a['identical_predictions']}; scores identical: {a['identical_to_reference']}.")
    if result["reference_equals_committed_compare_full"] is not None:
        md.append(f"Reference scores equal the committed `compare_full` test scores of the same unit on these "
                  f"problems (fine-tune reproduced): {result['reference_equals_committed_compare_full']}.")
    md += ["", f"![accuracy vs shots]({png.name})", ""]
    (out / "shots_noise.md").write_text("\n".join(md))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, default=64, help="first K test problems (default 64, the committed run)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="fine-tuning seeds (default 0)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny plan, K=4, 4 settings")
    p.add_argument("--timing", action="store_true", help="print wall times per setting class only")
    p.add_argument("--resamples", type=int, default=N_RESAMPLES)
    p.add_argument("--work", type=pathlib.Path, default=None, help="run/eval store (default runs/shots_noise)")
    p.add_argument("--out", type=pathlib.Path, default=None, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    if args.k < 1:
        p.error(f"--k must be >= 1, got {args.k}")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        p.error(f"--seeds must be distinct ints >= 0, got {args.seeds}")
    if args.quick:
        args.k = min(args.k, 4)
    args.work = args.work or (WORK.with_name("shots_noise_quick") if args.quick else WORK)
    args.out = args.out or (args.work / "results" if args.quick else RESULTS)

    def log(m):
        print(m, flush=True)

    if args.timing:
        timing_pass(args, log)
        return 0
    result = run(args, log)
    write(result, args.out)
    log(f"wrote {args.out}/shots_noise.{{json,md,png}} in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
