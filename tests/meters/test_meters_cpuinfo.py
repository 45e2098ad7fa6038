from __future__ import annotations

import os
from pathlib import Path

from meters_support import EPYC_VM, write_cpuinfo

from wattwise.meters import read_cpuinfo
from wattwise.meters._cpuinfo import parse_cpuinfo


def test_epyc_vm_is_parsed(tmp_path: Path) -> None:
    info = read_cpuinfo(write_cpuinfo(tmp_path, **EPYC_VM))
    assert (info.vendor, info.model_name, info.family, info.model) == (
        "AuthenticAMD",
        "AMD EPYC",
        25,
        17,
    )
    assert info.logical_cpus == 2
    assert info.sockets == 1
    assert info.is_virtual


def test_two_socket_topology(tmp_path: Path) -> None:
    path = write_cpuinfo(
        tmp_path,
        vendor="GenuineIntel",
        model_name="Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
        family=6,
        model=85,
        stepping=4,
        n=16,
        sockets=2,
        cores=4,
        flags="fpu tsc ht",
    )
    info = read_cpuinfo(path)
    assert info.logical_cpus == 16
    assert info.sockets == 2
    assert info.cores_per_socket == 4
    assert info.siblings == 8
    assert info.threads_per_core == 2
    assert not info.is_virtual
    assert info.stepping == 4


def test_arm_cpuinfo_gives_implementer_and_part() -> None:
    text = (
        "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
        "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
        "processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n\n"
    )
    info = parse_cpuinfo(text)
    assert info.vendor == "ARM"
    assert info.arm_implementer == 0x41
    assert info.arm_part == 0xD0C
    assert info.logical_cpus == 2
    assert "asimd" in info.flags


def test_missing_file_gives_defaults_without_raising(tmp_path: Path) -> None:
    info = read_cpuinfo(tmp_path / "nope")
    assert info.model_name == ""
    assert info.family is None
    assert info.logical_cpus == (os.cpu_count() or 1)


def test_parsed_once_per_path(tmp_path: Path) -> None:
    path = write_cpuinfo(tmp_path, **EPYC_VM)
    first = read_cpuinfo(path)
    path.write_text("processor : 0\nmodel name : changed\n")
    assert read_cpuinfo(path) is first
