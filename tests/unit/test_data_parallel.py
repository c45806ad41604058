"""Pieces of MPI data preparation that need no MPI job: the shard plan and its split between ranks,
statistics that do not depend on how events are split, and the one-line errors before MPI starts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from scaling.data.__main__ import main
from scaling.data.parallel import LAUNCHER_VARIABLES, assign_shards, open_world
from scaling.data.shards import plan_shards
from scaling.data.stats import StatsAccumulator
from tests.unit.conftest import make_tpc_points


def test_plan_shards_covers_every_event_once_in_manifest_order() -> None:
    tasks = plan_shards({"train": 10, "val": 3}, 4)
    assert [(t.split, t.index, t.first_event, t.n_events) for t in tasks] == [
        ("train", 0, 0, 4), ("train", 1, 4, 4), ("train", 2, 8, 2), ("val", 0, 0, 3),
    ]  # fmt: skip
    assert tasks[2].file == "train/shard-00002.h5"
    with pytest.raises(ValueError, match="shard_events must be >= 1"):
        plan_shards({"train": 1}, 0)


@pytest.mark.parametrize(("n_shards", "n_ranks"), [(1, 1), (7, 2), (8, 3), (5, 5), (100, 7)])
def test_assign_shards_gives_contiguous_balanced_blocks(n_shards: int, n_ranks: int) -> None:
    blocks = [assign_shards(n_shards, n_ranks, r) for r in range(n_ranks)]
    assert [i for b in blocks for i in b] == list(range(n_shards))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert all(len(a) >= len(b) for a, b in zip(blocks, blocks[1:], strict=False))


def test_more_ranks_than_shards_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"3 ranks for 2 shards; start at most 2 ranks \(mpirun -np 2\)"):
        assign_shards(2, 3, 0)


def test_statistics_do_not_depend_on_how_events_are_split() -> None:
    rng = np.random.default_rng(4)
    events = [make_tpc_points(rng, int(n)) for n in rng.integers(50, 400, 40)]
    one = StatsAccumulator(sample_points=1000)  # far fewer than the points: the sample is pruned
    for points in events:
        one.add(points)
    parts = [StatsAccumulator(sample_points=1000) for _ in range(3)]
    for i in reversed(range(len(events))):  # other order, three accumulators, merged in another order
        parts[i % 3].add(events[i], event=i)
    merged = StatsAccumulator(sample_points=1000)
    for part in (parts[2], parts[0], parts[1]):
        part.compact()
        merged.merge(part)
    assert merged.finish() == one.finish()  # exactly, not approximately: the manifests are byte-compared


def test_merge_refuses_a_different_sample() -> None:
    with pytest.raises(ValueError, match="sample_points and seed must match"):
        StatsAccumulator(sample_points=10).merge(StatsAccumulator(sample_points=20))


def test_mpi_flag_without_a_launcher_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert main(["simulate", "--out", str(tmp_path / "d"), "--events", "4", "--mpi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not started by an MPI launcher" in err and "mpirun -np N" in err
    assert not (tmp_path / "d").exists()


def test_missing_mpi4py_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # what `import mpi4py` meets when it is not installed
    with pytest.raises(ValueError, match=r"--mpi needs mpi4py .*pip install -e '\.\[mpi\]'"):
        open_world({"OMPI_COMM_WORLD_SIZE": "2"})
