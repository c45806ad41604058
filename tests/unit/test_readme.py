"""The README's commands and paths match the code: sweep files and run folders exist under the names it gives,
its dataset commands parse, and the GPU install line does not pin the CPU torch."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from scaling.data.__main__ import build_parser
from scaling.data.cli import parse_splits

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _sweep_names() -> set[str]:
    return {yaml.safe_load(p.read_text())["name"] for p in (REPO / "sweeps").glob("*.yaml")}


def test_sweep_files_and_run_folders_exist_under_the_names_given() -> None:
    for path in set(re.findall(r"sweeps/[\w.-]+\.yaml", README)):
        assert (REPO / path).is_file(), path
    runs = {m for m in re.findall(r"runs/([\w.-]+)/", README)}
    assert runs and runs <= _sweep_names(), (
        runs - _sweep_names()
    )  # e.g. runs/model-scaling/ for model_scaling


def test_dataset_commands_parse_and_use_the_split_vocabulary() -> None:
    commands = re.findall(
        r"^python -m scaling\.data (simulate .*?|import-tpcpp .*?)(?:\s+#.*)?$", README, re.M
    )
    assert any(c.startswith("simulate") for c in commands) and any("import-tpcpp" in c for c in commands)
    outs = set()
    for command in commands:
        args = build_parser().parse_args(shlex.split(command))
        outs.add(args.out)
        if args.command == "simulate":
            parse_splits(args.splits, args.events)  # raises on a name outside pretrain/train/val/test
    assert {"data/tpcpp10m", "data/sim-labelled"} <= outs  # the datasets the paper sweeps read


def test_gpu_install_does_not_pin_the_cpu_torch() -> None:
    for line in README.splitlines():
        if "[gpu]" in line and line.lstrip().startswith("pip install"):
            assert "constraints.txt" not in line, line
