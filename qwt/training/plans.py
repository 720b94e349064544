"""The studies ``qwt compare`` runs: the default one-seed LoRA-vs-QTHA job and the ``--full`` plan.

Both fine-tune the shipped base (``pretrained:maths-small``) on the built-in trace task
(:class:`~qwt.training.tasks.TraceTask`: 4,000 training problems, 140 validation, 560 test) with one
budget for every arm (:data:`BUDGET`). The protocol was fixed before any result was looked at, and
the task and budget were set by looking at the base and LoRA only.

``--full`` arms (all on ``q_proj``/``v_proj``):

- ``lora`` (r=8, α=16, the baseline), ``lora-matched`` (LoRA at the rank whose trainable count is
  nearest QTHA-10q's), ``dora`` (r=8);
- ``qtha-4q`` and ``qtha-10q`` (the paper's width; 2 layers of Origin's ansatz);
- controls at QTHA-4q's shape: ``mpo-only`` (no QNN path), ``mpo-mlp`` (the QNN replaced by an MLP
  of exactly the QNN's trainable count and bottleneck), ``qtha-noent`` (the QNN without its CRZ
  rings);
- ``quanta`` (QuanTA, 4 axes).

Learning rates ``(3e-3, 1e-2, 3e-2)`` for every arm (centred on LoRA's best in the task probe, with room
above it for the adapters with fewer parameters), chosen on validation loss; seeds ``(0, 1, 2)``.

Example:
    >>> [a.name for a in default_plan().arms]
    ['lora', 'qtha-4q']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwt.training.config import TrainConfig
from qwt.training.jobs import JobSpec
from qwt.training.study import Arm, StudyPlan
from qwt.training.tasks import TraceTask

if TYPE_CHECKING:
    from qwt.peft.config import Method

__all__ = ["BUDGET", "budget_job", "default_plan", "full_plan", "matched_lora_rank", "FULL_LRS", "FULL_SEEDS",
           "TASK_FAMILIES", "DEFAULT_LRS"]

BASE = "pretrained:maths-small"
BUDGET = TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup_steps=10, weight_decay=0.0, log_every=10,
                     eval_batches=4)
FULL_LRS = (3e-3, 1e-2, 3e-2)
TASK_FAMILIES = ("arithmetic", "shopping", "rates", "equations", "ages")
"""The task's families: those the shipped base answers >= 60% right in its own layout on the
validation split (``benchmarks/task_probe.py``; remainders 45% and percentages 40% fall out)."""
FULL_SEEDS = (0, 1, 2)
LORA = {"rank": 8, "alpha": 16.0}
QTHA4 = {"n_qubits": 4, "qnn_layers": 2}
QTHA10 = {"n_qubits": 10, "qnn_layers": 2}


def budget_job(base: str = BASE) -> JobSpec:
    """The job every arm shares: the shipped budget (:data:`BUDGET`), row length, generation length."""
    return JobSpec(model=base, method="lora", max_len=160, max_new_tokens=72, train=BUDGET)


DEFAULT_LRS = {"lora": 1e-2, "qtha-4q": 3e-2}
"""The learning rate of each arm of ``qwt compare``: the one the committed ``--full`` sweep chose
for it on validation loss (``benchmarks/results/compare_full``)."""


def default_plan(*, base: str = BASE, seed: int = 0) -> StudyPlan:
    """``qwt compare``: base, LoRA r=8 and QTHA-4q, one seed, each arm at the learning rate the
    ``--full`` sweep chose for it on validation loss (:data:`DEFAULT_LRS`; no sweep here)."""
    arms = (Arm("lora", "lora", dict(LORA), lrs=(DEFAULT_LRS["lora"],)),
            Arm("qtha-4q", "qtha", dict(QTHA4), lrs=(DEFAULT_LRS["qtha-4q"],)))
    return StudyPlan(base, TraceTask(families=TASK_FAMILIES), arms, lrs=(DEFAULT_LRS["lora"],), seeds=(seed,), job=budget_job(base))


def matched_lora_rank(base: str, reference: dict, method: Method = "qtha", targets=("q_proj", "v_proj")) -> int:
    """The LoRA rank whose trainable count on ``base`` is nearest the ``reference`` adapter's."""
    from flax import nnx

    from qwt import peft
    from qwt.training.jobs import load_base

    model, _ = load_base(base)  # loaded once; each count adapts its own copy

    def count(m, cfg):
        copy = nnx.clone(model)
        peft.apply(copy, peft.make_config(m, **cfg), targets, rngs=nnx.Rngs(0))
        return peft.count(copy)["trainable"]

    want, per_rank = count(method, reference), count("lora", {"rank": 1, "alpha": 2.0})
    return max(1, round(want / per_rank))


def full_plan(*, base: str = BASE, task=None) -> StudyPlan:
    """``qwt compare --full``: every arm and control, the learning-rate sweep, three seeds."""
    r = matched_lora_rank(base, QTHA10)
    arms = (
        Arm("lora", "lora", dict(LORA)),
        Arm("lora-matched", "lora", {"rank": r, "alpha": 2.0 * r}),
        Arm("dora", "dora", {"rank": 8}),
        Arm("qtha-4q", "qtha", dict(QTHA4)),
        Arm("qtha-10q", "qtha", dict(QTHA10)),
        Arm("mpo-only", "mpo_only", dict(QTHA4)),
        Arm("mpo-mlp", "mpo_mlp", dict(QTHA4)),
        Arm("qtha-noent", "qtha_noent", dict(QTHA4)),
        Arm("quanta", "quanta", {}),
    )
    return StudyPlan(base, task or TraceTask(families=TASK_FAMILIES), arms, lrs=FULL_LRS, seeds=FULL_SEEDS, job=budget_job(base))
