"""Per-point truth the probes predict, from an event's labels and (where known) its track table.

Regression targets (NaN where a point has none):
    log_pt                 ln pT [GeV/c] of the point's particle                     (needs track momenta)
    eta                    pseudorapidity of the point's particle                     (needs track momenta)
    charge_sign            sign of the particle's charge, ±1                          (needs track charges)
    next_hit_distance_cm   3-D distance to the next hit of the same track             (needs track ids)
    next_hit_rdphi_dr      r·Δφ / Δr to that hit: bending, hence charge/pT            (needs track ids)
    next_hit_dz_dr         Δz / Δr to that hit: dip, hence η                          (needs track ids)
Classification targets: pid (0 other, 1 pion, 2 kaon, 3 proton, 4 electron) and noise (0/1).

"Next hit" is the hit of the same track with the smallest radius above r + NEXT_HIT_MIN_DR_CM (the outward
direction, as the k-NNN target looks to larger r); the margin keeps Δr away from 0 for hits on one layer.
"""

from __future__ import annotations

import numpy as np

from analysis.downstream.features import truth_kinematics
from scaling.data.schema import Event

NEXT_HIT_MIN_DR_CM = 0.5
REGRESSION_TARGETS = {
    "log_pt": "ln pT [GeV/c]",
    "eta": "η",
    "charge_sign": "±1",
    "next_hit_distance_cm": "cm",
    "next_hit_rdphi_dr": "r·Δφ/Δr",
    "next_hit_dz_dr": "Δz/Δr",
}
CLASSIFICATION_TARGETS = {"pid": "PID class", "noise": "noise flag"}
NEEDS_MOMENTUM = ("log_pt", "eta")
NEEDS_CHARGE = ("charge_sign",)


def next_hit_targets(points: np.ndarray, track_id: np.ndarray) -> dict[str, np.ndarray]:
    """Distance and direction (r·Δφ/Δr, Δz/Δr) from each point to the next hit of its track (NaN if none)."""
    x, y, z = (np.asarray(points[:, i], np.float64) for i in (1, 2, 3))
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    n = len(r)
    out = {k: np.full(n, np.nan) for k in ("next_hit_distance_cm", "next_hit_rdphi_dr", "next_hit_dz_dr")}
    if n == 0:  # an event without spacepoints is valid (the trainer skips nothing for it either)
        return out
    tid = np.asarray(track_id)
    order = np.lexsort((r, tid))  # by track, then radius
    tid_s, r_s = tid[order], r[order]
    starts = np.flatnonzero(np.r_[True, tid_s[1:] != tid_s[:-1]])
    ends = np.r_[starts[1:], n]
    for lo, hi in zip(starts, ends, strict=True):
        if tid_s[lo] < 0 or hi - lo < 2:
            continue
        rows = order[lo:hi]  # this track's points, by radius
        nxt = np.searchsorted(r_s[lo:hi], r_s[lo:hi] + NEXT_HIT_MIN_DR_CM, side="left")  # (m,)
        has = nxt < hi - lo
        src, dst = rows[has], rows[nxt[has]]
        dr = r[dst] - r[src]
        dphi = np.angle(np.exp(1j * (phi[dst] - phi[src])))  # wrapped to (-pi, pi]
        out["next_hit_distance_cm"][src] = np.sqrt((x[dst] - x[src]) ** 2 + (y[dst] - y[src]) ** 2
                                                   + (z[dst] - z[src]) ** 2)  # fmt: skip
        out["next_hit_rdphi_dr"][src] = r[src] * dphi / dr
        out["next_hit_dz_dr"][src] = (z[dst] - z[src]) / dr
    return out


def event_targets(event: Event) -> dict[str, np.ndarray]:
    """Every target this event's truth supports, each (n,) in original point order."""
    n = event.n_points
    out: dict[str, np.ndarray] = {
        "pid": np.asarray(event.pid, np.int64),
        "noise": np.asarray(event.noise, np.int64),
    }
    tid = np.asarray(event.track_id, np.int64)
    out.update(next_hit_targets(np.asarray(event.points), tid))
    kin = truth_kinematics(event)
    if kin is not None:
        pt, eta = kin
        out["log_pt"] = np.log(np.maximum(pt.astype(np.float64), 1e-6))
        out["eta"] = eta.astype(np.float64)
    charge = getattr(event.tracks, "charge", None) if event.tracks is not None else None
    if charge is not None and len(charge):
        ok = (tid >= 0) & (tid < len(charge))
        sign = np.sign(np.asarray(charge, np.float64))[np.clip(tid, 0, len(charge) - 1)]
        out["charge_sign"] = np.where(ok & (sign != 0), sign, np.nan)
    for key, value in out.items():
        if value.shape != (n,):
            raise ValueError(f"event {event.event_id}: target {key} has shape {value.shape}, expected ({n},)")
    return out
