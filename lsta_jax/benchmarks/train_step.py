"""Steps/s of the jitted, sharded train step: `python -m lsta_jax.benchmarks.train_step --config CONFIG`.

Times `trainer.train_step` alone (random clips already on the devices, no input pipeline): the compile time of
the first step, then steps/s and clips/s over `--steps` steps (after `--warmup`). Config overrides
(`--config.field=value`) work as for training, e.g. the full-size model:

    python -m lsta_jax.benchmarks.train_step --config configs/gtea61.py --config.global_batch_size=2 \\
        --config.data.num_frames=4
"""

from __future__ import annotations

import json
import sys
import time

from lsta_jax import cli


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.train_step",
        description=__doc__,
    )
    parser.add_argument("--config", default="configs/synthetic.py:toy", help="configs/X.py[:arg]")
    parser.add_argument("--steps", type=cli.positive_int, default=20, help="timed steps")
    parser.add_argument(
        "--warmup", type=cli.non_negative_int, default=2, help="untimed steps after the compiling one"
    )
    args, rest = parser.parse_known_args(argv)
    overrides = cli.config_overrides(parser, rest)

    import jax
    import numpy as np

    from lsta_jax.models import create_model
    from lsta_jax.train import trainer
    from lsta_jax.train.config import apply_overrides, load_config

    try:
        config = apply_overrides(load_config(args.config), overrides)
    except (FileNotFoundError, AttributeError, KeyError, ValueError) as e:
        return cli.fail(str(e))
    if config.model.num_classes <= 0:
        config.model.num_classes = 100
    d, b = config.data, config.global_batch_size
    model = create_model(config.model.kind, **trainer.model_config(config))
    state, tx, mask, _ = trainer.create_train_state(config, model, steps_per_epoch=100)
    steps = trainer.compile_steps(model, tx, mask, config.grad_accum_steps)
    rng = np.random.default_rng(0)
    batch = steps.put_batch(
        {
            "clip": rng.normal(size=(b, d.num_frames, d.crop_size, d.crop_size, 3)).astype(np.float32),
            "label": rng.integers(0, config.model.num_classes, b).astype(np.int32),
        }
    )
    state = steps.replicate(state)
    t0 = time.perf_counter()
    state, m = steps.train(state, batch)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    for _ in range(args.warmup):
        state, m = steps.train(state, batch)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, m = steps.train(state, batch)
    jax.block_until_ready(m)
    seconds = time.perf_counter() - t0
    result = {
        "config": args.config,
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "batch": b,
        "frames": d.num_frames,
        "size": d.crop_size,
        "dtype": config.model.dtype,
        "remat": config.model.remat,
        "trainable": config.trainable,
        "compile_s": round(compile_s, 2),
        "steps_per_s": round(args.steps / seconds, 3),
        "clips_per_s": round(args.steps * b / seconds, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
