"""One run per workdir: a live holder (another process) refuses a second run in one line naming its host and
pid, through the library and the command line; a holder that died, or a lock file it left, blocks nothing."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from test_checkpoint_portability import ROOT
from test_preemption import TINY
from test_train import tiny_config

from lsta_jax.train import trainer
from lsta_jax.train.workdir_lock import LOCK_FILE, WorkdirBusy, hold_workdir

HOLD = """
import sys, time
from lsta_jax.train.workdir_lock import hold_workdir
with hold_workdir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def start_holder(workdir):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_refuses_a_second_run_and_a_dead_one_does_not(tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    holder = start_holder(workdir)
    try:
        host = socket.gethostname()
        busy = rf"{workdir} is in use by a training run on host {host}, pid {holder.pid} "
        with pytest.raises(WorkdirBusy, match=busy):
            trainer.train_and_evaluate(tiny_config(total_steps=1), workdir, quiet=True)
        assert not (workdir / "checkpoints").exists()  # refused before anything was written
        # the command line: one `error:` line, exit status 2
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
        cli = subprocess.run(
            [sys.executable, "-m", "lsta_jax.train", "--config", "configs/synthetic.py:toy"]
            + ["--workdir", str(workdir), *TINY],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert cli.returncode == 2, cli.stderr[-2000:]
        lines = cli.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and f"pid {holder.pid}" in lines[0]
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without releasing anything itself
        holder.wait()
    # its lock file is still there, naming it, but the kernel dropped its flock: the workdir is free
    assert json.loads((workdir / LOCK_FILE).read_text())["pid"] == holder.pid
    with hold_workdir(workdir) as path:
        assert json.loads(path.read_text()) == {"host": socket.gethostname(), "pid": os.getpid()}
        with pytest.raises(WorkdirBusy, match=f"pid {os.getpid()}"):  # held: even this process is refused
            with hold_workdir(workdir):
                pass
    assert (workdir / LOCK_FILE).read_text() == ""  # released: no holder recorded
    # released on exit from the body, also when the run raised
    with pytest.raises(RuntimeError, match="boom"), hold_workdir(workdir):
        raise RuntimeError("boom")
    with hold_workdir(workdir):
        time.sleep(0)


def test_without_flock_the_recorded_holder_decides(tmp_path, monkeypatch):
    from lsta_jax.train import workdir_lock

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(workdir_lock.fcntl, "flock", no_flock)
    lock = tmp_path / LOCK_FILE
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is no longer a process
    here = socket.gethostname()
    lock.write_text(json.dumps({"host": here, "pid": dead.pid}))
    with hold_workdir(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    parent = os.getppid()  # alive
    lock.write_text(json.dumps({"host": here, "pid": parent}))
    with pytest.raises(WorkdirBusy, match=f"on host {here}, pid {parent} "):
        with hold_workdir(tmp_path):
            pass
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1}))  # cannot be checked from here: blocks
    with pytest.raises(WorkdirBusy, match="on host elsewhere, pid 1 "):
        with hold_workdir(tmp_path):
            pass
