"""Transparent huge pages for the host buffers XLA allocates on every call (CPU runs).

XLA's CPU runtime allocates a call's temporaries (one block per call, e.g. 665 MiB for a stage-1 step at batch
2 and 25 frames) and its outputs with `malloc`. glibc serves blocks that large with a fresh `mmap` and returns
them with `munmap` when the call ends, so every call page-faults its whole working set again in 4 KiB pages:
170k faults and 0.44 s of kernel time per stage-1 step measured here. With glibc's `glibc.malloc.hugetlb=1`
tunable, malloc asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`) on those blocks and the same
step takes 8k faults; the README's Performance section has the before/after of the whole step.

glibc reads tunables only when a process starts, so `reexec_with_huge_pages()` restarts the command (same
interpreter, same arguments) with `GLIBC_TUNABLES` extended. The command-line entry points that run models
call it first, before JAX starts. It does nothing when the variable already names the tunable, on other
platforms or C libraries, when the kernel has transparent huge pages off (or on for every mapping already:
`always`), or when `LSTA_JAX_HUGE_PAGES=0` (the opt-out).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "LSTA_JAX_HUGE_PAGES"
THP_MODE_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MIN_GLIBC = (2, 35)  # the first glibc with glibc.malloc.hugetlb


def transparent_huge_page_mode(mode_file: Path = THP_MODE_FILE) -> str | None:
    """The kernel's THP mode ('always', 'madvise', 'never'): the bracketed word; None if unreadable."""
    try:
        text = mode_file.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def glibc_version() -> tuple[int, ...] | None:
    """(major, minor) of the running glibc, None under another C library."""
    name, version = platform.libc_ver()
    if name != "glibc" or not version:
        return None
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return None


def huge_page_environment(
    environ: dict[str, str], thp_mode: str | None, glibc: tuple[int, ...] | None
) -> dict[str, str] | None:
    """The environment to restart with, or None when a restart would change nothing (see the module doc)."""
    if environ.get(OPT_OUT) == "0" or thp_mode != "madvise" or glibc is None or glibc < MIN_GLIBC:
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if TUNABLE in tunables:
        return None
    return {**environ, "GLIBC_TUNABLES": f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"}


def reexec_with_huge_pages() -> None:
    """Restart this command with glibc's huge-page malloc when that helps (never returns in that case)."""
    if not sys.platform.startswith("linux") or {"-h", "--help"} & set(sys.argv[1:]):
        return
    environ = huge_page_environment(dict(os.environ), transparent_huge_page_mode(), glibc_version())
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
