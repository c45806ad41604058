"""MPI data preparation: `mpirun -np 2 ... simulate --mpi` against one process, same arguments, same run.

    .venv/bin/python benchmarks/bench_data_mpi.py                 # 2000 paper-profile events, 3 rounds
    .venv/bin/python benchmarks/bench_data_mpi.py --events 4000 --ranks 2 --rounds 5

Goal from the issue: >= 1.6x faster with 2 ranks on a 2-core machine, byte-identical output (every shard and
the manifest). Rounds alternate one process and N ranks, so load from other work falls on both alike; the
speed-up is the ratio of the medians of wall time (process start and Python imports included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def prepare(out: Path, args: argparse.Namespace, ranks: int) -> float:
    cmd = [sys.executable, "-m", "scaling.data", "simulate", "--out", str(out), "--events", str(args.events),
           "--seed", "11", "--shard-events", str(args.shard_events)]  # fmt: skip
    if ranks:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *cmd, "--mpi"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events (paper profile)")
    parser.add_argument("--shard-events", type=int, default=50, help="events per shard")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks of the parallel run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    if shutil.which("mpirun") is None:
        sys.exit("error: mpirun not found; install Open MPI (make setup) to run this benchmark")
    one_s, many_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            one_s.append(prepare(Path(tmp, f"one{i}"), args, 0))
            many_s.append(prepare(Path(tmp, f"many{i}"), args, args.ranks))
            print(f"round {i + 1}/{args.rounds}: 1 process {one_s[-1]:.2f} s, {args.ranks} ranks "
                  f"{many_s[-1]:.2f} s", flush=True)  # fmt: skip
        reference = tree(Path(tmp, "one0"))
        same = all(tree(Path(tmp, f"{kind}{i}")) == reference
                   for i in range(args.rounds) for kind in ("one", "many"))  # fmt: skip
    one, many = statistics.median(one_s), statistics.median(many_s)
    print(f"simulate {args.events} events, {len(reference) - 1} shards, {os.cpu_count()} cores: "
          f"1 process {one:.2f} s, {args.ranks} ranks {many:.2f} s (medians): speed-up {one / many:.2f}x; "
          f"output byte-identical: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
