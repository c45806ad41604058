"""Pure parts of the trainer: config tree, DistEnv, LR schedule, DeepSpeed config (golden), ledger helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scaling.config import ConfigError, to_dict
from scaling.train.__main__ import main
from scaling.train.config import TrainConfig, accumulation_steps, budget_checkpoint_steps, load_train_config
from scaling.train.deepspeed_config import build_deepspeed_config
from scaling.train.dist import DEFAULT_PORT, DistEnv, expand_nodelist, first_host
from scaling.train.ledger import mfu, peak_flops, truncate_metrics
from scaling.train.schedule import apply_lr, group_lrs, lr_factor

TINY = Path(__file__).resolve().parents[2] / "scaling/train/configs/tiny_cpu.yaml"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_tiny_config_loads_and_overrides_apply() -> None:
    cfg = load_train_config(TINY, ["optimizer.lr=1e-3", "deepspeed.zero_stage=3"])
    assert cfg.model.name == "tiny" and cfg.optimizer.lr == 1e-3 and cfg.deepspeed.zero_stage == 3


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("budget.stepz=3", "budget.stepz"),
        ("deepspeed.zero_stage=5", "zero_stage"),
        ("budget.steps=x", "budget.steps"),
    ],
)
def test_bad_keys_name_the_key_and_the_file(override: str, names: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(TINY, [override])
    assert names in str(err.value) and str(TINY) in str(err.value)


def test_cli_config_error_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimizer: {lrr: 1}\n")
    assert main([str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "optimizer.lrr" in err and str(bad) in err and "\n" not in err
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 2 and "optimizer.lrr" in status["reason"]


def test_global_batch_must_factor_into_micro_times_world() -> None:
    cfg = load_train_config(TINY, ["budget.global_batch_events=12", "budget.micro_batch_events=2"])
    assert accumulation_steps(cfg, 2) == 3
    with pytest.raises(ConfigError, match="budget.global_batch_events=12"):
        accumulation_steps(cfg, 4)


def test_budget_checkpoint_steps_round_up() -> None:
    cfg = load_train_config(TINY, ["budget.steps=10", "budget.checkpoint_fractions=[0.25,0.5,1.0]"])
    assert budget_checkpoint_steps(cfg) == {3: 0.25, 5: 0.5, 10: 1.0}


def test_nodelist_expansion() -> None:
    assert expand_nodelist("gpu[01-03,07],login1") == ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]
    assert expand_nodelist("a[8-10]-ib") == ["a8-ib", "a9-ib", "a10-ib"]
    assert first_host("node17") == "node17"
    with pytest.raises(ValueError, match="bad range"):
        expand_nodelist("n[5-2]")


def test_distenv_from_each_launcher() -> None:
    tr = DistEnv.from_environ(
        {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1234"}
    )
    assert (tr.rank, tr.world_size, tr.master_port, tr.launcher) == (1, 4, 1234, "torchrun")
    sl = DistEnv.from_environ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                               "SLURM_JOB_NODELIST": "gpu[12-13]", "SLURM_JOB_ID": "77"})  # fmt: skip
    assert (sl.rank, sl.world_size, sl.local_rank, sl.master_addr, sl.launcher) == (5, 8, 1, "gpu12", "slurm")
    mpi = DistEnv.from_environ(
        {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}
    )
    assert (mpi.rank, mpi.world_size, mpi.launcher) == (2, 3, "mpi")
    jobs = [{"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_MCA_ess_base_jobid": j}
            for j in ("1171652609", "1171652610")]  # fmt: skip
    assert len({DistEnv.from_environ(j).master_port for j in jobs}) == 2  # two mpiruns on one node
    assert DistEnv.from_environ({}).world_size == 1
    assert DistEnv.from_environ({"MASTER_PORT": "4321"}).master_port == 4321
    env: dict[str, str] = {}
    sl.export(env)
    assert env["RANK"] == "5" and env["MASTER_ADDR"] == "gpu12" and env["WORLD_SIZE"] == "8"


def test_single_process_port_is_free_even_when_the_default_port_is_taken() -> None:
    """Two single-process trainings on one machine both took 29500; the second died with EADDRINUSE."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            held.bind(("127.0.0.1", DEFAULT_PORT))
        except OSError:
            pass  # something else holds it already: the same situation
        held.listen()
        port = DistEnv.from_environ({}).master_port
        assert port != DEFAULT_PORT
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", port))  # raises if the chosen port were in use


def test_lr_schedule_cases() -> None:
    kw = {"warmup_steps": 10, "total_steps": 110}
    assert lr_factor(0, **kw) == pytest.approx(0.1)  # 1) warm-up never starts at 0
    assert lr_factor(9, **kw) == pytest.approx(1.0)
    assert lr_factor(10, **kw) == pytest.approx(1.0)  # 2) cosine from the peak
    assert lr_factor(60, **kw) == pytest.approx(0.5)
    assert lr_factor(110, **kw, min_ratio=0.1) == pytest.approx(0.1)  # 3) floor after the budget
    values = [lr_factor(s, **kw) for s in range(10, 110)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_wsd_and_constant_schedules() -> None:
    kw = {"warmup_steps": 10, "total_steps": 110, "name": "wsd", "decay_fraction": 0.2}
    assert lr_factor(0, **kw) == pytest.approx(0.1)  # the same warm-up
    assert lr_factor(10, **kw) == lr_factor(87, **kw) == 1.0  # stable until the cooldown's first step, 88
    assert lr_factor(88, **kw) == pytest.approx(1.0)
    assert lr_factor(93, **kw) == pytest.approx(1 - math.sqrt(5 / 22))  # 1-sqrt cooldown (Hagele et al.)
    assert lr_factor(109, **kw, min_ratio=0.1) == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(21 / 22)))
    assert lr_factor(110, **kw, min_ratio=0.1) == pytest.approx(0.1)
    values = [lr_factor(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    # a stable-phase step has the peak LR whatever the total: its checkpoint can be cooled down to any budget
    assert lr_factor(50, **{**kw, "total_steps": 1000}) == lr_factor(50, **kw) == 1.0
    assert lr_factor(500, warmup_steps=10, total_steps=110, name="constant") == 1.0
    with pytest.raises(ValueError, match="schedule.name='linear'"):
        lr_factor(50, warmup_steps=10, total_steps=110, name="linear")


def test_group_multipliers_are_kept() -> None:
    lrs = group_lrs(2e-4, 0.5, [1.0, 0.125, 4.0])
    assert lrs == pytest.approx([1e-4, 1.25e-5, 4e-4])
    groups = [{"lr": 0.0}, {"lr": 0.0}, {"lr": 0.0}]
    apply_lr(groups, lrs)
    assert [g["lr"] for g in groups] == lrs
    with pytest.raises(ValueError):
        apply_lr(groups, lrs[:2])


@pytest.mark.parametrize("stage", [0, 3])
def test_deepspeed_config_golden(stage: int) -> None:
    cfg = load_train_config(TINY, [f"deepspeed.zero_stage={stage}", "budget.global_batch_events=8"])
    got = build_deepspeed_config(cfg, world_size=2, on_gpu=stage == 3)
    path = GOLDEN / f"train_deepspeed_zero{stage}.json"
    assert got == json.loads(path.read_text())
    assert (
        got["train_batch_size"]
        == got["train_micro_batch_size_per_gpu"] * got["gradient_accumulation_steps"] * 2
    )


def test_peak_and_mfu() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert peak_flops("cpu") is None and mfu(1e12, None, 1) is None
    assert mfu(989e12 / 2, 989e12, 2) == pytest.approx(0.25)


def test_truncate_metrics_drops_later_and_torn_rows(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"kind": "train", "step": s, "loss": 1.0} for s in range(1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "tr')
    truncate_metrics(path, 3)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3]


def test_resolved_config_round_trips() -> None:
    from scaling.config import from_dict

    cfg = load_train_config(TINY)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    assert math.isfinite(cfg.optimizer.lr)


def test_progress_line_shows_step_loss_throughput_eta() -> None:
    from scaling.train.progress import progress_line

    line = progress_line(25, 100, 0.1234, 5000.0, 180.0)
    assert line == "step 25/100  loss 0.1234  5,000 tok/s  mfu -  eta 3m00s"
    line = progress_line(25, 100, 0.1234, 5000.0, 3900.0, mfu=0.312, val_loss_ratio=1.0123)
    assert line == "step 25/100  loss 0.1234  val_loss_ratio 1.012  5,000 tok/s  mfu 31.2%  eta 1h05m"
    assert progress_line(1, 100, 0.5, 1.0, None).endswith("eta -")
