"""The benchmark's own pieces (the benchmark itself runs the full-size model: `make bench`, minutes)."""

import subprocess
import sys

from lsta_jax.benchmarks import versus_torch as vt


def test_quick_mode_and_sweep_parsing():
    quick = vt.parse_args(["--quick"])
    assert (quick.frames, quick.infer_batches, quick.frames_sweep, quick.batch_sweep) == (
        4,
        [1, 2],
        [1, 4],
        [1, 2],
    )
    assert quick.repeats <= 2 and quick.scan_unroll == "auto"
    full = vt.parse_args(["--frames-sweep", "1,50", "--scan-unroll", "5"])
    assert (full.frames, full.infer_batches, full.frames_sweep, full.scan_unroll) == (25, [1, 8], [1, 50], 5)


PEAK_CHECK = """
import numpy as np
from lsta_jax.benchmarks import versus_torch as vt
assert vt.release_freed_memory()
with vt.PeakRSS() as peak:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
with vt.PeakRSS() as idle:
    pass
print(peak.rise_mib, idle.rise_mib)
"""


def test_peak_rss_sees_a_transient_allocation_once_freed_memory_is_returned():
    # in a subprocess: the malloc setting is process-wide
    out = subprocess.run([sys.executable, "-c", PEAK_CHECK], capture_output=True, text=True, check=True)
    peak, idle = map(float, out.stdout.split())
    assert peak >= 48 and idle < 16


def test_tables_give_ratios():
    row = {"work": "inference", "batch": 1, "frames": 25, "jax_s": 0.5, "torch_s": 1.0, "ratio": 0.5}
    table = vt.format_table([{**row, "compile_s": 9.0, "jax_compiled_mib": 100.0}])
    assert "| inference | 1 | 25 | 0.500 | 1.000 | 0.50x | 9.0 | 100.0 |" in table
    lever = {
        "lever": "x",
        "batch": 2,
        "frames": 4,
        "before": "a",
        "before_s": 2.0,
        "after": "b",
        "after_s": 0.5,
    }
    assert "| 0.25x |  |  |" in vt.format_levers([lever])
    lever.update(
        before_compile_s=30.0, after_compile_s=6.0, before_compiled_mib=2000.0, after_compiled_mib=900.0
    )
    assert "| 0.25x | 30.0 -> 6.0 | 2000.0 -> 900.0 |" in vt.format_levers([lever])


def test_help():
    out = subprocess.run(
        [sys.executable, "-m", "lsta_jax.benchmarks.versus_torch", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--quick" in out.stdout and "torch" in out.stdout
