"""MPI data preparation: `mpirun -np 2 ... simulate --mpi` against one process, same arguments, same run.

    .venv/bin/python benchmarks/bench_data_mpi.py                 # 2000 paper-profile events, 3 rounds
    .venv/bin/python benchmarks/bench_data_mpi.py --events 4000 --ranks 2 --rounds 5

Goal from the issue: >= 1.6x faster with 2 ranks on a 2-core machine, byte-identical output (every shard and
the manifest). Rounds alternate one process and N ranks, so load from other work falls on both alike; the
speed-up is the ratio of the medians of wall time (process start and Python imports included). A second
figure divides CPU times of the busiest process (what dedicated cores would take), for machines shared with
other work.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def prepare(out: Path, args: argparse.Namespace, ranks: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the busiest process): one process, or `ranks` MPI ranks."""
    cmd = [sys.executable, "-m", "scaling.data", "simulate", "--out", str(out), "--events", str(args.events),
           "--seed", "11", "--shard-events", str(args.shard_events)]  # fmt: skip
    cpu_file = out.with_name(out.name + ".cpu")
    # each process reports its own CPU time (user + sys) into cpu_file.<rank>
    timed = ["/usr/bin/time", "-f", "%U %S", "-o"]
    if ranks:
        rank_file = shlex.quote(str(cpu_file)) + ".$OMPI_COMM_WORLD_RANK"
        inner = f"{shlex.join(timed)} {rank_file} {shlex.join([*cmd, '--mpi'])}"
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), "bash", "-c", inner]
    else:
        cmd = [*timed, f"{cpu_file}.0", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    cpu = max(sum(map(float, p.read_text().split()[-2:])) for p in out.parent.glob(cpu_file.name + ".*"))
    return wall, cpu


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
    one_s, many_s, one_cpu, many_cpu = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for kind, ranks, walls, cpus in (
                ("one", 0, one_s, one_cpu),
                ("many", args.ranks, many_s, many_cpu),
            ):
                wall, cpu = prepare(Path(tmp, f"{kind}{i}"), args, ranks)
                walls.append(wall)
                cpus.append(cpu)
            print(f"round {i + 1}/{args.rounds}: 1 process {one_s[-1]:.2f} s (CPU {one_cpu[-1]:.2f} s), "
                  f"{args.ranks} ranks {many_s[-1]:.2f} s (busiest rank's CPU {many_cpu[-1]:.2f} s)",
                  flush=True)  # fmt: skip
        reference = tree(Path(tmp, "one0"))
        same = all(tree(Path(tmp, f"{kind}{i}")) == reference
                   for i in range(args.rounds) for kind in ("one", "many"))  # fmt: skip
    one, many = statistics.median(one_s), statistics.median(many_s)
    print(f"simulate {args.events} events, {len(reference) - 1} shards, {os.cpu_count()} cores: "
          f"1 process {one:.2f} s, {args.ranks} ranks {many:.2f} s (medians): speed-up {one / many:.2f}x; "
          f"output byte-identical: {same}")  # fmt: skip
    # On a machine shared with other work the wall times measure the share the scheduler gives (with
    # autogroup, one share per session however many processes it runs); the busiest process's CPU time is
    # what the run would take on dedicated cores (a rank waiting in MPI busy-polls, so it counts the wait).
    cpu_one, cpu_many = statistics.median(one_cpu), statistics.median(many_cpu)
    print(f"on dedicated cores (CPU time of the busiest process): 1 process {cpu_one:.2f} s, {args.ranks} "
          f"ranks {cpu_many:.2f} s: speed-up {cpu_one / cpu_many:.2f}x; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
