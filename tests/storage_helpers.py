"""Shared by the storage tests: float32 weights, a fine-tune of them, and bit-exact comparison."""

from __future__ import annotations

import numpy as np


def weights(seed: int, n: int = 60_000) -> np.ndarray:
    """n float32 weights ~ N(0, 0.02), reproducible from seed."""
    return (np.random.default_rng(seed).standard_normal(n) * 0.02).astype("<f4")


def finetune(w: np.ndarray, seed: int) -> np.ndarray:
    """w with every element moved by ~0.1 % (a fine-tune); NaN and inf stay NaN and inf."""
    noise = np.random.default_rng(seed).standard_normal(w.shape).astype(w.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        return (w * (1 + noise * np.asarray(1e-3, dtype=w.dtype))).astype(w.dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical dtype, shape and bytes (NaN payloads included)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
