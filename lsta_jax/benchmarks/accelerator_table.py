"""The accelerator table of docs/accelerators.md: `lsta_jax.preflight` over configs x TPU slices x dtypes.

    python -m lsta_jax.benchmarks.accelerator_table --output bench_out/accelerators \\
        [--rows gtea61_s1,gtea61_s2] [--topologies v5e:2x4,v4:2x2x1] [--dtypes float32,bfloat16] \\
        [--batch 32] [--largest] [--eval] [--clips-per-core N]

For every (row, topology, dtype): the train step compiled at the paper's global batch (32), per chip: memory
against HBM, FLOPs, compile time, and the ESTIMATED step time FLOPs / published peak bf16 FLOP/s (a lower
bound). With `--largest`, also the largest global batch that fits (`preflight.largest_fitting_batch`: two more
compiles per row, the second at the predicted batch). With `--clips-per-core` (the input pipeline's clips/s
per host core), the host cores one chip needs to keep up at the estimated step time. Rows are appended to
OUTPUT/accelerators.json as they finish (a rerun skips rows already there) and OUTPUT/accelerators.md is
rewritten. Each full-size compile takes tens of seconds of CPU.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from lsta_jax import cli

#: row name -> (config spec, --config.* overrides, description). Class counts that training takes from the
#: data or a checkpoint are set to the datasets' sizes (they change the classifier's size only).
ROWS: dict[str, tuple[str, list[str], str]] = {
    "gtea61_s1": ("configs/gtea61.py:stage=1", [], "GTEA61 LSTA-RGB stage 1, 25 frames 224 px"),
    "gtea61_s2": ("configs/gtea61.py:stage=2", [], "GTEA61 LSTA-RGB stage 2, 25 frames 224 px"),
    "two_stream": (
        "configs/lsta_two_stream.py",
        ["--config.model.verb_classes=10"],
        "GTEA61 cross-modal two-stream (25 frames + one 5-stack of flow; 10 verb classes assumed)",
    ),
    "epic": (
        "configs/epic.py",
        ["--config.model.num_classes=2513"],
        "EPIC-55 multi-task LSTA (125 verbs, 352 nouns; 2513 action classes assumed)",
    ),
}


def measure_row(
    name: str, topology: str, dtype: str, batch: int, largest: bool, with_eval: bool
) -> dict[str, Any]:
    """One table row: the preflight's summary for `name` on `topology` in `dtype` at global `batch`."""
    from lsta_jax import preflight

    spec, overrides, description = ROWS[name]
    config = preflight.load_run_config(spec, [*overrides, f"--config.model.dtype={dtype}"], batch)
    functions = ("train", "eval") if with_eval else ("train",)
    summary = preflight.run(config, topology, functions, search=False, out=lambda s: print(s, flush=True))
    summary.update(row=name, description=description, batch=batch)
    if largest:
        target = preflight.make_target(topology)
        compiler = preflight.RunCompiler(config, target)  # programs compiled above come from the cache
        best, searched = preflight.largest_fitting_batch(
            compiler.train,
            compiler.batch_multiple,
            summary["hbm_gib"] * preflight.GIB,
            [compiler.train(batch)],
        )
        summary["largest_batch"] = best
        summary["largest"] = next(
            (dataclasses.asdict(r) | {"total": r.total} for r in searched if r.global_batch == best), None
        )
    return summary


#: The CPU-chosen defaults compared on the TPU compile: (name, --config.* overrides, function). The train
#: step for the gate convolutions, the scan unrolling, remat and the dtype; inference for `backbone_chunk`
#: (it only acts with train=False).
LEVERS: list[tuple[str, list[str], str]] = [
    ("im2col gate convs", ["--config.model.gate_conv=im2col"], "train"),
    ("xla, scan_unroll=full", ["--config.model.gate_conv=xla", "--config.model.scan_unroll=full"], "train"),
    ("xla, remat", ["--config.model.gate_conv=xla", "--config.model.remat=True"], "train"),
    ("inference, backbone_chunk=5", ["--config.model.backbone_chunk=5"], "inference"),
    ("inference, backbone_chunk=0", ["--config.model.backbone_chunk=0"], "inference"),
    # the defaults ('auto' = xla on TPU): the same programs as the table's float32 / bfloat16 rows
    ("xla gate convs", ["--config.model.gate_conv=xla"], "train"),
    ("xla, bfloat16", ["--config.model.gate_conv=xla", "--config.model.dtype=bfloat16"], "train"),
]


def set_model_fields(config: Any, overrides: list[str]) -> list[str]:
    """Apply the `--config.model.X=V` overrides whose field X the config's model does not list (module
    attributes with a default, e.g. `scan_unroll`, `backbone_chunk`); returns the other overrides."""
    import ast

    rest = []
    for item in overrides:
        key, _, text = item.lstrip("-").partition("=")
        field = key.removeprefix("config.model.")
        if key.startswith("config.model.") and field not in config.model:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            with config.model.unlocked():
                config.model[field] = value
        else:
            rest.append(item)
    return rest


def compare_levers(
    row: str, topology: str, batch: int, out: Path, only: list[str] | None = None
) -> list[dict[str, Any]]:
    """Each of `LEVERS` (or those named in `only`) compiled for `topology` at global `batch` (`row`'s
    config); appended to OUT/levers.json as they finish (a rerun skips levers already there)."""
    from lsta_jax import preflight
    from lsta_jax.train.config import apply_overrides

    path = out / "levers.json"
    results = json.loads(path.read_text()) if path.is_file() else []
    spec, overrides, _ = ROWS[row]
    for name, extra, function in LEVERS:
        if only and name not in only:
            continue
        if any(
            (r["lever"], r["row"], r["topology"], r["batch"]) == (name, row, topology, batch) for r in results
        ):
            continue
        config = preflight.load_run_config(spec, [], batch)
        config = apply_overrides(config, set_model_fields(config, [*overrides, *extra]))
        summary = preflight.run(
            config, topology, (function,), search=False, out=lambda s: print(s, flush=True)
        )
        results.append(
            dict(lever=name, row=row, topology=topology, batch=batch, function=function, overrides=extra)
            | summary["reports"][0]
            | {"date": time.strftime("%Y-%m-%d", time.gmtime())}
        )
        path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def levers_markdown(results: list[dict[str, Any]]) -> str:
    gib = 1024**3
    lines = [
        "| setting | function | slice | batch | args GiB | temps GiB | total GiB | GFLOP/chip | convolutions "
        "| while loops | compile s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['lever']} | {r['function']} | {r['topology']} | {r['batch']} | {r['arguments'] / gib:.2f} "
            f"| {r['temporaries'] / gib:.2f} | {r['total'] / gib:.2f} | {r['flops'] / 1e9:.0f} "
            f"| {r['convolutions']} | {r['while_loops']} | {r['compile_s']:.0f} |"
        )
    return "\n".join(lines)


def host_cores_sentence(clips_per_core: float | None) -> str:
    if clips_per_core:
        return f"host cores per chip = clips/s per chip / {clips_per_core:g} clips/s per core (measured)"
    return (
        "host cores per chip = (global batch / chips / estimated step time) / (the input pipeline's "
        "clips/s per host core); the clips/s per core of `lsta_jax.benchmarks.pipeline` is NOT MEASURED "
        "here yet: fill it in"
    )


def markdown(rows: list[dict[str, Any]], clips_per_core: float | None) -> str:
    """The table: one line per (row, topology, dtype)."""
    lines = [
        "| model | slice | dtype | batch (/device) | args GiB | temps GiB | total GiB / HBM | GFLOP/step "
        "| est. step ms | clips/s/device (est.) | host cores/device | compile s | largest batch (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    gib = 1024**3
    for s in rows:
        train = next(r for r in s["reports"] if r["function"] == "train")
        per_chip = s["batch"] // s["chips"]
        step_s = train["flops"] / s["peak_bf16_flops"]
        clips = per_chip / step_s if step_s > 0 else float("nan")
        cores = f"{clips / clips_per_core:.1f}" if clips_per_core else "see note"
        largest = s.get("largest")
        big = f"{s['largest_batch']} ({largest['total'] / gib:.2f})" if largest else "-"
        lines.append(
            f"| {s['row']} | {s['topology']} ({s['hosts']} host(s)) | {s['dtype']} "
            f"| {s['batch']} ({per_chip}) | {train['arguments'] / gib:.2f} "
            f"| {train['temporaries'] / gib:.2f} "
            f"| {train['total'] / gib:.2f} / {s['hbm_gib']:g} | {train['flops'] / 1e9:.0f} "
            f"| {1e3 * step_s:.1f} | {clips:.0f} | {cores} | {train['compile_s']:.0f} | {big} |"
        )
    lines += [
        "",
        "Per device: a chip on v5e, a TensorCore (half a chip: 16 GiB, 137.5 TFLOP/s) on v4.",
        "est. step ms = FLOPs per chip / the chip's published peak bf16 FLOP/s: an ESTIMATE and a lower "
        "bound (no input pipeline, no communication, full MXU use; float32 matmuls run at the bf16 rate "
        "under JAX's default TPU precision). " + host_cores_sentence(clips_per_core) + ".",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.accelerator_table",
        description=__doc__,
    )
    parser.add_argument("--output", required=True, help="directory for accelerators.json and .md")
    parser.add_argument("--rows", default="gtea61_s1,gtea61_s2", help=f"comma-separated of {','.join(ROWS)}")
    parser.add_argument("--topologies", default="v5e:2x4,v4:2x2x1", help="comma-separated TPU slices")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated model dtypes")
    parser.add_argument(
        "--batch", type=cli.positive_int, default=32, help="global batch (default 32, the paper's)"
    )
    parser.add_argument("--largest", action="store_true", help="also search the largest batch that fits")
    parser.add_argument("--eval", action="store_true", help="also compile the eval step")
    parser.add_argument("--clips-per-core", type=float, default=None, help="input clips/s per host core")
    parser.add_argument(
        "--levers", action="store_true", help="compare the CPU-chosen defaults on the TPU compile instead"
    )
    parser.add_argument("--only", default="", help="with --levers: only these lever names (';'-separated)")
    args = parser.parse_args(argv)
    from lsta_jax import preflight

    if not preflight.libtpu_installed():
        print(f"accelerator_table: needs libtpu; install it with: {preflight.INSTALL_HINT}", file=sys.stderr)
        return 2
    import jax

    jax.config.update("jax_platforms", "cpu")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "accelerators.json"
    done = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    done["host"] = f"{platform.node()} ({platform.machine()}), CPU-only, libtpu compiles"
    unknown = sorted(set(args.rows.split(",")) - set(ROWS))
    if unknown:
        parser.error(f"--rows {unknown}: choose from {', '.join(ROWS)}")
    if args.levers:
        results = []
        for topology in args.topologies.split(","):
            only = [n for n in args.only.split(";") if n] or None
            results = compare_levers(args.rows.split(",")[0], topology, args.batch, out, only)
        (out / "levers.md").write_text(levers_markdown(results) + "\n")
        print((out / "levers.md").read_text())
        return 0
    for name in args.rows.split(","):
        for topology in args.topologies.split(","):
            for dtype in args.dtypes.split(","):
                key = (name, topology, dtype, args.batch)
                have = [r for r in done["rows"] if (r["row"], r["topology"], r["dtype"], r["batch"]) == key]
                if have and (not args.largest or "largest_batch" in have[0]):
                    continue
                row = measure_row(name, topology, dtype, args.batch, args.largest, args.eval)
                row["date"] = time.strftime("%Y-%m-%d", time.gmtime())
                done["rows"] = [r for r in done["rows"] if r not in have] + [row]
                path.write_text(json.dumps(done, indent=2) + "\n")
                (out / "accelerators.md").write_text(markdown(done["rows"], args.clips_per_core) + "\n")
    print((out / "accelerators.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
