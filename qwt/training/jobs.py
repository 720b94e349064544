"""Fine-tuning jobs: resolve a model and a dataset from strings, apply adapters, train, evaluate,
and reload a finished run from its checkpoint (what ``qwt finetune/eval/generate`` run).

Model specs: ``"builtin:tiny"`` / ``"builtin:small"`` (random initialisation from the seed, the
built-in character tokenizer), ``"pretrained:maths-small"`` (the base shipped in the package, see
:mod:`qwt.training.pretrain`; loaded as the Hugging Face checkpoint it is) or a directory holding a
Hugging Face checkpoint (``config.json`` + safetensors + ``tokenizer.json``; the built-in character
tokenizer only when the folder has no tokenizer file and the model's vocabulary is exactly its 100
tokens, anything else is refused). Dataset specs: ``"maths:FAMILY[,FAMILY...]"`` (the seeded generator of
``qwt.data.maths``, GSM8K layout), ``"trace:FAMILY,...|all"`` (the same problems in the
R1-Distill-SFT-shaped ``<think>`` trace layout) or a JSON/JSONL file (``qwt.data.load_examples``,
format ``auto|alpaca|chat|reasoning|mmlu``).

Every checkpoint's metadata records the model spec, method, targets, adapter config and data, so
:func:`load_finetuned` rebuilds the same model and restores the adapter weights.

Example:
    >>> import tempfile
    >>> from qwt.training import JobSpec, TrainConfig, finetune, load_finetuned
    >>> spec = JobSpec(model="builtin:tiny", method="lora", adapter={"rank": 2}, dataset="maths:ages",
    ...                n_train=32, n_eval=4, max_len=96, max_new_tokens=4,
    ...                train=TrainConfig(steps=2, batch_size=4, warmup_steps=0))
    >>> out = tempfile.mkdtemp()
    >>> summary = finetune(spec, out)
    >>> model, tok, meta = load_finetuned(out)
    >>> meta["method"], summary["step"]
    ('lora', 2)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from qwt.training.checkpoint import Checkpointer
from qwt.training.config import TrainConfig
from qwt.training.evaluate import choice_scores, eval_batches, generate_texts, strict_accuracy_eval, text_metrics
from qwt.training.hosts import broadcast_json
from qwt.training.loop import train
from qwt.training.metrics import is_primary_process

if TYPE_CHECKING:  # qwt.peft is imported when first used (it pulls in the simulators)
    from qwt.peft.config import Method

__all__ = ["JobSpec", "load_base", "load_dataset", "build_adapted", "finetune", "load_finetuned", "evaluate_run"]

BUILTIN_PREFIX = "builtin:"
PRETRAINED_PREFIX = "pretrained:"
MATHS_PREFIX = "maths:"
TRACE_PREFIX = "trace:"

DataFormat = Literal["auto", "alpaca", "chat", "reasoning", "mmlu"]
"""How a dataset file is read (:func:`qwt.data.load_examples`)."""
Dtype = Literal["float32", "bfloat16"]


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A fine-tuning job.

    Args:
      model: model spec (see module docstring).
      method: a :data:`qwt.peft.Method`: ``"qtha"``, ``"lora"``, ``"dora"``, ``"quanta"`` or a QTHA
        control (``"mpo_only"``, ``"mpo_mlp"``, ``"qtha_noent"``).
      targets: projection names to adapt.
      adapter: settings of the method's config (``rank``/``alpha``; ``n_qubits``, ``qnn_layers``...;
        :mod:`qwt.peft.config`), as given: the fingerprint records them so.
      dataset: dataset spec (see module docstring).
      data_format: loader for files: ``auto``, ``alpaca``, ``chat``, ``reasoning``, ``mmlu``.
      n_train: generated training examples (``maths:`` datasets).
      n_eval: held-out examples for evaluation (the last ``n_eval`` of a file; new ones for maths).
      difficulty: maths difficulty (1–3).
      max_len: token length of training rows.
      template: prompt template name (``qwt.data.TEMPLATES``).
      max_new_tokens: generation length at evaluation.
      eval_loss: compute the held-out loss during/after training (one more compiled program).
      train: the :class:`TrainConfig`.
    """

    model: str = "builtin:small"
    method: Method = "qtha"
    targets: tuple = ("q_proj", "v_proj")
    adapter: dict = dataclasses.field(default_factory=dict)
    dataset: str = "maths:rates,ages"
    data_format: DataFormat = "auto"
    n_train: int = 2000
    n_eval: int = 64
    difficulty: int = 1
    max_len: int = 96
    template: str = "plain"
    max_new_tokens: int = 48
    eval_loss: bool = True
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self):
        from qwt.circuit.guards import check_choice
        from qwt.peft.config import Method

        check_choice(self.method, Method, "method")
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"targets must be non-empty names, got {self.targets!r}")
        object.__setattr__(self, "targets", targets)
        if not isinstance(self.adapter, dict):
            raise TypeError(f"adapter must be a dict of adapter settings, got {type(self.adapter).__name__}")
        check_choice(self.data_format, DataFormat, "data_format")
        for name in ("n_train", "n_eval", "max_len", "max_new_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.difficulty not in (1, 2, 3):
            raise ValueError(f"difficulty must be 1, 2 or 3, got {self.difficulty!r}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")

    def replace(self, **changes) -> "JobSpec":
        return dataclasses.replace(self, **changes)

    def adapter_config(self):
        """The typed adapter config of this job (:func:`qwt.peft.make_config` of method and settings)."""
        from qwt.peft import make_config

        return make_config(self.method, **self.adapter)

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint of this job must share to be resumed (the train part is added by train)."""
        return {"model": self.model, "method": self.method, "targets": list(self.targets),
                "adapter": dict(self.adapter), "dataset": self.dataset, "data_format": self.data_format,
                "n_train": self.n_train, "difficulty": self.difficulty, "max_len": self.max_len,
                "template": self.template}

    def to_dict(self) -> dict[str, Any]:
        return {**self.fingerprint(), "n_eval": self.n_eval, "max_new_tokens": self.max_new_tokens,
                "eval_loss": self.eval_loss, "train": self.train.to_dict()}


def load_base(model: str, *, seed: int = 0, dtype: Dtype = "float32"):
    """Builds or loads the base model.

    Args:
      model: ``"builtin:NAME"`` or a Hugging Face checkpoint directory.
      seed: initialisation seed of built-in models.
      dtype: parameter dtype (``"float32"`` or ``"bfloat16"``).

    Returns:
      ``(model, tokenizer)``.

    Raises:
      ValueError: unknown built-in name. FileNotFoundError: missing directory or config/weights.
      qwt.models.loading.ModelFileError (a ValueError): a broken config.json, safetensors or
        tokenizer file, or a tokenizer that does not fit the model (a directory without
        tokenizer.json whose vocabulary is not the built-in tokenizer's, or a tokenizer.json with
        more tokens than the model embeds); raised here, before any training starts.
    """
    import jax.numpy as jnp
    from flax import nnx

    from qwt import models
    from qwt.circuit.guards import check_choice

    dt = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[check_choice(dtype, Dtype, "dtype")]
    if model.startswith(PRETRAINED_PREFIX):  # a shipped checkpoint: loaded like any HF directory below
        from qwt.training.pretrain import shipped_base

        model = str(shipped_base(model[len(PRETRAINED_PREFIX):]))
    if model.startswith(BUILTIN_PREFIX):
        name = model[len(BUILTIN_PREFIX):]
        if name not in ("tiny", "small"):
            raise ValueError(f"unknown built-in model {name!r}; choose builtin:tiny or builtin:small")
        return models.CausalLM(models.builtin_config(name), rngs=nnx.Rngs(seed), param_dtype=dt), models.builtin_tokenizer()
    path = pathlib.Path(model)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path} (or use builtin:tiny / builtin:small)")
    from qwt.models.loading import read_config
    from qwt.models.tokenizer import model_tokenizer

    # The tokenizer first: a mismatch is refused (never replaced) before the weights are read.
    tok = model_tokenizer(path, read_config(path).vocab_size)
    m, _ = models.load(path, dtype=jnp.float32, param_dtype=dt)
    return m, tok


def load_dataset(spec: str, *, n: int, seed: int, difficulty: int = 1, data_format: DataFormat = "auto"):
    """Examples for a dataset spec (``maths:f1,f2`` or a file path); see the module docstring."""
    from qwt import data

    if spec.startswith((MATHS_PREFIX, TRACE_PREFIX)):
        trace = spec.startswith(TRACE_PREFIX)
        names = spec.partition(":")[2]
        families = list(data.maths.FAMILIES) if names == "all" else [f for f in names.split(",") if f]
        bad = [f for f in families if f not in data.maths.FAMILIES]
        if not families or bad:
            raise ValueError(f"unknown maths families {bad or families}; choose from {data.maths.FAMILIES} or 'all'")
        render = data.maths.trace_response if trace else data.maths.gsm8k_response
        return data.maths.generate(n, families=families, difficulty=difficulty, seed=seed, render=render)
    path = pathlib.Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path} (or use maths:FAMILY,...)")
    return data.load_examples(path, format=data_format)


def _split(spec: JobSpec):
    seed = spec.train.seed
    if spec.dataset.startswith((MATHS_PREFIX, TRACE_PREFIX)):
        tr = load_dataset(spec.dataset, n=spec.n_train, seed=seed, difficulty=spec.difficulty)
        # A distinct seed stream for the held-out set; overlaps with training are removed.
        ev = load_dataset(spec.dataset, n=spec.n_eval * 2, seed=seed + 10_007, difficulty=spec.difficulty)
        seen = {e.prompt for e in tr}
        ev = [e for e in ev if e.prompt not in seen][: spec.n_eval]
        return tr, ev
    examples = load_dataset(spec.dataset, n=0, seed=seed, data_format=spec.data_format)
    if len(examples) < 2:
        raise ValueError(f"{spec.dataset} has {len(examples)} example(s); need at least 2 (train + eval)")
    n_eval = min(spec.n_eval, max(1, len(examples) // 5))
    return examples[:-n_eval], examples[-n_eval:]


def build_adapted(spec: JobSpec, *, base=None):
    """The base model (``base`` or :func:`load_base`) with ``spec``'s adapters applied."""
    from flax import nnx

    from qwt import peft

    model, tok = base if base is not None else load_base(spec.model, seed=spec.train.seed)
    peft.apply(model, spec.adapter_config(), spec.targets, rngs=nnx.Rngs(spec.train.seed + 1))
    return model, tok


def evaluate_run(model, tok, spec: JobSpec, eval_examples, *, batch_size: int = 32) -> dict:
    """Multiple-choice accuracy (lettered questions, by option log-likelihood), strict accuracy
    (examples with answers) or BLEU/ROUGE-L (dialogue) on held-out examples."""
    from qwt.data.choices import choice_letters

    if eval_examples and all(e.answer in choice_letters(e) for e in eval_examples):
        out = choice_scores(model, tok, eval_examples, template=spec.template, batch_size=batch_size)
        return {"choice_accuracy": out["accuracy"], "n_eval": len(eval_examples), "samples": out["predictions"][:3]}
    if all(e.answer is not None for e in eval_examples):
        out = strict_accuracy_eval(model, tok, eval_examples, template=spec.template,
                                   max_new_tokens=spec.max_new_tokens, batch_size=batch_size)
        return {"strict_accuracy": out["strict_accuracy"], "n_eval": out["n"], "samples": out["predictions"][:3]}
    preds = generate_texts(model, tok, eval_examples, template=spec.template, max_new_tokens=spec.max_new_tokens,
                           batch_size=batch_size)
    return {**text_metrics(preds, [e.response for e in eval_examples]), "n_eval": len(preds), "samples": preds[:3]}


def _check_finite(model, name: str) -> None:
    """Refuses a base holding inf/NaN weights, naming the tensors (such a run diverges at step 1)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    bad = [jax.tree_util.keystr(path, simple=True, separator=".").removesuffix(".value")
           for path, x in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
           if jnp.issubdtype(jnp.result_type(x), jnp.inexact) and not bool(jnp.isfinite(x).all())]
    if bad:
        raise ValueError(
            f"base model {name}: inf/NaN weights in {len(bad)} tensor(s) ({', '.join(bad[:4])}"
            f"{', ...' if len(bad) > 4 else ''}); training would diverge at the first step whatever the "
            "learning rate. The model files are damaged or come from a diverged run: re-export or "
            "re-download the model.")


def _adapter_defaults(method: str) -> dict:
    """The defaults of the method's config (:attr:`qwt.peft.CONFIGS`), e.g. LoRA's ``rank=8``."""
    from qwt import peft

    return peft.CONFIGS[method].defaults()


def _resume_fingerprint(spec: "JobSpec", ck_dir: pathlib.Path, resume: bool) -> dict:
    """The spec's fingerprint with adapter settings equal to the adapter's defaults left out, so an
    explicit default compares equal to an absent one when a checkpoint is resumed."""
    defaults = _adapter_defaults(spec.method)

    def same(a, b):
        a, b = (json.loads(json.dumps(v, sort_keys=True, default=str)) for v in (a, b))
        return a == b and isinstance(a, bool) == isinstance(b, bool)

    def canonical(adapter: dict) -> dict:
        return {k: v for k, v in adapter.items() if not (k in defaults and same(v, defaults[k]))}

    fingerprint = {**spec.fingerprint(), "adapter": canonical(spec.adapter)}
    # Process 0's view of the directory (a broadcast): every process must open the Checkpointer
    # below or none, since its calls are collective with several processes.
    if resume and broadcast_json(ck_dir.is_dir()):
        # A checkpoint written with the same settings spelled otherwise (by older code: explicit
        # defaults) keeps its own spelling, so that it still compares equal.
        from qwt.training.checkpoint import CheckpointError

        ck = Checkpointer(ck_dir)
        try:
            step, _ = ck.newest_intact()
            stored = ck.read_meta(step).get("fingerprint", {}).get("adapter") if step is not None else None
            if isinstance(stored, dict) and canonical(stored) == fingerprint["adapter"]:
                fingerprint["adapter"] = stored
        except (CheckpointError, FileNotFoundError):
            pass  # train() reports damaged checkpoints itself
        finally:
            ck.close()
    return fingerprint


def finetune(spec: JobSpec, out_dir, *, resume: bool = True, progress: bool | None = None, base=None,
             evaluate: bool = True, desc: str | None = None, splits=None, mesh=None) -> dict:
    """Runs a fine-tuning job: adapters, training with checkpoints in ``out_dir``, evaluation.

    Args:
      spec: the job.
      out_dir: run directory (``metrics.jsonl``, ``curves.png``, ``checkpoints/``, ``summary.json``).
      resume: continue from the newest intact checkpoint in ``out_dir`` (refused if it is from
        another config; newer damaged ones are moved to ``checkpoints.damaged/`` with a warning).
        False starts over and moves the old ``checkpoints/`` to ``checkpoints.old-<n>/`` (printed;
        never deleted).
      progress: tqdm bar (default: on a TTY only; off a TTY, periodic progress lines on stderr, see
        :func:`qwt.training.train`).
      base: optional ``(model, tokenizer)`` to adapt instead of loading ``spec.model``.
      evaluate: run generation-based evaluation at the end.
      desc: label for the progress bar and plot (default: the method).
      splits: optional ``(train_examples, eval_examples)`` to use instead of the spec's dataset
        (the comparison harness passes its fixed train/validation split here).
      mesh: optional ``(data, fsdp)`` mesh (:mod:`qwt.training.mesh`) for sharded training.

    Adapter settings equal to the adapter's defaults count as absent when a checkpoint is compared
    for resume (``{"rank": 8}`` is LoRA's default: the same run as ``{}``).

    Returns:
      The summary dict (also written to ``out_dir/summary.json``; with several processes, by
      process 0 only: every process returns the same dict).

    Raises:
      ValueError: among others, a base model holding inf/NaN weights (named, before any training:
        such a run would diverge at its first step whatever the learning rate).
    """
    from qwt import data, peft

    if mesh is not None:  # a mesh that does not fit the batch fails before the base is loaded
        from qwt.training import mesh as qmesh

        qmesh.check_batch_size(spec.train.batch_size, mesh)
    train_ex, eval_ex = _split(spec) if splits is None else splits  # data errors first: they are cheap
    base = base if base is not None else load_base(spec.model, seed=spec.train.seed)
    _check_finite(base[0], spec.model)
    model, tok = build_adapted(spec, base=base)
    arrays, stats = data.encode_examples(train_ex, tok, spec.max_len, template=spec.template, return_stats=True)
    eval_arrays = data.encode_examples(eval_ex, tok, spec.max_len, template=spec.template)
    batches = data.Batches(arrays, spec.train.batch_size, seed=spec.train.seed)
    fingerprint = _resume_fingerprint(spec, pathlib.Path(out_dir) / "checkpoints", resume)
    meta = {"fingerprint": fingerprint, "job": spec.to_dict(), "method": spec.method,
            "adapter_config": peft.adapter_config(model), "count": peft.count(model)}
    eval_data = eval_batches(eval_arrays, spec.train.batch_size, spec.train.eval_batches) if spec.eval_loss else None
    res = train(model, spec.train, batches, eval_data=eval_data,
                out_dir=out_dir, meta=meta, resume=resume, progress=progress, desc=desc or spec.method,
                mesh=mesh)
    summary = {
        "method": spec.method, "trainable": meta["count"]["trainable"], "total": meta["count"]["total"],
        "step": res.step, "final_loss": res.final_loss, "eval_loss": res.eval_loss,
        "tokens_per_s": res.tokens_per_s, "train_wall_s": res.wall_s, "truncated_examples": stats.n_truncated,
        "resumed_from": res.resumed_from,
    }
    if evaluate:
        scores = evaluate_run(model, tok, spec, eval_ex)
        summary.update(scores)
        # The generation metrics join the run's JSONL log as a final record.
        if is_primary_process():  # one writer of a shared run directory (all computed the same)
            with open(pathlib.Path(out_dir) / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": res.step, **{k: v for k, v in scores.items() if k != "samples"}}) + "\n")
    if is_primary_process():
        pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def load_finetuned(out_dir, *, step: int | None = None):
    """Rebuilds a fine-tuned model from a run directory's checkpoint.

    Returns:
      ``(model, tokenizer, meta)``; ``meta["job"]`` is the :meth:`JobSpec.to_dict` of the run.

    Raises:
      FileNotFoundError: no checkpoint: ``out_dir`` is missing, is not a run directory (no
        ``checkpoints/``) or holds none; nothing is created then.
      CheckpointMismatchError: the weights do not fit the rebuilt model.
    """
    import jax
    from flax import nnx

    from qwt import peft
    from qwt.training.optim import make_optimizer

    run = pathlib.Path(out_dir)
    # Checked before orbax is involved: its manager would create the directory it is pointed at.
    if not run.is_dir():
        why = "it is not a directory" if run.exists() else "no such directory"
        raise FileNotFoundError(f"no checkpoint in {run}: {why} (give a run directory written by qwt finetune)")
    if not (run / "checkpoints").is_dir():
        raise FileNotFoundError(f"no checkpoint in {run}: not a run directory of qwt finetune (it has no "
                                "checkpoints/ folder)")
    ck = Checkpointer(run / "checkpoints")
    try:
        meta = ck.read_meta(step)
        job = dict(meta["job"])
        spec = JobSpec(**{k: v for k, v in job.items() if k != "train"}, train=TrainConfig.from_dict(job["train"]))
        model, tok = build_adapted(spec)
        trainable = nnx.state(model, peft.trainable(model))
        template = {"trainable": trainable, "opt_state": make_optimizer(spec.train).init(trainable),
                    "rng": np.asarray(jax.random.key_data(jax.random.key(0)))}
        state, meta = ck.restore(template, step)
    finally:
        ck.close()
    nnx.update(model, state["trainable"])
    return model, tok, meta
