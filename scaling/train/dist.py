"""One `DistEnv` value parsed once from the launcher's variables (torchrun, Slurm, Open MPI, or none).

    >>> env = DistEnv.from_environ()          # passed explicitly from then on; no cached globals
    >>> env.export(os.environ)                # RANK/WORLD_SIZE/... set before deepspeed.init_distributed

DeepSpeed's own MPI discovery sets MASTER_ADDR from `hostname -I` (not loopback on some hosts), so the trainer
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT itself from whichever launcher started it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

DEFAULT_PORT = 29500


@dataclass(frozen=True, kw_only=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT
    launcher: str = "single"  # torchrun | slurm | mpi | single

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"distributed: rank {self.rank} outside world size {self.world_size}")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        """torchrun (RANK), then Open MPI (OMPI_COMM_WORLD_RANK), then Slurm (SLURM_PROCID), else single."""
        import os

        env = os.environ if environ is None else environ
        port = int(env.get("MASTER_PORT", DEFAULT_PORT))
        if "RANK" in env and "WORLD_SIZE" in env:
            return cls(rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]),
                       local_rank=int(env.get("LOCAL_RANK", 0)),
                       master_addr=env.get("MASTER_ADDR", "127.0.0.1"), master_port=port,
                       launcher="torchrun")  # fmt: skip
        if "OMPI_COMM_WORLD_RANK" in env:
            # mpirun's job id gives two jobs on one node different ports, as SLURM_JOB_ID does below;
            # across nodes pass the rendezvous host: mpirun -x MASTER_ADDR=<first host> ...
            job = int(env.get("OMPI_MCA_ess_base_jobid", "0") or 0)
            port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else DEFAULT_PORT + job % 10000
            return cls(rank=int(env["OMPI_COMM_WORLD_RANK"]), world_size=int(env["OMPI_COMM_WORLD_SIZE"]),
                       local_rank=int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)),
                       master_addr=env.get("MASTER_ADDR", "127.0.0.1"), master_port=port,
                       launcher="mpi")  # fmt: skip
        if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "127.0.0.1"
            master = env.get("MASTER_ADDR") or first_host(nodelist)
            job = int(env.get("SLURM_JOB_ID", "0") or 0)
            # A per-job port keeps two jobs sharing a node apart (unless MASTER_PORT is given).
            port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else DEFAULT_PORT + job % 10000
            return cls(rank=int(env["SLURM_PROCID"]), world_size=int(env["SLURM_NTASKS"]),
                       local_rank=int(env.get("SLURM_LOCALID", 0)), master_addr=master,
                       master_port=port, launcher="slurm")  # fmt: skip
        # One process rendezvous with itself: MASTER_PORT if given, else a port free now, so two
        # single-process trainings on one machine never both take 29500 (EADDRINUSE in the second).
        port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else free_port()
        return cls(master_port=port)

    def export(self, environ: MutableMapping[str, str]) -> None:
        """Write the torch.distributed variables (what deepspeed.init_distributed reads)."""
        environ.update({"RANK": str(self.rank), "WORLD_SIZE": str(self.world_size),
                        "LOCAL_RANK": str(self.local_rank), "MASTER_ADDR": self.master_addr,
                        "MASTER_PORT": str(self.master_port)})  # fmt: skip


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at this moment (the kernel's pick for port 0)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def expand_nodelist(nodelist: str) -> list[str]:
    """Slurm host list -> host names: "gpu[01-03,07],login1" -> [gpu01, gpu02, gpu03, gpu07, login1].

    Zero padding of a range is kept (width of its lower bound); nested brackets are not Slurm syntax."""
    hosts: list[str] = []
    for prefix, bracket, suffix in re.findall(r"([^,\[]*)(?:\[([^\]]*)\])?([^,\[]*),?", nodelist):
        if not (prefix or bracket or suffix):
            continue
        if not bracket:
            hosts.append(prefix + suffix)
            continue
        for part in bracket.split(","):
            if "-" in part:
                lo, hi = part.split("-", 1)
                if not (lo.isdigit() and hi.isdigit()) or int(hi) < int(lo):
                    raise ValueError(f"SLURM_JOB_NODELIST={nodelist!r}: bad range {part!r}")
                hosts.extend(f"{prefix}{i:0{len(lo)}d}{suffix}" for i in range(int(lo), int(hi) + 1))
            else:
                hosts.append(prefix + part + suffix)
    if not hosts:
        raise ValueError(f"SLURM_JOB_NODELIST={nodelist!r}: no host names")
    return hosts


def first_host(nodelist: str) -> str:
    """The rendezvous host of a Slurm job: the first host of its node list."""
    return expand_nodelist(nodelist)[0]
