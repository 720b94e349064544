"""Rows, tables and plots of a study (:mod:`qwt.training.study`): mean ± std over seeds and paired
bootstrap intervals of each arm's difference from the baseline arm.

Example:
    >>> format_table([{"arm": "base", "method": "base", "trainable": 0, "n_seeds": 1, "lr": None,
    ...                "acc_mean": 0.0, "acc_std": 0.0, "n_test": 500}]).splitlines()[2][:25]
    '| base | base | 0 | 1 | —'
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from qwt.training.stats import mean_std, paired_bootstrap_diff, paired_bootstrap_scalar, wilson_interval

__all__ = ["build_rows", "write_report", "format_table"]

METRIC_LABELS = {"strict_accuracy": "strict accuracy", "choice_accuracy": "multiple-choice accuracy",
                 "rouge_l": "ROUGE-L F1"}
"""Column names of the per-item test metrics of :func:`qwt.training.study.run_study`."""
_BINARY = ("strict_accuracy", "choice_accuracy")  # 0/1 per item: Wilson intervals for the base


def build_rows(plan, base: dict, runs: dict, sweep: dict, selection: dict) -> list[dict]:
    """One row for the base and one per arm (see :func:`format_table` for the columns)."""
    n = len(base["correct"])
    k = float(sum(base["correct"]))
    if base["metric"] in _BINARY:
        lo, hi = wilson_interval(int(k), n)
    else:
        ci = paired_bootstrap_diff(np.array([base["correct"]]), np.zeros((1, n)), n_resamples=plan.n_resamples)
        lo, hi = ci["lo"], ci["hi"]
    rows = [{"arm": "base", "method": "base", "trainable": 0, "n_seeds": 1, "lr": None, "n_test": n,
             "metric": base["metric"],
             "acc_mean": k / n, "acc_std": 0.0, "acc_lo": lo, "acc_hi": hi,
             "native_acc": float(np.mean(base["native_correct"])), "acc_per_seed": [k / n]}]
    ref = runs[plan.baseline]
    ref_correct = np.array([r["test"]["correct"] for r in ref], float)
    ref_loss = np.array([r["final_loss"] for r in ref], float)
    for arm in plan.arms:
        rs = runs[arm.name]
        correct = np.array([r["test"]["correct"] for r in rs], float)
        accs = correct.mean(axis=1)
        losses = np.array([r["final_loss"] for r in rs], float)
        vals = np.array([r["eval_loss"] for r in rs], float)
        acc_m, acc_s = mean_std(accs)
        loss_m, loss_s = mean_std(losses)
        val_m, val_s = mean_std(vals)
        # Interval of the seed-averaged accuracy: items resampled, seeds kept (as for the differences).
        ci = paired_bootstrap_diff(correct, np.zeros_like(correct), n_resamples=plan.n_resamples)
        row = {"arm": arm.name, "method": arm.method, "adapter": dict(arm.adapter), "trainable": rs[0]["trainable"],
               "n_seeds": len(rs), "lr": selection[arm.name], "n_test": correct.shape[1],
               "acc_mean": acc_m, "acc_std": acc_s, "acc_lo": ci["lo"], "acc_hi": ci["hi"],
               "acc_per_seed": accs.tolist(), "final_loss_mean": loss_m,
               "final_loss_std": loss_s, "val_loss_mean": val_m, "val_loss_std": val_s, "tokens_per_s": float(np.mean([r["tokens_per_s"] for r in rs])),
               "train_wall_s": float(np.mean([r["train_wall_s"] for r in rs])),
               "sweep": {f"{lr:g}": sweep[(arm.name, lr)]["eval_loss"] for lr in plan.arm_lrs(arm)}}
        if arm.name != plan.baseline and len(rs) == len(ref):
            row["acc_diff"] = paired_bootstrap_diff(correct, ref_correct, n_resamples=plan.n_resamples)
            row["loss_diff"] = paired_bootstrap_scalar(losses, ref_loss, n_resamples=plan.n_resamples)
        rows.append(row)
    base_trainable = next(r["trainable"] for r in rows if r["arm"] == plan.baseline)
    for r in rows[1:]:
        r["trainable_vs_baseline"] = r["trainable"] / base_trainable
    return rows


def _pm(m, s, spec=".1%"):
    return "—" if m is None else f"{format(m, spec)} ± {format(s, spec)}"


def _ci(d, spec=".1%"):
    if not d:
        return "—"
    return f"{format(d['diff'], '+' + spec)} [{format(d['lo'], '+' + spec)}, {format(d['hi'], '+' + spec)}]"


def format_table(rows) -> str:
    """Markdown: arm, method, trainable, seeds, chosen lr, test metric (strict accuracy unless the
    base row names another) mean ± std [95% CI], difference from the baseline [paired bootstrap 95%
    CI], final train loss, its difference."""
    label = METRIC_LABELS.get(rows[0].get("metric", "strict_accuracy"), rows[0].get("metric")) if rows else ""
    head = (f"| arm | method | trainable | seeds | lr | {label} (mean ± std) | 95% CI | Δ vs baseline [95% CI] "
            "| final train loss | Δ loss [95% CI] |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        ci = f"[{r['acc_lo']:.1%}, {r['acc_hi']:.1%}]" if "acc_lo" in r else "—"
        lr = "—" if r.get("lr") is None else f"{r['lr']:g}"
        loss = _pm(r.get("final_loss_mean"), r.get("final_loss_std"), ".4f")
        lines.append(f"| {r['arm']} | {r['method']} | {r['trainable']:,} | {r['n_seeds']} | {lr} "
                     f"| {_pm(r['acc_mean'], r['acc_std'])} | {ci} | {_ci(r.get('acc_diff'))} | {loss} "
                     f"| {_ci(r.get('loss_diff'), '.4f')} |")
    return "\n".join(lines)


def write_report(result: dict, runs: dict, out) -> None:
    """``compare.json``, ``compare.md``, ``loss_curves.png``, ``accuracy.png``, ``params_vs_accuracy.png``."""
    from qwt.training.report_plots import plot_accuracy_ci, plot_loss_bands, plot_params_vs_accuracy

    out = pathlib.Path(out)
    rows = result["rows"]
    (out / "compare.json").write_text(json.dumps(result, indent=1, default=float))
    base = rows[0]
    label = METRIC_LABELS.get(base["metric"], base["metric"])
    own = (f" ({base['native_acc']:.1%} when its own pretraining layout `Result: N` is read instead of `####`)"
           if base["metric"] == "strict_accuracy" else "")
    md = [format_table(rows), "",
          f"Base without adapter: {base['acc_mean']:.1%} {label} on {base['n_test']} test problems{own}.",
          f"Machine: {result.get('machine', {}).get('cpu', '?')}, jax {result.get('machine', {}).get('jax', '?')} "
          f"({result.get('machine', {}).get('backend', '?')}), {result.get('machine', {}).get('date', '')}; "
          f"study wall time {result['wall_s']:.0f} s" + ("" if result.get("complete", True) else
                                                        f"; INCOMPLETE: arms done {result['arms_done']}") + ".",
          "Chosen learning rate per arm: lowest validation loss of the sweep (seed "
          f"{result['plan']['seeds'][0]}); the test set played no part. Sweep validation losses:", ""]
    for r in rows[1:]:
        md.append(f"- {r['arm']}: " + ", ".join(f"lr {k}: {v:.4f}" for k, v in r["sweep"].items()))
    (out / "compare.md").write_text("\n".join(md) + "\n")
    curves = {arm: [[tuple(p) for p in r["curve"]] for r in rs] for arm, rs in runs.items()}
    plot_loss_bands(curves, out / "loss_curves.png", title="training loss (mean, band: min–max over seeds)")
    plot_accuracy_ci(rows, out / "accuracy.png")
    plot_params_vs_accuracy([r for r in rows if r["trainable"] > 0], out / "params_vs_accuracy.png")
