"""SIGINT / SIGTERM to a real training process: a checkpoint at the next step boundary, exit status 0, a line
saying how to resume; the resumed run ends bit-identical to an uninterrupted one. In a 2-process run a signal
to ONE process stops both at the same step."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest
from test_checkpoint_portability import ROOT, cache, free_port  # noqa: F401  (cache: a fixture)
from test_train import leaves, tiny_config

from lsta_jax import load_model
from lsta_jax.train import trainer
from lsta_jax.train.checkpoints import checkpoint_steps
from lsta_jax.train.config import apply_overrides, load_config

# tests/test_train.py's tiny_config as command-line overrides of configs/synthetic.py:toy
TINY = [
    "--config.model.num_classes=4",
    "--config.model.mem_size=32",
    "--config.model.c_cam_classes=6",
    "--config.model.attention_classes=10",
    "--config.model.backbone_stage_sizes=[1,1,1,1]",
    "--config.model.backbone_widths=[8,16,16,32]",
    "--config.data.num_train=16",
    "--config.data.num_eval=10",
    "--config.data.num_frames=2",
    "--config.data.crop_size=48",
    "--config.global_batch_size=8",
    "--config.eval_batch_size=4",
    "--config.log_every_steps=1",
    "--config.learning_rate=1e-3",
    "--config.weight_decay=5e-4",
]
# long enough never to end on its own; no periodic checkpoint or evaluation before the signal
LONG = dict(total_steps=1000, checkpoint_every_steps=1000, eval_every_steps=1000, trainable="all")


def command(workdir: Path, **fields) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lsta_jax.train",
        "--config",
        "configs/synthetic.py:toy",
        "--workdir",
        str(workdir),
        *TINY,
        *[f"--config.{k}={v}" for k, v in fields.items()],
    ]


def environment(cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


@contextlib.contextmanager
def interactive_signals():
    """Spawn children with SIGINT and SIGTERM as an interactive terminal delivers them. A shell running pytest
    in the background (`cmd &`, nohup) starts it with SIGINT ignored, which children inherit through exec,
    and the trainer leaves an ignored signal ignored on purpose (train/preemption.py). A Python handler set
    here becomes the default disposition in the child at exec (no preexec_fn: forking JAX's threads)."""
    ignored = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is signal.SIG_IGN]
    for sig in ignored:
        signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)


def wait_for_step(workdir: Path, step: int, procs: list[subprocess.Popen], timeout: float = 300) -> None:
    """Until metrics.jsonl logs train step `step` (the loop runs: the next signal lands between steps)."""
    path = workdir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise AssertionError("training ended before the signal: " + procs[0].communicate()[0][-3000:])
        if path.is_file():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if any(m["split"] == "train" and m["step"] >= step for m in lines):
                return
        time.sleep(0.2)
    raise AssertionError(f"no train step {step} in {path} after {timeout} s")


def finish(procs: list[subprocess.Popen]) -> list[str]:
    try:
        return [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_the_overrides_are_the_tiny_config():
    assert apply_overrides(load_config("configs/synthetic.py:toy"), TINY).to_dict() == tiny_config().to_dict()


@pytest.mark.usefixtures("cache")  # this process and its subprocesses share tmp_path / "jax_cache"
def test_sigint_saves_a_checkpoint_exits_0_and_the_resumed_run_ends_bit_identical(tmp_path):
    workdir = tmp_path / "run"
    env = environment(tmp_path / "jax_cache", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with interactive_signals():
        proc = subprocess.Popen(command(workdir, **LONG), cwd=ROOT, env=env, **out)
    wait_for_step(workdir, 2, [proc])
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    (log,) = finish([proc])
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    (stopped,) = checkpoint_steps(workdir)  # saved at the step boundary after the signal, nothing else
    assert 2 <= stopped < LONG["total_steps"]
    assert f"stopped by SIGINT at step {stopped} of 1000" in log
    assert "To resume, run the same command again" in log
    assert not (workdir / "eval").exists()  # no final evaluation of an unfinished run

    # resumed (in this process: the same 4 devices, the same programs) vs uninterrupted, 2 steps further
    assert jax.device_count() == 4
    end = dict(LONG, total_steps=stopped + 2)
    resumed = trainer.train_and_evaluate(tiny_config(**end), workdir, quiet=True)
    straight = trainer.train_and_evaluate(tiny_config(**end), tmp_path / "straight", quiet=True)
    a, b = leaves(load_model(tmp_path / "straight")[1]), leaves(load_model(workdir)[1])
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    assert straight["top1"] == resumed["top1"]


@pytest.mark.usefixtures("cache")
def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step(tmp_path):
    workdir = tmp_path / "run"
    port = free_port()
    with interactive_signals():
        procs = [
            subprocess.Popen(
                [*command(workdir, **LONG)[:3], "--distributed", *command(workdir, **LONG)[3:]],
                cwd=ROOT,
                env=environment(
                    tmp_path / "jax_cache",
                    JAX_NUM_CPU_DEVICES="2",
                    JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
                    JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                    JAX_NUM_PROCESSES="2",
                    JAX_PROCESS_ID=str(i),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(2)
        ]
    wait_for_step(workdir, 2, procs)
    procs[1].send_signal(signal.SIGTERM)  # a node's own preemption notice: this process only
    logs = finish(procs)
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    (stopped,) = checkpoint_steps(workdir)
    assert 2 <= stopped < LONG["total_steps"]
    assert f"stopped by a signal to another process at step {stopped}" in logs[0]  # process 0 reports
    data = workdir / "checkpoints" / str(stopped) / "data"
    assert sorted(f.name for f in data.iterdir() if f.suffix == ".json") == [
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]
    states = [json.loads((data / f"process_{i}-of-2.json").read_text()) for i in range(2)]
    assert states[0] == states[1] and states[0]["epoch"] * 2 + states[0]["position"] == stopped
