"""Train LSTA: `python -m lsta_jax.train --config configs/X.py[:arg] --workdir DIR [--config.field=value]`.

Re-running the same command resumes from the latest checkpoint in DIR. Multi-host: pass `--distributed` (or
set LSTA_DISTRIBUTED=1) and every process runs the same command; `jax.distributed.initialize()` then reads the
cluster from the environment (SLURM, TPU VM pods; or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID), see launch/.

One run per workdir (a second one is refused, naming the holder's host and pid). SIGTERM or Ctrl-C saves a
checkpoint at the next step boundary and exits 0; a checkpoint that cannot be read is set aside and the run
resumes from the newest readable one. See docs/checkpoints.md.
"""

from __future__ import annotations

import os
import sys

from lsta_jax import cli


def initialize_distributed() -> None:
    """`jax.distributed.initialize()` from the environment (explicit JAX_* variables win over auto-detect)."""
    import jax

    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address:
        jax.distributed.initialize(
            coordinator_address=address,
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m lsta_jax.train", description=__doc__)
    parser.add_argument("--config", required=True, help="configs/X.py[:arg]")
    parser.add_argument(
        "--workdir", required=True, help="checkpoints, metrics and TensorBoard events go here"
    )
    parser.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() first")
    args, rest = parser.parse_known_args(argv)
    overrides = cli.config_overrides(parser, rest)
    if args.distributed or os.environ.get("LSTA_DISTRIBUTED") == "1":
        initialize_distributed()

    from lsta_jax.train.config import apply_overrides, load_config
    from lsta_jax.train.trainer import NonFiniteLoss, train_and_evaluate
    from lsta_jax.train.workdir_lock import WorkdirBusy

    try:
        config = apply_overrides(load_config(args.config), overrides)
    except (FileNotFoundError, AttributeError, KeyError, ValueError) as e:
        return cli.fail(str(e))
    try:
        summary = train_and_evaluate(config, args.workdir)
    except NonFiniteLoss as e:
        return cli.fail(str(e), status=3)
    except (FileNotFoundError, ValueError, WorkdirBusy) as e:  # an unbuilt dataset, a busy workdir, a config,
        return cli.fail(str(e))  # data and model that do not fit together (train/consistency.py)
    if summary:
        from lsta_jax.train.metrics import REPORT_KEYS

        print("final eval: " + ", ".join(f"{k} {summary[k]:.4f}" for k in REPORT_KEYS if k in summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
