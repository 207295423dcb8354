"""``data/beside.py``: work in a forked process beside the body, its failures raised here."""

from __future__ import annotations

import pytest

from behaviorlm_plugin.data.beside import BesideError, beside, can_fork

forks = pytest.mark.skipif(not can_fork(), reason="fork is only used on Linux")


@pytest.mark.parametrize("fork", [pytest.param(True, marks=forks), False])
def test_both_pieces_of_work_are_done(tmp_path, fork):
    with beside(lambda: (tmp_path / "child").write_text("c"), "the child's file", fork=fork):
        (tmp_path / "parent").write_text("p")
    assert (tmp_path / "child").read_text() == "c" and (tmp_path / "parent").read_text() == "p"


@forks
def test_a_failure_in_the_second_process_is_raised_here_with_its_reason():
    def fail():
        raise OSError("No space left on device")

    reason = r"(?s)writing x \(in a second process\) failed: .*No space left on device"
    with pytest.raises(BesideError, match=reason), beside(fail, "writing x", fork=True):
        pass


@forks
def test_a_failure_here_stops_the_second_process(tmp_path):
    def slow():
        import time

        time.sleep(30)
        (tmp_path / "late").write_text("should never appear")

    with pytest.raises(ValueError, match="body failed"), beside(slow, "sleeping", fork=True):
        raise ValueError("body failed")
    assert not (tmp_path / "late").exists()


@forks
def test_the_scale_bench_counts_the_second_process_memory():
    """benchmarks/bench_prepare.py's peak covers the forked writer too (the 4 GiB target is for both).

    No clock: the child allocates only when told, and holds its block until the reading is taken. Both
    readings are taken while the child exists (summed PSS), so what this process holds, or shares with others,
    is in both and cancels out: the difference is the child's block."""
    import importlib.util
    import os
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "bench_prepare.py"
    spec = importlib.util.spec_from_file_location("bench_prepare", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    size = 300 * 2**20
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    mine = {to_child_r, to_child_w, to_parent_r, to_parent_w}  # this process's ends still open

    def hold():
        os.close(to_child_w)  # so that a parent gone leaves the reads below at end of file, not blocked
        assert os.read(to_child_r, 1) == b"g"
        block = b"\x01" * size  # written, so resident: in the child only
        os.write(to_parent_w, b"r")
        os.read(to_child_r, 1)  # held until the reading is taken
        del block

    memory = bench.TreeMemory(os.getpid(), every_s=None)
    try:
        with beside(hold, "holding memory", fork=True):
            os.close(to_parent_w)  # the child's copy only now: if it dies, the read below ends, not blocks
            mine.discard(to_parent_w)
            idle = memory.sample()
            os.write(to_child_w, b"g")
            assert os.read(to_parent_r, 1) == b"r"
            holding = memory.sample()
            os.write(to_child_w, b"e")
    finally:
        for fd in mine:
            os.close(fd)
    assert holding - idle > 250 * 2**20
    assert memory.stop() >= holding
