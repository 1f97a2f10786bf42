"""One training run per workdir: `hold_workdir(workdir)` takes `WORKDIR/lsta_jax.lock` for the run.

The lock is an exclusive `fcntl.flock` on that file, which records the holder's host and pid. The kernel
releases a flock when its process dies (killed, crashed, node rebooted), so a dead run never blocks the next
one and no stale file needs cleaning by hand. A second run on a held workdir is refused in one line naming
the holder (`WorkdirBusy`).

Multi-process runs: only process 0 takes the lock (the processes of one run share the workdir by design; a
lock per process would not stop a second multi-process run either, since its process 0 meets the first run's
lock anyway); its verdict is broadcast, so every process of a refused run stops.

Filesystems without flock (some network or FUSE mounts raise OSError): the recorded holder decides. A holder
on this host whose pid is alive blocks; a dead one does not; a holder on another host cannot be checked and
blocks, with the lock file named so it can be removed once that run is known to be over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

LOCK_FILE = "lsta_jax.lock"


class WorkdirBusy(RuntimeError):
    """Another live run holds the workdir; the message names its host and pid."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _alive_here(holder: dict) -> bool:
    """Whether `holder` may be running: a pid alive on this host, or any holder on another host."""
    if holder.get("host") != socket.gethostname():
        return bool(holder)
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _busy(path: Path, holder: dict) -> WorkdirBusy:
    return WorkdirBusy(
        f"{path.parent} is in use by a training run on host {holder.get('host', '?')}, pid "
        f"{holder.get('pid', '?')} (lock {path}): wait for it to end or stop it, or use another --workdir"
    )


def _acquire(path: Path) -> tuple[int | None, WorkdirBusy | None]:
    """(fd holding the lock, None) or (None, why not)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None, _busy(path, _holder(path))
    except OSError as e:  # no flock on this filesystem: judge by the recorded holder
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            os.close(fd)
            raise
        holder = _holder(path)
        if holder and holder.get("pid") != os.getpid() and _alive_here(holder):
            os.close(fd)
            return None, _busy(path, holder)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
    os.fsync(fd)
    return fd, None


@contextlib.contextmanager
def hold_workdir(workdir: str | Path) -> Iterator[Path]:
    """Hold `WORKDIR/lsta_jax.lock` for the body (process 0 takes it; all raise `WorkdirBusy` if refused)."""
    path = Path(workdir).absolute() / LOCK_FILE
    fd, refused = _acquire(path) if jax.process_index() == 0 else (None, None)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        ok = int(multihost_utils.broadcast_one_to_all(np.int32(refused is None)))
        if not ok and refused is None:
            refused = WorkdirBusy(f"{path.parent} is in use by another run (process 0 names it)")
    if refused is not None:
        raise refused
    try:
        yield path
    finally:
        if fd is not None:
            os.ftruncate(fd, 0)  # no holder recorded once released
            with contextlib.suppress(OSError):  # (a filesystem without flock)
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
