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
    """benchmarks/bench_prepare.py's peak covers the forked writer too (the 4 GiB target is for both)."""
    import importlib.util
    import os
    import time
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "bench_prepare.py"
    spec = importlib.util.spec_from_file_location("bench_prepare", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    alone = bench._rss_bytes(os.getpid())
    memory = bench.TreeMemory(os.getpid(), every_s=0.02)

    def hold():
        block = bytearray(300 * 2**20)  # touched, so resident in the child only
        time.sleep(0.5)
        del block

    with beside(hold, "holding memory", fork=True):
        pass
    assert memory.stop() > alone + 250 * 2**20
