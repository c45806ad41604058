"""K-means tokeniser of spacepoints: the discrete targets of masked point modelling (MPM, Golling et al.:
K-means targets with K = 512 nearly match a VQ-VAE's and beat direct regression).

A point is tokenised on `token_features` of its normalised features [e, r01, phi01, eta01]: energy, r and eta
as they are, phi as a point on a circle of circumference ~pi (cos and sin of 2 pi phi01, halved), so a code
never splits at the phi seam. Lloyd's algorithm from K distinct random points, empty clusters re-seeded with
the worst-served points; deterministic for a seed.

    >>> centres = fit_kmeans(token_features(torch.from_numpy(feats)), k=512)
    >>> tokens = assign_tokens(token_features(batch.features), centres)     # [T] int64
"""

from __future__ import annotations

import math

import numpy as np
import torch

N_TOKEN_FEATURES = 5
ASSIGN_BLOCK = 65536


def token_features(features: torch.Tensor) -> torch.Tensor:
    """[..., 4] normalised [e, r01, phi01, eta01] -> [..., 5] [e, r01, eta01, cos/2, sin/2 of 2 pi phi01]."""
    f = features.float()
    angle = 2 * math.pi * f[..., 2]
    return torch.stack([f[..., 0], f[..., 1], f[..., 3], 0.5 * angle.cos(), 0.5 * angle.sin()], dim=-1)


def assign_tokens(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[T] int64 index of the nearest centre (Euclidean) of each row of x [T, d]; centres [K, d]."""
    x = x.reshape(-1, x.shape[-1]).float()
    centres = centres.to(x.device, torch.float32)
    out = [
        torch.cdist(x[i : i + ASSIGN_BLOCK], centres).argmin(-1) for i in range(0, x.shape[0], ASSIGN_BLOCK)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def fit_kmeans(x: torch.Tensor, k: int, *, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """[K, d] centres of x [m, d] (m >= K distinct rows); a ValueError naming the key otherwise."""
    x = x.float()
    m = x.shape[0]
    if m == 0:
        raise ValueError(
            "objective.codebook_size: no training points to fit the K-means codebook on (the train split is "
            "empty); point data.train_split at a split with events"
        )
    distinct = torch.unique(x, dim=0).shape[0]
    if distinct < k:
        raise ValueError(
            f"objective.codebook_size={k}: only {distinct} distinct training points to fit it on; lower "
            "objective.codebook_size or raise data.difficulty_events"
        )
    gen = torch.Generator().manual_seed(seed)
    centres = torch.unique(x[torch.randperm(m, generator=gen)], dim=0)
    centres = centres[torch.randperm(centres.shape[0], generator=gen)[:k]].clone()
    for _ in range(iters):
        dist = torch.cdist(x, centres)  # [m, K]
        best, tok = dist.min(-1)
        sums = torch.zeros_like(centres).index_add_(0, tok, x)
        counts = torch.bincount(tok, minlength=k).to(x.dtype)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp_min(1)[:, None])
        if empty.any():  # re-seed with the points farthest from their centre
            far = best.topk(int(empty.sum())).indices
            centres[empty] = x[far]
    return centres


def sample_points(features: list[np.ndarray], limit: int, seed: int = 0) -> torch.Tensor:
    """At most `limit` rows of the concatenated per-event features, drawn without replacement."""
    allf = np.concatenate(features) if features else np.zeros((0, 4), np.float32)
    if allf.shape[0] > limit:
        allf = allf[np.random.default_rng(seed).choice(allf.shape[0], limit, replace=False)]
    return torch.from_numpy(np.ascontiguousarray(allf, dtype=np.float32))


def perplexity(tokens: torch.Tensor, k: int) -> float:
    """exp(entropy) of the token usage: the effective number of codes used (1: one code, K: uniform)."""
    p = torch.bincount(tokens.reshape(-1), minlength=k).double()
    p = p / p.sum().clamp_min(1)
    return float(torch.exp(-(p * p.clamp_min(1e-300).log()).sum()))
