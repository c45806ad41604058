"""The event schema: one definition of what a spacepoint and a track carry, shared by every writer and reader.

A dataset is a folder with `manifest.json` and `<split>/shard-NNNNN.h5`. A shard stores ragged columns
concatenated over its events plus offsets arrays (events + 1 entries):

    point columns  (n_points total)  points float32 (n, 4) = E, x, y, z [cm]; track_id int64;
                                     pid int8; noise uint8
    point_offsets  (events + 1)      int64: event e owns points[point_offsets[e]:point_offsets[e+1]]
    track columns  (n_tracks total)  momentum float32 (t, 3) [GeV/c]; vertex float32 (t, 3) [cm]; pdg int32;
                                     charge int8   -- optional (TPCpp-10M does not publish them)
    track_offsets  (events + 1)      int64, present with the track columns

`track_id` of a point is the event-local index of its track in the track columns when those exist (so
`momentum[track_offsets[e] + track_id]`), otherwise an opaque per-event identifier; −1 means no track.
PID classes follow the TPCpp-10M convention: 0 other, 1 pion, 2 kaon, 3 proton, 4 electron. `noise` marks
spacepoints of particles with momentum below 60 MeV/c.

The manifest's `stats` block is written once at dataset creation and is what the model reads (never
hard-coded ranges): see `STATS_KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1

# One split vocabulary (README 'Datasets'): the simulator, the TPCpp-10M importer, the trainer's and the
# downstream defaults and the sweeps all use these names. `pretrain` is unlabelled (TPCpp-10M's ~10M
# pretraining events), the other three are labelled (TPCpp-10M's 70k / 13k / 7k events).
PRETRAIN_SPLIT, TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT = "pretrain", "train", "val", "test"
SPLIT_NAMES: tuple[str, ...] = (PRETRAIN_SPLIT, TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT)
MANIFEST_NAME = "manifest.json"
SHARD_PATTERN = "shard-{index:05d}.h5"

PID_NAMES: tuple[str, ...] = ("other", "pion", "kaon", "proton", "electron")
N_PID_CLASSES = len(PID_NAMES)
NOISE_MOMENTUM_GEV = 0.060  # spacepoints of particles below 60 MeV/c are the noise class

POINT_COLUMNS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "points": (np.dtype(np.float32), (4,)),
    "track_id": (np.dtype(np.int64), ()),
    "pid": (np.dtype(np.int8), ()),
    "noise": (np.dtype(np.uint8), ()),
}
TRACK_COLUMNS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "momentum": (np.dtype(np.float32), (3,)),
    "vertex": (np.dtype(np.float32), (3,)),
    "pdg": (np.dtype(np.int32), ()),
    "charge": (np.dtype(np.int8), ()),
}

# Keys of manifest["stats"] (all plain JSON numbers / lists):
#   energy_mean, energy_std          standardisation of E over all training spacepoints
#   r_min, r_max                     radial range [cm] for min-max normalisation
#   z_min, z_max                     longitudinal range [cm]
#   eta_min, eta_max                 pseudorapidity range used for normalisation (paper: -2, 2)
#   phi_min, phi_max                 azimuth range (-pi, pi)
#   r_edges                          7 edges [cm]: 6 radial bins, two per TPC module
#   eta_edges, phi_edges             9 edges each: 8 frequency-balanced bins (quantiles of training points)
#   points_per_event                 {"min", "median", "max", "mean"}
STATS_KEYS: tuple[str, ...] = (
    "energy_mean",
    "energy_std",
    "r_min",
    "r_max",
    "z_min",
    "z_max",
    "eta_min",
    "eta_max",
    "phi_min",
    "phi_max",
    "r_edges",
    "eta_edges",
    "phi_edges",
    "points_per_event",
)


def offsets_from_counts(counts: npt.ArrayLike) -> np.ndarray:
    """(len + 1,) int64 offsets [0, c0, c0 + c1, ...] of ragged rows: row e is [offsets[e], offsets[e+1])."""
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


def pid_in_range(pid: np.ndarray) -> bool:
    """Whether every PID label is a class 0..N_PID_CLASSES-1 (an empty column is)."""
    return not pid.size or (int(pid.min()) >= 0 and int(pid.max()) < N_PID_CLASSES)


PID_RANGE_ERROR = f"pid outside 0..{N_PID_CLASSES - 1}"


@dataclass(kw_only=True)
class TrackTable:
    """Per-track truth of one event (only where the source knows it)."""

    momentum: np.ndarray  # (t, 3) float32, GeV/c
    vertex: np.ndarray  # (t, 3) float32, cm
    pdg: np.ndarray  # (t,) int32
    charge: np.ndarray  # (t,) int8

    def __len__(self) -> int:
        return int(self.pdg.shape[0])


@dataclass(kw_only=True)
class Event:
    """One collision's spacepoints (and track truth where known)."""

    points: np.ndarray  # (n, 4) float32: E, x, y, z [cm]
    track_id: np.ndarray  # (n,) int64, -1 = no track
    pid: np.ndarray  # (n,) int8 in 0..4
    noise: np.ndarray  # (n,) uint8 in {0, 1}
    tracks: TrackTable | None = None
    event_id: int = -1  # global index within its split (set by readers)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    def validate(self, where: str = "event") -> None:
        """Raise `ValueError` naming `where` if columns disagree in length/dtype or hold NaN/inf."""
        n = self.points.shape[0]
        if self.points.ndim != 2 or self.points.shape[1] != 4:
            raise ValueError(f"{where}: points must have shape (n, 4), got {self.points.shape}")
        for name in ("track_id", "pid", "noise"):
            col = getattr(self, name)
            if col.shape != (n,):
                raise ValueError(f"{where}: column {name} has shape {col.shape}, expected ({n},)")
        if not np.isfinite(self.points).all():
            bad = int(np.flatnonzero(~np.isfinite(self.points).all(axis=1))[0])
            raise ValueError(
                f"{where}: non-finite coordinate at spacepoint {bad}; "
                "drop the event or pass --skip-bad-events"
            )
        if n and not pid_in_range(self.pid):
            raise ValueError(f"{where}: {PID_RANGE_ERROR}")
