"""Compile + run time of noisy trajectories on a 10-qubit QTHA-like layer circuit: the unitary-mixture
fast path (one gathered unitary per channel) against the general path (every Kraus branch).

The circuit: RY encodings on 10 qubits, then 2 layers of RY on every qubit and a CNOT ring, with
``depolarizing:P`` (one-qubit depolarizing after one-qubit gates, two-qubit after CNOTs: 30 + 20
channels). ``python benchmarks/bench_trajectories.py [--trajectories 256] [--p 0.01]``.
"""

import argparse
import time

import jax
import numpy as np

import qwt
from qwt.executors import parse_noise
from qwt.noise import trajectories


def qtha_like(n=10, layers=2, seed=0):
    rng = np.random.default_rng(seed)
    c = qwt.Circuit(n)
    for q in range(n):
        c.ry(q, float(rng.uniform(-np.pi, np.pi)))
    for _ in range(layers):
        for q in range(n):
            c.ry(q, float(rng.uniform(-np.pi, np.pi)))
        for q in range(n):
            c.cnot(q, (q + 1) % n)
    return c


def time_path(c, model, obs, n_traj, mixtures, repeats=3):
    f = jax.jit(lambda k: trajectories.expectation(c, obs, model, k, n_traj, mixtures=mixtures))
    t0 = time.perf_counter()
    jax.block_until_ready(f(jax.random.key(0)))
    first = time.perf_counter() - t0
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(jax.random.key(r + 1)))
        runs.append(time.perf_counter() - t0)
    return first, min(runs), np.asarray(out[0]), np.asarray(out[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trajectories", type=int, default=256)
    ap.add_argument("--p", type=float, default=0.01)
    args = ap.parse_args()
    c, model = qtha_like(), parse_noise(f"depolarizing:{args.p}")
    obs = [qwt.Z(q) for q in range(10)]
    for mixtures in (False, True):
        first, run, mean, se = time_path(c, model, obs, args.trajectories, mixtures)
        name = "fast (unitary mixture)" if mixtures else "general (all branches)"
        print(f"{name}: compile+first run {first:.2f} s, run {run:.3f} s, <Z0> = {mean[0]:.4f} ± {se[0]:.4f}")


if __name__ == "__main__":
    main()
