"""The driver's tree counts the study's own work, never the work done inside trials."""

from __future__ import annotations

import subprocess
import sys
import time

from wattwise.tuning._tree import StudyTree, subtree_cpu_s

WORKER = """
import sys, time
for line in sys.stdin:
    end = time.process_time() + float(line)
    while time.process_time() < end:
        pass
    print("done", flush=True)
"""


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_worker_counts_for_the_driver_only_outside_its_trials() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        stdin, stdout = child.stdin, child.stdout

        def work(seconds: float) -> None:
            stdin.write(f"{seconds}\n")
            stdin.flush()
            assert stdout.readline().strip() == "done"

        try:
            tree = StudyTree()
            tree.add_worker(child.pid)
            start = tree.cpu_s()
            work(0.3)  # start-up, idle work: the study's overhead
            outside = tree.cpu_s()
            assert outside - start >= 0.25
            tree.worker_trial_started(child.pid, subtree_cpu_s(child.pid))
            work(0.4)  # a trial: its own run counts it
            during = tree.cpu_s()
            assert during - outside < 0.1
            tree.worker_trial_ended(child.pid, subtree_cpu_s(child.pid))
            work(0.3)
            after = tree.cpu_s()
            assert 0.25 <= after - during < 0.45
        finally:
            child.kill()


def test_inline_trials_freeze_the_driver_and_are_left_out_afterwards() -> None:
    tree = StudyTree()
    start = tree.cpu_s()
    tree.inline_trial_started()
    frozen = tree.cpu_s()  # ``start`` plus the CPU time of reading it (a clock tick, maybe)
    assert 0.0 <= frozen - start < 0.05
    burn(0.3)
    assert tree.cpu_s() == frozen  # frozen while the trial runs
    assert tree.rss_bytes() == 0  # the trial's run holds the memory
    tree.inline_trial_ended()
    burn(0.2)
    after = tree.cpu_s()
    assert 0.15 <= after - start < 0.3
    assert tree.rss_bytes() > 0
