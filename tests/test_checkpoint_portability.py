"""Checkpoints travel between device and process counts: a workdir written on 4 devices, or by 2 processes of
2 devices, loads in a 1-device process and resumes on 2 devices (data iterator included), ending where an
uninterrupted run ends; an iterator whose state is per process is refused in one line."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from test_train import leaves, tiny_config

from lsta_jax import load_model
from lsta_jax.checkpoint import CheckpointError
from lsta_jax.train import checkpoints as ckpt
from lsta_jax.train import trainer

ROOT = Path(__file__).resolve().parent.parent
BASE = dict(total_steps=4, checkpoint_every_steps=2, eval_every_steps=100, trainable="all")

PRELUDE = """
import sys
sys.path.insert(0, "tests")
import jax
import numpy as np
"""

# 2 jax.distributed processes of 2 CPU devices each (gloo), as launch/local_multiprocess.sh runs them
TRAIN_2X2 = (
    PRELUDE
    + """
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", 2)
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
from test_checkpoint_portability import BASE
from test_train import tiny_config
from lsta_jax.train import trainer
trainer.train_and_evaluate(tiny_config(**{**BASE, "total_steps": 2}), sys.argv[3], quiet=True)
print("trained on", jax.process_count(), "processes", jax.device_count(), "devices", flush=True)
"""
)

# an ordinary process (1 device): load each workdir, save its variables
LOAD = (
    PRELUDE
    + """
from test_train import leaves
from lsta_jax import load_model
assert jax.device_count() == 1 and jax.process_count() == 1
for workdir, out in zip(sys.argv[1::2], sys.argv[2::2]):
    np.savez(out, **leaves(load_model(workdir)[1]))
print("loaded on", jax.device_count(), "device", flush=True)
"""
)

# resume each workdir to BASE's total_steps on 2 devices
RESUME = (
    PRELUDE
    + """
from test_checkpoint_portability import BASE
from test_train import tiny_config
from lsta_jax.train import trainer
assert jax.device_count() == 2
for workdir in sys.argv[1:]:
    trainer.train_and_evaluate(tiny_config(**BASE), workdir, quiet=True)
print("resumed on", jax.device_count(), "devices", flush=True)
"""
)


@pytest.fixture
def cache(tmp_path):
    """A persistent compilation cache shared by this process and its subprocesses."""
    old = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    yield tmp_path / "jax_cache"
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(script: str, args: list[str], devices: int, cache: Path, count: int = 1) -> list[str]:
    """Run `script` in `count` fresh processes of `devices` CPU devices each (sharing a compilation cache)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        PYTHONPATH=str(ROOT),
    )
    if count == 1 and devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    argvs = [args] if count == 1 else [[args[0], str(i), *args[1:]] for i in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for argv in argvs
    ]
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return logs


def test_checkpoints_of_4_devices_and_of_2x2_processes_load_on_1_and_resume_on_2(tmp_path, cache):
    assert jax.device_count() == 4
    straight = trainer.train_and_evaluate(tiny_config(**BASE), tmp_path / "straight", quiet=True)
    expected = leaves(load_model(tmp_path / "straight")[1])
    # interrupted at step 2: on this process's 4 devices (the straight run without its step 4, as a run killed
    # before writing it), and on 2 processes x 2 devices
    shutil.copytree(tmp_path / "straight", tmp_path / "four", ignore=shutil.ignore_patterns("eval", "4"))
    (tmp_path / "four" / "checkpoints" / "best.json").unlink(missing_ok=True)
    assert ckpt.checkpoint_steps(tmp_path / "four") == [2]
    logs = run(TRAIN_2X2, [f"127.0.0.1:{free_port()}", str(tmp_path / "two_by_two")], 2, cache, count=2)
    assert "trained on 2 processes 4 devices" in logs[0]
    assert (tmp_path / "two_by_two" / "checkpoints" / "2" / "data" / "process_1-of-2.json").is_file()
    at_step_2 = leaves(load_model(tmp_path / "four")[1])

    # both load in a 1-device process, bit for bit what they hold
    workdirs = [tmp_path / "four", tmp_path / "two_by_two"]
    outs = [tmp_path / "four.npz", tmp_path / "two_by_two.npz"]
    run(LOAD, [str(a) for pair in zip(workdirs, outs, strict=True) for a in pair], 1, cache)
    for out in outs:
        loaded = dict(np.load(out))
        assert loaded.keys() == at_step_2.keys()
        for k, v in at_step_2.items():  # the 2x2 run took the same steps: equal up to reduction order
            np.testing.assert_allclose(loaded[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    four = dict(np.load(outs[0]))
    assert all(four[k].tobytes() == at_step_2[k].tobytes() for k in at_step_2)

    # both resume on 2 devices (the 2x2 one on 1 process: the toy iterator's state carries over) and end
    # where the uninterrupted run ends; a lost iterator position would train on other batches
    run(RESUME, [str(w) for w in workdirs], 2, cache)
    for workdir in workdirs:
        resumed = leaves(load_model(workdir)[1])
        for k, v in expected.items():
            np.testing.assert_allclose(resumed[k], v, rtol=1e-5, atol=1e-6, err_msg=f"{workdir.name} {k}")
        assert ckpt.checkpoint_steps(workdir) == [2, 4]
        summary = json.loads((workdir / "eval" / "summary.json").read_text())
        assert summary["step"] == 4 and summary["top1"] == straight["top1"]
    moved = [k for k in expected if not np.allclose(expected[k], at_step_2[k], rtol=1e-5, atol=1e-6)]
    assert moved, "steps 3-4 changed no parameter: the comparison above would prove nothing"


class PerProcessIterator:
    """Stands for a grain DataLoader iterator: its state is this process's shard, not the global position."""

    def __init__(self) -> None:
        self.state = b'{"shard": 0}'

    def get_state(self) -> bytes:
        return self.state

    def set_state(self, state: bytes) -> None:
        self.state = state

    def start_prefetch(self) -> None:
        pass


def test_per_process_iterator_state_is_refused_on_another_process_count(tmp_path):
    tree = {"params": {"w": np.arange(3, dtype=np.float32)}, "batch_stats": {}}
    train = {"step": np.int32(1)}
    manager = ckpt.make_manager(tmp_path, best_metric=None)
    ckpt.save(manager, 1, tree, train, PerProcessIterator())
    data = tmp_path / "checkpoints" / "1" / "data"
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    model, _ = ckpt.restore(manager, 1, tree, train, PerProcessIterator(), sharding)  # same count: fine
    np.testing.assert_array_equal(model["params"]["w"], tree["params"]["w"])
    # as if written by 2 processes (process_0-of-2.json, process_1-of-2.json) and resumed by this one
    (data / "process_0-of-1.json").rename(data / "process_0-of-2.json")
    (data / "process_1-of-2.json").write_text('{"shard": 1}')
    refused = r"written by 2 process\(es\), this run has 1.*PerProcessIterator"
    with pytest.raises(CheckpointError, match=refused):
        ckpt.restore(manager, 1, tree, train, PerProcessIterator(), sharding)
    manager.close()


def test_resuming_with_other_model_fields_is_refused_naming_each_field(tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    trained = tiny_config(**BASE)
    (workdir / "config.json").write_text(trained.to_json_best_effort())
    manager = ckpt.make_manager(
        workdir, best_metric=None
    )  # any checkpoint: the check comes before reading it
    ckpt.save(manager, 2, {"params": {"w": np.zeros(3, np.float32)}}, {"step": np.int32(2)}, None)
    manager.close()
    changed = tiny_config(**BASE)
    changed.model.mem_size = 16
    changed.model.backbone_widths = (8, 16, 16, 16)
    with pytest.raises(CheckpointError) as error:
        trainer.train_and_evaluate(changed, workdir, quiet=True)
    message = str(error.value)
    assert "\n" not in message and f"{workdir} was trained with other model fields" in message
    assert "model.backbone_widths: [8, 16, 16, 32] in the workdir, [8, 16, 16, 16] now" in message
    assert "model.mem_size: 32 in the workdir, 16 now" in message
    assert message.count(" in the workdir, ") == 2  # only the fields that differ
    assert ckpt.checkpoint_steps(workdir) == [2]
