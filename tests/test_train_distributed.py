"""Two `jax.distributed` processes on 127.0.0.1 (CPU, gloo collectives, 2 devices each = one 4-device mesh)
run the same train steps as one process with 4 devices, each feeding only its half of every global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from test_train import leaves, tiny_config

from lsta_jax.models import create_model
from lsta_jax.train import trainer
from lsta_jax.train.input_pipeline import make_data

NUM_STEPS = 3
ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", 2)
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
sys.path.insert(0, "tests")
import numpy as np
from test_train_distributed import run_steps
params = run_steps()
if jax.process_index() == 0:
    np.savez(sys.argv[3], **params)
print("process", jax.process_index(), "of", jax.process_count(), "devices", jax.device_count(), flush=True)
"""


def run_steps() -> dict[str, np.ndarray]:
    """NUM_STEPS train steps on toy data over a mesh of all devices; this process feeds its slice."""
    config = tiny_config(trainable="all")
    data = make_data(config)  # ArrayTrainIterator slices by jax.process_index()/process_count()
    model = create_model("lsta_rgb", **trainer.model_config(config))
    state, tx, mask, _ = trainer.create_train_state(config, model, data.steps_per_epoch)
    steps = trainer.compile_steps(model, tx, mask)
    state = steps.replicate(state)
    for _ in range(NUM_STEPS):
        state, _ = steps.train(state, steps.put_batch(next(data.train)))
    # replicated: every process holds the full value
    params = jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0)), state.params)
    return leaves(params)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process_with_four_devices(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    out = tmp_path / "params.npz"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, address, str(i), str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    assert "process 0 of 2 devices 4" in logs[0] and "process 1 of 2 devices 4" in logs[1]

    assert jax.device_count() == 4 and jax.process_count() == 1
    single = run_steps()
    multi = dict(np.load(out))
    assert multi.keys() == single.keys()
    for k, v in single.items():
        np.testing.assert_allclose(multi[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
