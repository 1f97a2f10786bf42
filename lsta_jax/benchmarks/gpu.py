"""The GPU measurements in one command: `python -m lsta_jax.benchmarks.gpu --output bench_out/gpu`.

On a host whose default JAX backend is a GPU it measures, with the functions of
`lsta_jax.benchmarks.versus_torch` (the same full-size model, weights and timing helpers):
1. the main rows of versus_torch: inference (batches 1 and 8) and the stage-1 / stage-2 train steps at
   batch 2, interleaved with the PyTorch reference (on whatever device torch runs: the ratio is only
   meaningful when both run on the GPU);
2. the train step of stage 1 and of stage 2 at the paper's batch (32, 25 frames), lsta_jax only: step time,
   clips/s, compile time and XLA's compiled memory;
3. the gate-convolution comparison on the stage-1 step at the paper's batch: `gate_conv` 'im2col' and
   'xla' (what 'auto' picks on GPU, an assumption until this runs), each with the time loop rolled
   (`scan_unroll='auto'`) and fully unrolled.
Writes OUTPUT/gpu.json after every measurement (an interrupted run keeps what it measured). On a host
without a GPU it says so and exits 2; `--allow-cpu` runs it anyway at a tiny size, as a smoke check of
the script itself (`--frames`, `--paper-batch`, `--size` shrink it further).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lsta_jax import cli


def paper_step(bench: Any, stage: str, batch: int, frames: int, repeats: int, **model_fields: Any) -> dict:
    """The lsta_jax train step of `stage` at `batch` x `frames` (model fields overridden): time, memory."""
    from lsta_jax.benchmarks import versus_torch as vt
    from lsta_jax.models import create_model

    model = create_model("lsta_rgb", **{**bench.config, **model_fields})
    clip, _, label, _ = bench.clips(batch, frames)
    state, steps = bench.jax_train(stage, model)
    data = steps.put_batch({"clip": clip, "label": label})
    compiled, compile_s, memory = vt.timed_compile(steps.train, state, data)
    seconds = vt._median_time(vt._train_steps(compiled, state, data), repeats)
    return {
        "work": f"{stage} train step",
        "batch": batch,
        "frames": frames,
        **model_fields,
        "jax_s": seconds,
        "clips_per_s": round(batch / seconds, 2),
        "compile_s": compile_s,
        "jax_compiled_mib": memory,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.gpu",
        description=__doc__,
    )
    p.add_argument("--output", default="bench_out/gpu", help="directory for gpu.json (created)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (25; --allow-cpu on a CPU: 2)")
    p.add_argument("--paper-batch", type=int, default=None, help="the paper's batch (32; CPU smoke: 2)")
    p.add_argument("--size", type=int, default=None, help="frame size in pixels (224; CPU smoke: 64)")
    p.add_argument("--repeats", type=cli.positive_int, default=5, help="timed calls per measurement (median)")
    p.add_argument("--allow-cpu", action="store_true", help="run on a CPU host (a smoke check, tiny sizes)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import jax

    backend = jax.default_backend()
    smoke = backend != "gpu"
    if smoke and not args.allow_cpu:
        print(
            f"lsta_jax.benchmarks.gpu: needs a GPU (JAX's default backend here is {backend!r}); run it on a "
            "GPU host with jax[cuda], or pass --allow-cpu for a smoke check",
            file=sys.stderr,
        )
        return 2
    from lsta_jax.benchmarks import versus_torch as vt

    frames = args.frames or (2 if smoke else 25)
    batch = args.paper_batch or (2 if smoke else 32)
    size = args.size or (64 if smoke else 224)
    vt_args = vt.parse_args(
        [
            "--frames",
            str(frames),
            "--size",
            str(size),
            "--repeats",
            str(args.repeats),
            "--infer-batches",
            "1" if smoke else "1,8",
            "--train-batch",
            "2",
        ]
    )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "machine": vt.machine(),
        "backend": backend,
        "devices": [str(d) for d in jax.devices()],
        "smoke_check_on_cpu": smoke,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "args": vars(args) | {"frames": frames, "paper_batch": batch, "size": size},
        "main": [],
        "paper_batch": [],
        "gate_convs": [],
    }

    def save(what: str, row: dict[str, Any]) -> None:
        result[what].append(row)
        print(f"{what}: {row}", flush=True)
        (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")

    bench = vt.Bench(vt_args)
    for b in vt_args.infer_batches:
        save("main", bench.inference(b, frames))
    for stage in ("stage1", "stage2"):
        save("main", bench.train(stage, vt_args.train_batch, frames))
    for stage in ("stage1", "stage2"):
        save("paper_batch", paper_step(bench, stage, batch, frames, args.repeats))
    for gate_conv in ("im2col", "xla"):
        for unroll in ("auto", "full"):
            fields = dict(gate_conv=gate_conv, scan_unroll=unroll)
            save("gate_convs", paper_step(bench, "stage1", batch, frames, args.repeats, **fields))
    print(f"wrote {out / 'gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
