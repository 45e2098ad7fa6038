from __future__ import annotations

import os
import time

import wattwise
from wattwise.meters import NvmlMeter
from wattwise.store import open_store
from wattwise.testing.fake_nvml import FakeGpu, FakeNvml, FakeProcessInfo
from wattwise.tracking._attribution import (
    IDLE,
    OTHERS,
    SHARED,
    WHOLE_FOREIGN,
    WHOLE_UNLISTED,
    gpu_share,
)

GIB = 1024**3


def test_gpu_share_rules() -> None:
    me, other_live = os.getpid(), 1  # pid 1 exists in every pid namespace
    assert gpu_share(None, {me}) == (1.0, WHOLE_UNLISTED)
    assert gpu_share({}, {me}) == (0.0, IDLE)
    assert gpu_share({other_live: GIB}, {me}) == (0.0, OTHERS)
    assert gpu_share({me: GIB, other_live: 3 * GIB}, {me}) == (0.25, SHARED)
    assert gpu_share({me: 0, other_live: 0}, {me}) == (0.5, SHARED)
    # Only pids this namespace cannot see: we are in a container; count the whole board.
    assert gpu_share({2**22 + 7: GIB}, {me}) == (1.0, WHOLE_FOREIGN)


def test_two_runs_sharing_a_gpu_split_its_energy_by_memory() -> None:
    me = os.getpid()
    shared = FakeGpu(
        energy_mj=lambda t: int(200_000 * t),  # 200 W
        processes=[FakeProcessInfo(pid=me, usedGpuMemory=GIB),
                   FakeProcessInfo(pid=1, usedGpuMemory=3 * GIB)],
    )  # fmt: skip
    idle = FakeGpu(uuid="GPU-1", energy_mj=lambda t: int(50_000 * t), processes=[])
    nvml = FakeNvml([shared, idle], clock=time.monotonic)
    with wattwise.track("gpu", interval_s=0.05, meters=[NvmlMeter(nvml=nvml)]) as run:
        body_began = time.monotonic()
        time.sleep(0.5)
        body_s = time.monotonic() - body_began
    gpu = next(c for c in run.result.components if c.component == "gpu")
    # machine-wide: both boards; attributed: a quarter of the shared board, none of the idle
    # one. The boards are read as the run starts and as it finishes, so their counters are
    # seen over at least the block's body and at most the run's duration, whatever the load
    # (0.01 J of slack: the fake counters count whole millijoules).
    duration_s = run.result.duration_s
    assert 250 * body_s - 0.01 <= gpu.machine_energy_j <= 250 * duration_s + 0.01
    assert 0.25 * 200 * body_s - 0.01 <= gpu.energy_j <= 0.25 * 200 * duration_s + 0.01
    stored = open_store().get_run(run.id)
    assert stored.record["gpu_attribution"] == {"gpu:0": SHARED, "gpu:1": IDLE}
