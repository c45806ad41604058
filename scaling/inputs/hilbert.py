"""Vectorised 3-D (any-D) Hilbert curve index, Skilling's transpose algorithm.

J. Skilling, "Programming the Hilbert curve", AIP Conf. Proc. 707, 381 (2004): the coordinates are turned
in place into the "transposed" Hilbert index (inverse undo of the rotations, then Gray encoding), whose bits
interleaved most-significant first give the position along the curve. Here every step is a numpy operation
over all points at once, so a few thousand points take well under a millisecond.

    >>> hilbert_index(np.array([[0, 0, 0], [0, 0, 1]]), bits=2)
"""

from __future__ import annotations

import numpy as np


def hilbert_index(cells: np.ndarray, bits: int) -> np.ndarray:
    """Hilbert curve position (n,) int64 of integer grid cells (n, d) in [0, 2**bits); d * bits <= 62."""
    cells = np.asarray(cells)
    if cells.ndim != 2:
        raise ValueError(f"hilbert_index: cells must be (n, d), got shape {cells.shape}")
    n_dim = cells.shape[1]
    if n_dim * bits > 62 or bits < 1:
        raise ValueError(f"hilbert_index: {n_dim} dims x {bits} bits does not fit an int64 index")
    if cells.size and (cells.min() < 0 or cells.max() >= (1 << bits)):
        raise ValueError(f"hilbert_index: cells must lie in [0, {1 << bits})")
    x = cells.astype(np.int64).T.copy()  # (d, n): one row per axis
    _undo_rotations(x, bits)
    _gray_encode(x, bits)
    index = np.zeros(cells.shape[0], dtype=np.int64)
    for b in range(bits - 1, -1, -1):
        for i in range(n_dim):
            index = (index << 1) | ((x[i] >> b) & 1)
    return index


def _undo_rotations(x: np.ndarray, bits: int) -> None:
    """Skilling's 'inverse undo' loop, in place on (d, n) coordinates."""
    q = 1 << (bits - 1)
    while q > 1:
        p = q - 1
        for i in range(x.shape[0]):
            high = (x[i] & q) != 0
            x[0] ^= np.where(high, p, 0)  # invert the low bits of axis 0
            t = np.where(high, 0, (x[0] ^ x[i]) & p)  # or exchange low bits of axes 0 and i
            x[0] ^= t
            x[i] ^= t
        q >>= 1


def _gray_encode(x: np.ndarray, bits: int) -> None:
    """Gray-encode the transposed index in place."""
    for i in range(1, x.shape[0]):
        x[i] ^= x[i - 1]
    t = np.zeros(x.shape[1], dtype=np.int64)
    q = 1 << (bits - 1)
    while q > 1:
        t ^= np.where((x[-1] & q) != 0, q - 1, 0)
        q >>= 1
    x ^= t
