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


class VQTokenizer(torch.nn.Module):
    """A small VQ-VAE tokeniser (van den Oord et al. 2017; MPM's best target): token features -> MLP
    encoder -> nearest of K code vectors (straight-through) -> MLP decoder; loss = reconstruction + codebook +
    0.25 x commitment. The codebook starts from K-means of the initial encodings and unused codes are
    re-seeded from the encodings every 50 steps, so most codes stay in use."""

    def __init__(self, k: int, code_dim: int = 8, hidden: int = 64) -> None:
        super().__init__()
        d = N_TOKEN_FEATURES
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, code_dim)
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(code_dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, d)
        )
        self.codebook = torch.nn.Parameter(torch.zeros(k, code_dim))

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """[T] int64 code of each row of token features x [T, 5]."""
        with torch.no_grad():
            return assign_tokens(self.encoder.to(x.device)(x.float()), self.codebook)

    def fit(self, x: torch.Tensor, *, steps: int = 400, batch: int = 4096, seed: int = 0) -> VQTokenizer:
        """Train on token features x [m, 5] (m >= K distinct rows, else the K-means ValueError)."""
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.codebook.copy_(fit_kmeans(self.encoder(x), self.codebook.shape[0], iters=10, seed=seed))
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        for step in range(steps):
            xb = x[torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=gen)]
            z = self.encoder(xb)
            q = self.codebook[assign_tokens(z.detach(), self.codebook)]
            recon = self.decoder(z + (q - z).detach())  # straight-through
            loss = (recon - xb).square().mean() + (q - z.detach()).square().mean()
            loss = loss + 0.25 * (z - q.detach()).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 49:
                self._reseed_unused(x, gen)
        return self

    @torch.no_grad()
    def _reseed_unused(self, x: torch.Tensor, gen: torch.Generator) -> None:
        z = self.encoder(x)
        used = torch.bincount(assign_tokens(z, self.codebook), minlength=self.codebook.shape[0]) > 0
        n_dead = int((~used).sum())
        if n_dead:
            self.codebook[~used] = z[torch.randint(0, z.shape[0], (n_dead,), generator=gen)]

    def to_json(self) -> dict[str, list]:
        return {name: value.tolist() for name, value in self.state_dict().items()}

    @classmethod
    def from_json(cls, state: dict[str, list]) -> VQTokenizer:
        tensors = {name: torch.tensor(value, dtype=torch.float32) for name, value in state.items()}
        k, code_dim = tensors["codebook"].shape
        model = cls(k, code_dim, hidden=tensors["encoder.0.weight"].shape[0])
        model.load_state_dict(tensors)
        return model.eval()
