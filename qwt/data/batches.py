"""Deterministic, resumable mini-batching over a dict of equally long arrays.

Epoch ``e`` visits the rows in the order ``np.random.default_rng([seed, e]).permutation(n)``, so
the batch of global step ``s`` is a pure function of ``(arrays, batch_size, seed, drop_last, s)``:
a run resumed from a checkpoint at step ``s`` calls ``batch_at(s)`` (or ``iter_from(s)``) and sees
exactly the data order the uninterrupted run would have seen. No iterator state needs saving.

Example:
    >>> import numpy as np
    >>> b = Batches({"x": np.arange(10)}, 4, seed=0)
    >>> len(b), b.batch_at(3)["x"].shape, bool((b.batch_at(7)["x"] == b.batch_at(7)["x"]).all())
    (2, (4,), True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

__all__ = ["Batches"]


class Batches:
    """Epoch-wise shuffled batches with random access by step.

    Args:
        arrays: mapping of name to array; all share the leading (row) dimension. Arrays are
            converted with ``np.asarray`` (no copy for numpy inputs) and indexed on the host.
        batch_size: rows per batch.
        seed: non-negative integer seed of the shuffling.
        drop_last: drop the last incomplete batch of each epoch (default), keeping every batch
            the same shape (one compiled train step). With False the last batch of an epoch is
            smaller.

    Example:
        >>> import numpy as np
        >>> b = Batches({"x": np.arange(6)}, 2, seed=1)
        >>> sorted(np.concatenate([batch["x"] for batch in b]).tolist())  # one epoch
        [0, 1, 2, 3, 4, 5]
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, *, seed: int, drop_last: bool = True):
        if not isinstance(arrays, Mapping) or not arrays:
            raise TypeError("arrays must be a non-empty mapping of name -> array")
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        sizes = {k: (v.shape[0] if v.ndim else None) for k, v in self.arrays.items()}
        if None in sizes.values():
            raise ValueError(f"every array needs a leading row dimension; got scalars in {sizes}")
        if len(set(sizes.values())) != 1:
            raise ValueError(f"arrays disagree on the number of rows: {sizes}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.n_rows = next(iter(sizes.values()))
        self.batch_size, self.seed, self.drop_last = int(batch_size), int(seed), bool(drop_last)
        if self.n_rows == 0:
            raise ValueError("arrays have no rows")
        if drop_last and batch_size > self.n_rows:
            raise ValueError(f"batch_size={batch_size} exceeds the {self.n_rows} rows and drop_last=True "
                             "would leave no batch; use a smaller batch or drop_last=False")
        full, rest = divmod(self.n_rows, self.batch_size)
        self.steps_per_epoch = full if drop_last or rest == 0 else full + 1
        self._perm_cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """The row order of ``epoch`` (0-based)."""
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            self._perm_cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_rows))
        return self._perm_cache[1]

    def indices_at(self, step: int) -> np.ndarray:
        """Row indices of global step ``step`` (0-based, counting across epochs)."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        epoch, i = divmod(int(step), self.steps_per_epoch)
        return self.permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch of global step ``step``: same step, same rows, on any run.

        Args:
            step: global step (epoch ``step // len(self)``).

        Returns:
            Dict of the same keys as ``arrays`` with ``batch_size`` rows (fewer only for the last
            batch of an epoch with ``drop_last=False``).
        """
        idx = self.indices_at(step)
        return {k: v[idx] for k, v in self.arrays.items()}

    def epoch_of(self, step: int) -> int:
        """The epoch a global step falls in."""
        return int(step) // self.steps_per_epoch

    def iter_from(self, step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Endless batches starting at global step ``step`` (for resuming)."""
        while True:
            yield self.batch_at(step)
            step += 1

    def epoch(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The batches of one epoch, in order."""
        for i in range(self.steps_per_epoch):
            yield self.batch_at(epoch * self.steps_per_epoch + i)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """The batches of epoch 0 (use :meth:`iter_from` for an endless stream)."""
        return self.epoch(0)

    def __repr__(self) -> str:
        return (f"Batches(rows={self.n_rows}, batch_size={self.batch_size}, seed={self.seed}, "
                f"drop_last={self.drop_last}, keys={sorted(self.arrays)})")
