"""lsta_jax against its PyTorch reference in one process: `python -m lsta_jax.benchmarks.versus_torch`.

The full-size model (ResNet-34 + LSTA-512, 61 classes, 224 px by default) with the same random weights in both
frameworks (`convert.lsta.export_state_dict` -> `reference.torch_lsta.TorchLSTAModel`). Measured, each jax
timing interleaved with the torch one of the same work (same minute, so a shared machine's load hits both):

- inference: clips/s of the jitted forward (`model.apply`) vs torch's forward under `inference_mode`;
- stage-1 / stage-2 train step: `trainer.compile_steps(...).train` (the reference Adam, the stage mask, only
  the trainable parameters differentiated) vs torch's `Adam(weight_decay=5e-4, eps=1e-4)` on exactly the
  parameters of the stage (`optimizer.trainable_mask` through the conversion name map), the others with
  `requires_grad=False`, so torch runs no backward through frozen layers; BatchNorm in eval mode, dropout on,
  as the reference trains;
- compile time of every jitted function (lower + compile, timed apart from the runs);
- memory: XLA's compiled memory analysis (arguments + outputs + temporaries) and, for both frameworks, the
  peak rise of the process's resident memory during a call (sampled every 2 ms);
- cost as the number of frames and the batch grow (`--frames-sweep`, `--batch-sweep`);
- levers: the stage-1 step with XLA's convolutions fully unrolled (the former default) against the gate
  convolutions as im2col matmuls in a rolled loop (the default); inference with the backbone over all frames
  in one call against chunks of frames (`backbone_chunk`, the default); the stage-1 gradient of all
  parameters against that of the trainable ones only.

`--quick` (4 frames, small sweeps) takes a few minutes on 2 CPU cores; the default is the paper's 25 frames.
`--memory-plan` adds what a GPU/TPU run of the paper (batch 32, 25 frames) needs: compiled (not run) memory of
the train steps with and without remat. Prints a table and writes `versus_torch.json` and `versus_torch.png`
into `--output`. Ratios are jax time / torch time (below 1: jax is faster).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsta_jax import cli

MIB = 2**20


def machine() -> dict[str, Any]:
    """CPU model, cores, load and library versions of this process's machine."""
    import jax
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax_device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
        "jax": jax.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),  # huge-page malloc: set by the Makefile
        "loadavg_start": list(os.getloadavg()),
    }


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def release_freed_memory(release: bool = True) -> bool:
    """glibc's handling of freed memory, for measuring memory (`release`) or time (`release=False`).

    `release`: every freed block over 128 KiB goes back to the system (fixed mmap and trim thresholds), so
    the resident memory follows what is live and a peak rise measures a call's working memory, for torch's
    allocator as for XLA's; without it a warm process reuses memory it already holds and shows no rise. It
    costs a page fault per large allocation, which can slow torch (allocating per op) more than XLA (one
    buffer plan per call): a run with it on throughout gave torch's 25-frame inference 4.4 s against 1.9-2.2 s
    since, though in isolation it measured 1.92 s with and 1.97 s without. So `PeakRSS` switches it on only
    around the calls whose memory it measures, and timing runs with `release=False`: the steady state
    of glibc's dynamic thresholds (mmap 32 MiB, trim 64 MiB), what a long-running process converges to.
    """
    mmap_threshold, trim_threshold = (128 * 1024, 128 * 1024) if release else (32 * 2**20, 64 * 2**20)
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )


def _libc() -> Any:
    """glibc through ctypes, or None where it is not (another libc, another OS)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _trim_heap() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Context manager: the peak rise of resident memory over its start, sampled every 2 ms (Linux)."""

    def __enter__(self) -> PeakRSS:
        release_freed_memory(True)
        gc.collect()  # let the other framework's freed buffers leave first, so they cannot hide a rise
        _trim_heap()  # and hand the free memory the process still holds back to the system
        time.sleep(0.2)
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        release_freed_memory(False)  # timing runs with glibc's steady-state thresholds

    @property
    def rise_mib(self) -> float:
        return round((self.peak - self.start) / MIB, 1)


def compiled_memory_mib(compiled: Any) -> float | None:
    """Arguments + outputs + temporaries of a compiled XLA executable (aliased outputs counted once), MiB."""
    try:
        m = compiled.memory_analysis()
        total = (
            m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
        )
    except Exception:  # noqa: BLE001 - a backend without memory analysis
        return None
    return round(total / MIB, 1)


def interleaved(jax_call: Callable[[], Any], torch_call: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median seconds of `repeats` alternating calls (after an untimed warm-up call each), peak RSS rises."""
    import jax

    jax.block_until_ready(jax_call())
    torch_call()
    jax_times, torch_times = [], []
    with PeakRSS() as jax_mem:
        jax.block_until_ready(jax_call())
    with PeakRSS() as torch_mem:
        torch_call()
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(jax_call())
        jax_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch_call()
        torch_times.append(time.perf_counter() - t0)
    jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)
    return {
        "jax_s": round(jax_s, 4),
        "torch_s": round(torch_s, 4),
        "ratio": round(jax_s / torch_s, 3),
        "jax_rss_rise_mib": jax_mem.rise_mib,
        "torch_rss_rise_mib": torch_mem.rise_mib,
        "load1": round(os.getloadavg()[0], 2),
    }


def timed_compile(jitted: Any, *args: Any) -> tuple[Any, float, float | None]:
    """(compiled executable, lower + compile seconds, compiled memory MiB)."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, round(time.perf_counter() - t0, 2), compiled_memory_mib(compiled)


class Bench:
    """The two models with the same weights, and the measurements of one configuration."""

    def __init__(self, args: argparse.Namespace) -> None:
        import jax
        import jax.numpy as jnp
        import numpy as np

        from lsta_jax.convert.lsta import export_state_dict, torch_model_from_state_dict
        from lsta_jax.models import create_model

        self.args = args
        # the full-size model (GTEA61 head), as JSON config: also what the torch reference is built from
        self.config = {
            "num_classes": 61,
            "mem_size": 512,
            "c_cam_classes": 100,
            "attention_classes": 1000,
            "backbone_stage_sizes": [3, 4, 6, 3],
            "backbone_widths": [64, 128, 256, 512],
            "dropout_rate": 0.7,
            "scan_unroll": args.scan_unroll,
        }
        self.model = create_model("lsta_rgb", **self.config)
        shapes = jax.eval_shape(
            self.model.init, jax.random.key(0), jnp.zeros((1, 1, args.size, args.size, 3), jnp.float32)
        )
        rng = np.random.default_rng(0)

        def fill(path: Any, leaf: Any) -> Any:
            name, shape = path[-1].key, leaf.shape
            if name == "kernel":
                value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
            elif name in ("scale", "var"):
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0.0, 0.1, shape)
            return np.asarray(value, np.float32)

        self.variables = jax.tree_util.tree_map_with_path(fill, shapes)
        torch_config = {k: v for k, v in self.config.items() if k != "scan_unroll"}
        state_dict = export_state_dict(torch_config, self.variables)
        self.torch_model = torch_model_from_state_dict(torch_config, state_dict)
        self.variables = jax.tree_util.tree_map(jnp.asarray, self.variables)
        self.rng = np.random.default_rng(1)

    # --- inputs ---------------------------------------------------------------------------------------------
    def clips(self, batch: int, frames: int) -> tuple[Any, Any, Any, Any]:
        """(jax clip (B,T,H,W,3), torch clip (T,B,3,H,W), jax labels, torch labels): the same numbers."""
        import jax.numpy as jnp
        import numpy as np
        import torch

        s = self.args.size
        clip = self.rng.normal(size=(batch, frames, s, s, 3)).astype(np.float32)
        label = self.rng.integers(0, 61, batch).astype(np.int32)
        torch_clip = torch.from_numpy(np.ascontiguousarray(clip.transpose(1, 0, 4, 2, 3)))
        return jnp.asarray(clip), torch_clip, jnp.asarray(label), torch.from_numpy(label.astype(np.int64))

    # --- inference ------------------------------------------------------------------------------------------
    def inference(self, batch: int, frames: int) -> dict[str, Any]:
        import jax
        import torch

        clip, torch_clip, _, _ = self.clips(batch, frames)
        forward = jax.jit(lambda v, c: self.model.apply(v, c)["logits"])
        compiled, compile_s, memory = timed_compile(forward, self.variables, clip)
        self.torch_model.eval()

        def torch_call() -> Any:
            with torch.inference_mode():
                return self.torch_model(torch_clip)[0]

        r = interleaved(lambda: compiled(self.variables, clip), torch_call, self.args.repeats)
        return {
            "work": "inference",
            "batch": batch,
            "frames": frames,
            **r,
            "jax_clips_per_s": round(batch / r["jax_s"], 3),
            "torch_clips_per_s": round(batch / r["torch_s"], 3),
            "compile_s": compile_s,
            "jax_compiled_mib": memory,
        }

    # --- train steps ----------------------------------------------------------------------------------------
    def jax_train(self, stage: str, model: Any = None) -> tuple[Any, Any]:
        """(state, jitted train step) of `trainer` for `stage`, on a fresh copy of the weights."""
        import jax
        import jax.numpy as jnp

        from lsta_jax.train import trainer
        from lsta_jax.train.config import default_config

        config = default_config()
        config.trainable = stage
        model = model or self.model
        variables = jax.tree_util.tree_map(jnp.array, self.variables)
        state, tx, mask, _ = trainer.create_train_state(config, model, 100, variables)
        steps = trainer.compile_steps(model, tx, mask)
        return steps.replicate(state), steps

    def torch_train(self, stage: str) -> Callable[[Any, Any], Any]:
        """torch's step for `stage`: Adam on exactly the stage's parameters, the rest requires_grad=False."""
        import torch

        from lsta_jax.convert.lsta import lsta_rgb_name_map
        from lsta_jax.train import optimizer as opt

        model = self.torch_model
        mask = opt.trainable_mask(self.variables["params"], stage)
        trained = {opt.param_path(p) for p, m in _leaves_with_path(mask) if m}
        name_map = lsta_rgb_name_map(self.config)
        params = []
        for name, p in model.named_parameters():
            p.requires_grad_("/".join(name_map[name].path) in trained)
            if p.requires_grad:
                params.append(p)
        if len(params) != len(trained):
            raise RuntimeError(f"torch trains {len(params)} tensors but the {stage} mask {len(trained)}")
        adam = torch.optim.Adam(params, lr=1e-3, weight_decay=5e-4, eps=1e-4)
        model.eval()  # BatchNorm on running statistics (docs/differences.md §5) ...
        model.dropout.train()  # ... and the classifier's dropout active

        def step(clip: Any, label: Any) -> Any:
            adam.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(clip)[0], label)
            loss.backward()
            adam.step()
            return loss

        return step

    def train(self, stage: str, batch: int, frames: int) -> dict[str, Any]:
        clip, torch_clip, label, torch_label = self.clips(batch, frames)
        state, steps = self.jax_train(stage)
        data = steps.put_batch({"clip": clip, "label": label})
        compiled, compile_s, memory = timed_compile(steps.train, state, data)
        jax_call = _train_steps(compiled, state, data)
        torch_step = self.torch_train(stage)
        r = interleaved(jax_call, lambda: torch_step(torch_clip, torch_label), self.args.repeats)
        return {
            "work": f"{stage} train step",
            "batch": batch,
            "frames": frames,
            **r,
            "compile_s": compile_s,
            "jax_compiled_mib": memory,
        }

    def train_stage1(self, batch: int, frames: int) -> dict[str, Any]:
        return self.train("stage1", batch, frames)

    # --- levers (jax only, against the default) -------------------------------------------------------------
    def lever_gate_convs(self, batch: int, frames: int) -> dict[str, Any]:
        """Stage-1 step: the former default (XLA convolutions, scan fully unrolled) against the current one
        (gate convolutions as im2col matmuls, `--scan-unroll`, rolled by default)."""

        from lsta_jax.models import create_model

        clip, _, label, _ = self.clips(batch, frames)
        out: dict[str, Any] = {
            "lever": "gate convs + scan loop (stage-1 step)",
            "batch": batch,
            "frames": frames,
        }
        settings = (("before", "xla", "full"), ("after", "im2col", self.args.scan_unroll))
        for key, implementation, unroll in settings:
            model = create_model(
                "lsta_rgb", **{**self.config, "scan_unroll": unroll, "gate_conv": implementation}
            )
            state, steps = self.jax_train("stage1", model)
            data = steps.put_batch({"clip": clip, "label": label})
            compiled, compile_s, memory = timed_compile(steps.train, state, data)
            out[f"{key}_s"] = _median_time(_train_steps(compiled, state, data), self.args.repeats)
            out[f"{key}_compile_s"] = compile_s
            out[f"{key}_compiled_mib"] = memory
            out[key] = f"{implementation} convs, scan_unroll={unroll}"
        return out

    def lever_backbone_chunk(self, batch: int, frames: int) -> dict[str, Any]:
        """Inference: the backbone over all B*T frames in one call against chunks (`backbone_chunk`)."""
        import jax

        from lsta_jax.models import create_model

        clip, _, _, _ = self.clips(batch, frames)
        out: dict[str, Any] = {
            "lever": "backbone over frame chunks (inference)",
            "batch": batch,
            "frames": frames,
        }
        for key, chunk in (("before", 0), ("after", self.model.backbone_chunk)):
            model = create_model("lsta_rgb", **{**self.config, "backbone_chunk": chunk})
            forward = jax.jit(lambda v, c, model=model: model.apply(v, c)["logits"])
            compiled, compile_s, memory = timed_compile(forward, self.variables, clip)
            out[f"{key}_s"] = _median_time(lambda c=compiled: c(self.variables, clip), self.args.repeats)
            out[f"{key}_compile_s"] = compile_s
            out[f"{key}_compiled_mib"] = memory
            out[key] = f"backbone_chunk={chunk}"
        return out

    def lever_frozen_grads(self, stage: str, batch: int, frames: int) -> dict[str, Any]:
        """Gradient of the loss w.r.t. all parameters (then masked) against w.r.t. the trainable ones only."""
        import jax
        import jax.numpy as jnp

        from lsta_jax.models import create_model
        from lsta_jax.train import optimizer as opt

        clip, _, label, _ = self.clips(batch, frames)
        params, rest = self.variables["params"], {"batch_stats": self.variables["batch_stats"]}
        mask = opt.trainable_mask(params, stage)

        # the backbone in one call, as in training (`backbone_chunk` maps it in a loop, slow to differentiate)
        model = create_model("lsta_rgb", **{**self.config, "backbone_chunk": 0})

        def loss(p: Any) -> Any:
            logits = model.apply({**rest, "params": p}, clip)["logits"]
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), label[:, None], 1))

        def masked_full(p: Any) -> Any:  # before: every leaf differentiated, frozen grads dropped afterwards
            g = jax.grad(loss)(p)
            return jax.tree_util.tree_map(lambda x, m: x if m else None, g, mask)

        def split(p: Any) -> Any:  # after: `optimizer.partition_params`
            trainable, frozen = opt.partition_params(p, mask)
            return jax.grad(lambda t: loss(opt.combine_params(t, frozen, mask)))(trainable)

        out: dict[str, Any] = {"lever": f"frozen-parameter split ({stage} gradient)", "batch": batch}
        out["frames"] = frames
        for key, fn in (("before", masked_full), ("after", split)):
            compiled, compile_s, _ = timed_compile(jax.jit(fn), params)
            out[f"{key}_s"] = _median_time(lambda c=compiled: c(params), self.args.repeats)
            out[f"{key}_compile_s"] = compile_s
        out["before"], out["after"] = "grad of all params, masked", "grad of the trainable part only"
        return out

    # --- accelerator memory plan (compiled, not run) --------------------------------------------------------
    def memory_plan(self, batch: int, frames: int) -> list[dict[str, Any]]:
        import jax
        import numpy as np

        from lsta_jax.models import create_model

        rows = []
        for remat in (False, True):
            for stage in ("stage1", "stage2"):
                model = create_model("lsta_rgb", **{**self.config, "remat": remat, "scan_unroll": 1})
                state, steps = self.jax_train(stage, model)
                s = self.args.size
                data = {
                    "clip": jax.ShapeDtypeStruct((batch, frames, s, s, 3), np.float32, sharding=steps.data),
                    "label": jax.ShapeDtypeStruct((batch,), np.int32, sharding=steps.data),
                }
                _, compile_s, memory = timed_compile(steps.train, state, data)
                rows.append(
                    {
                        "work": f"{stage} train step",
                        "batch": batch,
                        "frames": frames,
                        "remat": remat,
                        "scan_unroll": 1,
                        "compiled_mib": memory,
                        "compile_s": compile_s,
                    }
                )
                _progress(f"memory plan {stage} remat={remat}: {memory} MiB (compiled in {compile_s} s)")
        return rows


def _train_steps(compiled: Any, state: Any, data: Any) -> Callable[[], Any]:
    """A call that runs one compiled train step from the state the previous call left; returns its metrics."""
    holder = [state]

    def step() -> Any:
        holder[0], metrics = compiled(holder[0], data)
        return metrics

    return step


def _median_time(call: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `repeats` calls after one untimed call."""
    import jax

    jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def _leaves_with_path(tree: Any) -> list[tuple[Any, Any]]:
    import jax

    return jax.tree_util.tree_leaves_with_path(tree)


def _progress(text: str) -> None:
    print(f"[versus_torch {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the side-by-side rows."""
    head = (
        "| work | batch | frames | lsta_jax s | torch s | jax/torch time | jax compile s | jax MiB compiled |"
    )
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['work']} | {r['batch']} | {r['frames']} | {r['jax_s']:.3f} | {r['torch_s']:.3f} | "
            f"{r['ratio']:.2f}x | {r['compile_s']:.1f} | {r['jax_compiled_mib']} |"
        )
    return "\n".join(lines)


def format_levers(rows: Sequence[dict[str, Any]]) -> str:
    """Before/after table of the levers: time, and compile seconds and compiled MiB where measured."""

    def pair(r: dict[str, Any], key: str) -> str:
        before, after = r.get(f"before_{key}"), r.get(f"after_{key}")
        return "" if before is None or after is None else f"{before} -> {after}"

    lines = [
        "| lever | batch | frames | before | s | after | s | after/before | compile s | compiled MiB |",
        "| --- " * 10 + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lever']} | {r['batch']} | {r['frames']} | {r['before']} | {r['before_s']:.3f} | "
            f"{r['after']} | {r['after_s']:.3f} | {r['after_s'] / r['before_s']:.2f}x | "
            f"{pair(r, 'compile_s')} | {pair(r, 'compiled_mib')} |"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Seconds against frames and against batch, jax and torch, per work."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ax, key, axis in ((axes[0], "frames_sweep", "frames"), (axes[1], "batch_sweep", "batch")):
        rows = result.get(key, [])
        for work in sorted({r["work"] for r in rows}):
            sel = sorted((r for r in rows if r["work"] == work), key=lambda r: r[axis])
            xs = [r[axis] for r in sel]
            ax.plot(xs, [r["jax_s"] for r in sel], "o-", label=f"lsta_jax {work}")
            ax.plot(xs, [r["torch_s"] for r in sel], "s--", label=f"torch {work}")
        ax.set_xlabel(axis)
        ax.set_ylabel("seconds per call")
        fixed = "batch" if axis == "frames" else "frames"
        ax.set_title(f"cost vs {axis} ({fixed} {rows[0][fixed] if rows else '?'})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    rows = [r for r in result.get("frames_sweep", []) if r["work"] == "inference"]
    rows.sort(key=lambda r: r["frames"])
    xs = [r["frames"] for r in rows]
    ax.plot(xs, [r["jax_compiled_mib"] for r in rows], "o-", label="lsta_jax compiled (XLA analysis)")
    ax.plot(xs, [r["jax_rss_rise_mib"] for r in rows], "^-", label="lsta_jax peak RSS rise")
    ax.plot(xs, [r["torch_rss_rise_mib"] for r in rows], "s--", label="torch peak RSS rise")
    ax.set_xlabel("frames")
    ax.set_ylabel("MiB")
    ax.set_title("inference memory vs frames (batch 1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    m = result["machine"]
    fig.suptitle(f"lsta_jax vs torch reference: {m['cpu']}, {m['cores']} cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = cli.ArgumentParser(
        prog="python -m lsta_jax.benchmarks.versus_torch",
        description=__doc__,
    )
    p.add_argument(
        "--quick", action="store_true", help="4 frames, batch 2, small sweeps: a few minutes on a CPU"
    )
    p.add_argument("--output", default="bench_out", help="directory for versus_torch.json/.png (created)")
    p.add_argument(
        "--frames", type=cli.positive_int, default=None, help="frames of the main rows (25; --quick: 4)"
    )
    p.add_argument("--train-batch", type=cli.positive_int, default=2, help="batch of the train-step rows")
    p.add_argument("--infer-batches", type=_ints, default=None, help="inference batches (1,8; --quick: 1,2)")
    p.add_argument(
        "--frames-sweep", type=_ints, default=None, help="frames, batch 1 (1,5,10,25,50; quick 1,4)"
    )
    p.add_argument("--batch-sweep", type=_ints, default=None, help="batches at --frames (1,2,4,8; quick 1,2)")
    p.add_argument("--size", type=cli.positive_int, default=224, help="frame size in pixels")
    p.add_argument("--repeats", type=cli.positive_int, default=3, help="timed calls per measurement (median)")
    p.add_argument(
        "--threads", type=cli.positive_int, default=os.cpu_count(), help="torch threads (XLA uses every core)"
    )
    p.add_argument("--scan-unroll", default="auto", help="the model's scan_unroll ('auto', 'full' or an int)")
    p.add_argument("--no-levers", action="store_true", help="skip the lever before/after rows")
    p.add_argument("--memory-plan", action="store_true", help="also compile the paper's batch-32 steps")
    p.add_argument("--plan-batch", type=cli.positive_int, default=32, help="batch of --memory-plan")
    p.add_argument("--memory-plan-only", action="store_true", help="only the memory plan (no timing)")
    p.add_argument(
        "--from-json", default=None, help="only print the tables and redraw the PNG of a saved run"
    )
    args = p.parse_args(argv)
    args.scan_unroll = int(args.scan_unroll) if args.scan_unroll.isdigit() else args.scan_unroll
    if args.frames is None:
        args.frames = 4 if args.quick else 25
    if args.infer_batches is None:
        args.infer_batches = [1, 2] if args.quick else [1, 8]
    if args.frames_sweep is None:
        args.frames_sweep = [1, 4] if args.quick else [1, 5, 10, 25, 50]
    if args.batch_sweep is None:
        args.batch_sweep = [1, 2] if args.quick else [1, 2, 4, 8]
    if args.quick:
        args.repeats = min(args.repeats, 2)
    if args.memory_plan_only:
        args.memory_plan, args.no_levers = True, True
        args.infer_batches = args.frames_sweep = args.batch_sweep = []
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        path = Path(args.from_json)
        if not path.is_file():
            print(f"versus_torch: no such file {path}", file=sys.stderr)
            return 2
        report(json.loads(path.read_text()), path.parent)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    result["machine"]["peak_rss_measurable"] = release_freed_memory(False)  # PeakRSS switches it on
    _progress(f"machine {result['machine']}")
    bench = Bench(args)
    f, b = args.frames, args.train_batch
    json_path = output / "versus_torch.json"

    def save() -> None:  # after every measurement, so an interrupted run keeps what it measured
        json_path.write_text(json.dumps(result, indent=2) + "\n")

    rows: list[dict[str, Any]] = []
    result["main"] = rows
    for batch in args.infer_batches:
        rows.append(bench.inference(batch, f))
        _progress(f"inference batch {batch}: {rows[-1]}")
        save()
    for stage in () if args.memory_plan_only else ("stage1", "stage2"):
        rows.append(bench.train(stage, b, f))
        _progress(f"{stage} batch {b}: {rows[-1]}")
        save()
    if not args.no_levers:
        result["levers"] = [bench.lever_gate_convs(b, f), bench.lever_backbone_chunk(1, f)]
        _progress(f"levers: {result['levers']}")
        for stage in ("stage1", "stage2"):
            result["levers"].append(bench.lever_frozen_grads(stage, b, f))
            _progress(f"lever: {result['levers'][-1]}")
            save()
    sweeps: dict[str, list[dict[str, Any]]] = {"frames_sweep": [], "batch_sweep": []}
    result.update(sweeps)
    done = {(r["work"], r["batch"], r["frames"]): r for r in rows}  # a shape measured once per run

    def sweep(key: str, batch: int, frames: int) -> None:
        for work, measure in (("inference", bench.inference), ("stage1 train step", bench.train_stage1)):
            if (work, batch, frames) not in done:
                done[work, batch, frames] = measure(batch, frames)
                _progress(f"{key}: {done[work, batch, frames]}")
            sweeps[key].append(done[work, batch, frames])
            save()

    for frames in args.frames_sweep:
        sweep("frames_sweep", 1, frames)
    for batch in args.batch_sweep:
        sweep("batch_sweep", batch, f)
    if args.memory_plan:
        result["memory_plan"] = bench.memory_plan(args.plan_batch, f)
        save()
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    save()
    report(result, output)
    return 0


def report(result: dict[str, Any], output: Path) -> None:
    """Print the tables of a result and write its PNG next to the JSON."""
    plot(result, output / "versus_torch.png")
    args = argparse.Namespace(**result["args"])
    f = args.frames
    rows = result.get("main", [])
    sweeps = {k: result.get(k, []) for k in ("frames_sweep", "batch_sweep")}
    m = result["machine"]
    end = f"{m['loadavg_end'][0]:.1f}" if "loadavg_end" in m else "?"
    print(
        f"lsta_jax vs torch reference on {m['cpu']} ({m['cores']} cores, jax {m['jax']}, torch {m['torch']}, "
        f"{m['torch_threads']} torch threads); load average {m['loadavg_start'][0]:.1f} at start, "
        f"{end} at end; medians of {args.repeats} interleaved calls, {args.size} px"
    )
    print(format_table(rows))
    print("\ncost as frames grow (batch 1) and as the batch grows (" + str(f) + " frames):")
    print(format_table(sweeps["frames_sweep"] + sweeps["batch_sweep"]))
    if "levers" in result:
        print("\nlevers (lsta_jax only):")
        print(format_levers(result["levers"]))
    if "memory_plan" in result:
        print("\ncompiled memory of the paper's run (not run here):")
        for r in result["memory_plan"]:
            print(
                f"  {r['work']} batch {r['batch']} frames {r['frames']} remat={r['remat']}: "
                f"{r['compiled_mib']} MiB"
            )
    print(f"\nwrote {output / 'versus_torch.json'} and {output / 'versus_torch.png'}")


if __name__ == "__main__":
    sys.exit(main())
