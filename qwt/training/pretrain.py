"""Pretraining the shipped base model: a seeded recipe, reproducible bit for bit (``qwt pretrain``).

The base that ``qwt compare`` fine-tunes ships inside the package (``qwt/models/pretrained/maths-small``,
Hugging Face layout: ``config.json``, ``tokenizer.json``, ``model.safetensors``, plus ``recipe.json``).
It was made by :func:`pretrain` with :data:`MATHS_SMALL`: the built-in ``small`` model (4 layers,
hidden 128, character tokenizer, ~1M parameters) trained, all weights, on every family of
:mod:`qwt.data.maths` at difficulty 1 in the **varied** layouts (:func:`qwt.data.maths.varied_response`:
four ways of writing the steps, each ending ``Result: N``). So the base reads the problem text,
does the arithmetic and has used every character of the R1-Distill-SFT-shaped trace layout, but it
has never seen that layout (a ``<think>`` block, then ``#### N``), which fine-tuning then teaches.

Everything that determines the weights is in the recipe (model config, data seed, sizes, template,
optimiser, seed); on the same jax/XLA version and CPU the same recipe writes the same bytes
(``recipe.json`` records their SHA-256, and ``qwt pretrain --check`` compares a fresh run with the
shipped files). The output directory appears complete or not at all.

Example:
    >>> import tempfile, pathlib
    >>> from qwt.training.pretrain import QUICK, pretrain
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "base"
    >>> info = pretrain(QUICK, out, progress=False, log=lambda m: None)
    >>> sorted(p.name for p in out.iterdir())
    ['config.json', 'model.safetensors', 'recipe.json', 'tokenizer.json']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import time
from typing import Any

from qwt.training.config import TrainConfig

__all__ = ["PretrainRecipe", "MATHS_SMALL", "QUICK", "pretrain", "shipped_base", "pretrain_examples",
           "sha256_file", "SHIPPED_NAME", "describe_machine"]

SHIPPED_NAME = "maths-small"


@dataclasses.dataclass(frozen=True)
class PretrainRecipe:
    """Everything that determines a pretrained base.

    Args:
      model: built-in config name (``qwt.models.builtin_config``).
      families: maths families of the corpus.
      difficulty: maths difficulty of the corpus.
      n_examples: generated problems (unreserved prompts; small families repeat).
      data_seed: seed of the corpus draw (kept apart from the fine-tuning task's seeds).
      style: response layout, a key of ``qwt.data.maths.RESPONSE_STYLES``.
      max_len: token length of a row.
      template: prompt template.
      train: optimiser and loop (all weights train); ``train.seed`` seeds initialisation and order.
    """

    model: str = "small"
    families: tuple = ("arithmetic", "shopping", "rates", "remainders", "equations", "percentages", "ages")
    difficulty: int = 1
    n_examples: int = 40000
    data_seed: int = 1000
    style: str = "varied"
    max_len: int = 144
    template: str = "plain"
    train: TrainConfig = TrainConfig(steps=3600, batch_size=32, lr=3e-3, warmup_steps=60, weight_decay=0.01,
                                     seed=0, log_every=50, save_every=400, keep_last=1)

    def __post_init__(self):
        from qwt.data import maths
        from qwt.models import builtin_config

        try:
            builtin_config(self.model)
        except ValueError as e:  # the config module owns the list of built-in names
            raise ValueError(f"PretrainRecipe.model: {e}") from None
        object.__setattr__(self, "families", tuple(self.families))
        bad = [f for f in self.families if f not in maths.FAMILIES]
        if not self.families or bad:
            raise ValueError(f"PretrainRecipe.families: unknown {bad or 'empty'}; choose from {maths.FAMILIES}")
        if self.style not in maths.RESPONSE_STYLES:
            raise ValueError(f"PretrainRecipe.style must be one of {sorted(maths.RESPONSE_STYLES)}, got {self.style!r}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"PretrainRecipe.train must be a TrainConfig, got {type(self.train).__name__}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["families"] = list(self.families)
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PretrainRecipe":
        d = dict(d)
        return cls(**{**d, "families": tuple(d["families"]), "train": TrainConfig.from_dict(d["train"])})

    def replace(self, **changes) -> "PretrainRecipe":
        return dataclasses.replace(self, **changes)


MATHS_SMALL = PretrainRecipe()
"""The recipe of the shipped ``maths-small`` base."""

QUICK = PretrainRecipe(model="tiny", n_examples=256, max_len=144,
                       train=TrainConfig(steps=6, batch_size=8, lr=3e-3, warmup_steps=1, seed=0, log_every=3))
"""A seconds-long recipe for tests and smoke runs."""


def shipped_base(name: str = SHIPPED_NAME) -> pathlib.Path:
    """The directory of a base model shipped in the package (a Hugging Face-layout checkpoint).

    Raises:
      FileNotFoundError: no such shipped model (the message lists the available ones).
    """
    root = pathlib.Path(__file__).resolve().parent.parent / "models" / "pretrained"
    path = root / name
    if not (path / "model.safetensors").is_file():
        have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(f"no shipped base model {name!r} in {root}; available: {have}")
    return path


def pretrain_examples(recipe: PretrainRecipe):
    """The recipe's corpus: seeded draws of unreserved prompts (:func:`qwt.data.maths.reserved` keeps
    the evaluation quarter out), in the recipe's layout. Small families repeat problems."""
    from qwt.data import maths

    return maths.generate(recipe.n_examples, families=recipe.families, difficulty=recipe.difficulty,
                          seed=recipe.data_seed, render=maths.RESPONSE_STYLES[recipe.style],
                          where=lambda p: not maths.reserved(p))


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pretrain(recipe: PretrainRecipe, out_dir, *, progress: bool | None = None, log=print) -> dict:
    """Trains a built-in model from scratch by ``recipe`` and writes it in Hugging Face layout.

    Work happens in ``<out_dir>.partial/`` (with resumable checkpoints, so a killed run continues
    where it stopped when called again); the finished files are moved to ``out_dir`` in one rename.

    Args:
      recipe: the :class:`PretrainRecipe`.
      out_dir: directory to create (must not exist yet).
      progress: tqdm bar (default: on a TTY only).
      log: where progress lines go.

    Returns:
      The contents of ``recipe.json``: the recipe, final loss, wall time, versions and the SHA-256
      of ``model.safetensors``.

    Raises:
      FileExistsError: ``out_dir`` exists (nothing is overwritten).
    """
    import jax
    from flax import nnx

    from qwt import data, models
    from qwt.training.loop import train

    out = pathlib.Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} exists; pretrain writes a new directory (remove it or pick another)")
    work = out.with_name(out.name + ".partial")
    t0 = time.perf_counter()
    model = models.CausalLM(models.builtin_config(recipe.model), rngs=nnx.Rngs(recipe.train.seed))
    tok = models.builtin_tokenizer()
    arrays, stats = data.encode_examples(pretrain_examples(recipe), tok, recipe.max_len, template=recipe.template,
                                         return_stats=True)
    if stats.n_truncated:
        raise ValueError(f"PretrainRecipe.max_len={recipe.max_len} truncates {stats.n_truncated} examples; raise it")
    batches = data.Batches(arrays, recipe.train.batch_size, seed=recipe.train.seed)
    log(f"pretraining builtin:{recipe.model} on {len(recipe.families)} maths families "
        f"({recipe.n_examples} problems, {recipe.style} layout) for {recipe.train.steps} steps -> {out}")
    res = train(model, recipe.train, batches, trainable_filter=nnx.Param, out_dir=work / "run",
                meta={"fingerprint": {"recipe": recipe.to_dict()}}, progress=progress, desc="pretrain")
    files = work / "files"
    if files.exists():
        shutil.rmtree(files)
    models.save(model, files)
    tok.save(files)
    info = {"recipe": recipe.to_dict(), "final_loss": res.final_loss, "steps": res.step,
            "wall_s": round(time.perf_counter() - t0, 1), "resumed_from": res.resumed_from,
            "sha256": {"model.safetensors": sha256_file(files / "model.safetensors")},
            "versions": {"jax": jax.__version__, "qwt": _qwt_version()}, "machine": describe_machine()}
    (files / "recipe.json").write_text(json.dumps(info, indent=2) + "\n")
    os.replace(files, out)
    shutil.rmtree(work, ignore_errors=True)
    return info


def _qwt_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("qwt")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "source"


def describe_machine() -> str:
    """The CPU model and core count, as recorded with results."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"
