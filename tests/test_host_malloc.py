"""The huge-page malloc restart (lsta_jax/host_malloc.py): when, with what, and what it changes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lsta_jax import host_malloc as hm

GLIBC = (2, 36)


@pytest.mark.parametrize(
    "environ, mode, glibc, expected",
    [
        ({}, "madvise", GLIBC, "glibc.malloc.hugetlb=1"),
        (
            {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
            "madvise",
            GLIBC,
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
        ),
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "madvise", GLIBC, None),  # the user's choice stands
        ({"LSTA_JAX_HUGE_PAGES": "0"}, "madvise", GLIBC, None),  # opt-out
        ({}, "always", GLIBC, None),  # the kernel already gives huge pages to every large mapping
        ({}, "never", GLIBC, None),
        ({}, None, GLIBC, None),  # no THP file (not Linux, a container hiding /sys)
        ({}, "madvise", (2, 34), None),  # glibc before the tunable existed
        ({}, "madvise", None, None),  # musl and others
    ],
)
def test_restart_environment(environ, mode, glibc, expected):
    out = hm.huge_page_environment(dict(environ, PATH="/bin"), mode, glibc)
    if expected is None:
        assert out is None
    else:
        assert out["GLIBC_TUNABLES"] == expected and out["PATH"] == "/bin"


def test_thp_mode_is_the_bracketed_word(tmp_path: Path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert hm.transparent_huge_page_mode(f) == "madvise"
    assert hm.transparent_huge_page_mode(tmp_path / "missing") is None


# A large jitted output, created 8 times: its minor page faults with and without the restart.
PROBE = textwrap.dedent(
    """
    import resource, sys
    from lsta_jax.host_malloc import reexec_with_huge_pages
    if sys.argv[1] == "restart":
        reexec_with_huge_pages()
    import os, jax, jax.numpy as jnp
    x = jnp.ones((64 * 2**18,))  # 64 MiB: above glibc's largest mmap threshold, so a fresh mmap per call
    double = jax.jit(lambda v: v * 2)
    double(x).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
        double(x).block_until_ready()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(os.environ.get("GLIBC_TUNABLES", ""), faults)
    """
)


@pytest.mark.skipif(
    hm.huge_page_environment({}, hm.transparent_huge_page_mode(), hm.glibc_version()) is None,
    reason="no restart on this machine (THP mode or C library)",
)
def test_restart_takes_huge_pages_for_xla_buffers():
    def run(mode: str) -> tuple[str, int]:
        env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", hm.OPT_OUT)}
        out = subprocess.run(
            [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        return (out[0], int(out[1])) if len(out) == 2 else ("", int(out[0]))

    plain_tunables, plain_faults = run("plain")
    tunables, faults = run("restart")
    assert plain_tunables == "" and tunables == "glibc.malloc.hugetlb=1"
    # 8 x 64 MiB in 4 KiB pages is 131072 faults; in 2 MiB pages 256 (plus the interpreter's own)
    assert plain_faults > 8 * 64 * 256 * 0.9
    assert faults < plain_faults / 10
