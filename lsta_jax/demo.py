"""`make demo`: the main job on the embedded default data.

For now: a ResNet-34 forward pass on a generated image batch with real outputs, shapes and timings. The
training issue turns this into build synthetic data -> train -> evaluate -> predict.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from lsta_jax import create_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lsta_jax.demo", description=__doc__)
    parser.add_argument("--output", default="demo_out", help="directory for demo outputs")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)

    model = create_model("resnet34")
    images = jnp.asarray(np.random.default_rng(0).normal(size=(args.batch_size, 224, 224, 3)), jnp.float32)
    variables = model.init(jax.random.PRNGKey(0), images)
    apply = jax.jit(model.apply)
    start = time.perf_counter()
    jax.block_until_ready(apply(variables, images))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    outputs = jax.block_until_ready(apply(variables, images))
    run_s = time.perf_counter() - start
    for name, value in outputs.items():
        print(
            f"{name:14s} {tuple(value.shape)}  mean {float(value.mean()):+.4f}  std {float(value.std()):.4f}"
        )
    print(
        f"compile+run {compile_s:.2f} s, run {run_s * 1000:.1f} ms ({args.batch_size / run_s:.1f} images/s)"
    )


if __name__ == "__main__":
    main()
