"""glibc's huge-page malloc, as the Makefile and the launchers set it: what it changes for XLA's buffers."""

import os
import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTING = "glibc.malloc.hugetlb=1"


def _thp_mode() -> str | None:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    match = re.search(r"\[(\w+)\]", text)
    return match.group(1) if match else None


def _glibc() -> tuple[int, ...] | None:
    name, version = platform.libc_ver()
    return tuple(int(p) for p in version.split(".")[:2]) if name == "glibc" and version else None


def test_makefile_and_launchers_set_the_tunable():
    assert f"export GLIBC_TUNABLES ?= {SETTING}" in (ROOT / "Makefile").read_text()
    for launcher in ("single_host.sh", "local_multiprocess.sh"):
        assert f"GLIBC_TUNABLES=${{GLIBC_TUNABLES-{SETTING}}}" in (ROOT / "launch" / launcher).read_text()


def test_no_entry_point_reexecutes_the_process():
    offenders = [p for p in (ROOT / "lsta_jax").rglob("*.py") if re.search(r"os\.exec[lv]", p.read_text())]
    assert offenders == []


# A large jitted output, created 8 times: its minor page faults with and without the tunable.
PROBE = textwrap.dedent(
    """
    import resource, jax, jax.numpy as jnp
    x = jnp.ones((64 * 2**18,))  # 64 MiB: above glibc's largest mmap threshold, so a fresh mmap per call
    double = jax.jit(lambda v: v * 2)
    double(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
        double(x).block_until_ready()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


@pytest.mark.skipif(
    _thp_mode() != "madvise" or (_glibc() or (0,)) < (2, 35),
    reason="the tunable changes nothing here (THP mode not 'madvise', or glibc < 2.35)",
)
def test_tunable_takes_huge_pages_for_xla_buffers():
    def faults(tunables: str) -> int:
        env = {**os.environ, "GLIBC_TUNABLES": tunables}
        return int(
            subprocess.run(
                [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
            ).stdout
        )

    plain, huge = faults(""), faults(SETTING)
    # 8 x 64 MiB in 4 KiB pages is 131072 faults; in 2 MiB pages 256 (plus the interpreter's own)
    assert plain > 8 * 64 * 256 * 0.9
    assert huge < plain / 10
