"""Training: AdamW + warm-up/cosine + clipping + gradient accumulation, jitted adapter-only steps,
orbax checkpoints with exact resume, JSONL metrics, PNG curves, evaluation and method comparison.

Example:
    >>> from qwt.training import TrainConfig, make_optimizer
    >>> tx = make_optimizer(TrainConfig(steps=10, warmup_steps=2))
"""

from qwt.training.checkpoint import (
    CheckpointCorruptError, CheckpointError, CheckpointFallbackWarning, CheckpointMismatchError, Checkpointer,
    flatten_tree, unflatten_like,
)
from qwt.training.config import TRAJECTORY_FIELDS, TrainConfig, load_config_file
from qwt.training.evaluate import choice_scores, eval_batches, generate_texts, strict_accuracy_eval, text_metrics
from qwt.training.jobs import JobSpec, build_adapted, evaluate_run, finetune, load_base, load_dataset, load_finetuned
from qwt.training.loop import TrainingDiverged, TrainResult, evaluate_loss, stack_micro_batches, train
from qwt.training.metrics import MetricsLog, Throughput, progress_bar, progress_enabled, read_jsonl
from qwt.training.optim import make_optimizer, make_schedule
from qwt.training.plot import plot_curves
from qwt.training.step import cast_floating, lm_loss_fn, make_eval_step, make_train_step, split_model
from qwt.training.pretrain import PretrainRecipe, pretrain, shipped_base
from qwt.training.tasks import FileTask, TraceTask
from qwt.training.study import Arm, StudyPlan, run_study
from qwt.training.plans import default_plan, full_plan

__all__ = [
    "TrainConfig", "load_config_file", "TRAJECTORY_FIELDS",
    "make_optimizer", "make_schedule",
    "split_model", "cast_floating", "lm_loss_fn", "make_train_step", "make_eval_step",
    "Checkpointer", "CheckpointError", "CheckpointMismatchError", "CheckpointCorruptError",
    "CheckpointFallbackWarning", "flatten_tree", "unflatten_like",
    "MetricsLog", "read_jsonl", "Throughput", "progress_bar", "progress_enabled",
    "plot_curves",
    "train", "TrainResult", "TrainingDiverged", "stack_micro_batches", "evaluate_loss",
    "generate_texts", "strict_accuracy_eval", "choice_scores", "text_metrics", "eval_batches",
    "JobSpec", "load_base", "load_dataset", "build_adapted", "finetune", "load_finetuned", "evaluate_run",
    "PretrainRecipe", "pretrain", "shipped_base", "TraceTask", "FileTask", "Arm", "StudyPlan", "run_study",
    "default_plan", "full_plan",
]
