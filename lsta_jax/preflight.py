"""Will a run fit a TPU slice? Compile its jitted functions for a named topology on a CPU host, no TPU needed.

    python -m lsta_jax.preflight --config configs/gtea61.py --topology v5e:2x4 [--batch 32] \\
        [--config.model.dtype=bfloat16 ...]

With libtpu installed (`pip install -e '.[tpu]'`), `jax.experimental.topologies.get_topology_desc` describes
the chips of a slice (v4:2x2x1, v5e:2x4, v5e:4x4 = 4 hosts, ...) without any of them present, and the TPU
compiler compiles for them. The command builds the run exactly as `lsta_jax.train` does (the config's model
and optimiser, `trainer.compile_steps` over `trainer.create_mesh` of ALL the slice's chips, the global batch
sharded on its leading axis; each host feeds global_batch / hosts clips) and lowers, with abstract inputs
(`jax.ShapeDtypeStruct`, nothing allocated):
  train      the train step of the config's stage (its trainable mask, gradient accumulation, donated state)
  eval       the eval step at `eval_batch_size`
  inference  `inference.forward` (predict / extract / evaluate), on ONE host's chips at `eval_batch_size`
             (clip classifiers only)
For each it prints per chip (per TensorCore on v4, which libtpu describes as 2 devices per chip, each
with half the chip's HBM and peak) the XLA buffer sizes (arguments, outputs, temporaries, total net of the
donated state) against the HBM, the FLOPs per step, HLO op counts and the compile time, and an ESTIMATED step
time = FLOPs / published peak bf16 FLOP/s (a lower bound: no input, no communication, 100% MXU use). XLA's
cost analysis counts the body of a while loop once, whatever its trip count: the FLOPs of a program with
rolled loops (the cells' time loop, `backbone_chunk`) are a lower bound; `--config.model.scan_unroll=full`
unrolls the time loop for the full count.

When a function does not fit, the command exits 1 with one line naming the largest global batch that fits
(a multiple of the chip count x `grad_accum_steps`): a linear memory model of the train step from two
compiles, its prediction compiled and the next multiple compiled as not fitting (steps up and bisection where
the line was wrong).

Config fields set to 'auto' that depend on the backend (`model.gate_conv`) are resolved for the TPU, not for
the CPU host the command runs on. Compiles take tens of seconds each for the full-size models on a CPU host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from lsta_jax import cli

GIB = 1024**3
INSTALL_HINT = "pip install -e '.[tpu]' (or make venv-tpu)"


@dataclasses.dataclass(frozen=True)
class Chip:
    """A TPU generation: HBM per chip and peak dense bf16 FLOP/s per chip (Google Cloud's published specs)."""

    name: str
    hbm_gib: float
    peak_bf16_flops: float


#: topology-name prefix -> chip (cloud.google.com/tpu/docs/v4, v5e, v5p, v6e: HBM and peak bf16 per chip)
CHIPS: dict[str, Chip] = {
    "v4": Chip("TPU v4", 32.0, 275e12),
    "v5e": Chip("TPU v5e", 16.0, 197e12),
    "v5p": Chip("TPU v5p", 95.0, 459e12),
    "v6e": Chip("TPU v6e", 32.0, 918e12),
}

#: slices sold as ONE host (libtpu's default describes them as hosts of 2x2 chips): v5litepod-8, v6e-8
ONE_HOST_SLICES: dict[str, tuple[int, int, int]] = {"v5e:2x4": (2, 4, 1), "v6e:2x4": (2, 4, 1)}

FUNCTIONS = ("train", "eval", "inference")
MAX_BATCH = 1 << 16  # the batch search stops here


class PreflightError(RuntimeError):
    """A problem with the command's inputs, reported as one line."""


def libtpu_installed() -> bool:
    """Whether the TPU compiler (the `libtpu` package) is importable."""
    return importlib.util.find_spec("libtpu") is not None


def chip_of(topology: str) -> Chip:
    """The `Chip` of a topology name such as 'v5e:2x4'."""
    prefix = topology.split(":", 1)[0].lower()
    if prefix not in CHIPS:
        raise PreflightError(
            f"unknown TPU generation {prefix!r} in topology {topology!r}; known: {', '.join(CHIPS)} "
            "(e.g. v5e:2x4, v4:2x2x1)"
        )
    return CHIPS[prefix]


def topology_devices(topology: str, chips_per_host: tuple[int, int, int] | None = None) -> list[Any]:
    """The devices of a TPU slice, described by libtpu on this (device-less) host, in process order; hosts of
    `chips_per_host` chips (default: `ONE_HOST_SLICES`, else libtpu's host size)."""
    if not libtpu_installed():
        raise PreflightError(f"compiling for a TPU needs libtpu: {INSTALL_HINT}")
    # libtpu's lockfile serialises processes that drive real chips; these descriptions drive none, so several
    # compiling processes on one host are fine.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    try:
        bounds = chips_per_host or ONE_HOST_SLICES.get(topology)
        extra = {"chips_per_host_bounds": tuple(bounds)} if bounds else {}
        description = topologies.get_topology_desc(platform="tpu", topology_name=topology, **extra)
    except Exception as exc:  # libtpu reports a bad name as a runtime error
        raise PreflightError(f"libtpu cannot describe topology {topology!r}: {exc}".splitlines()[0]) from exc
    return sorted(description.devices, key=lambda d: (d.process_index, d.id))


def resolve_backend_defaults(config: Any, platform: str) -> dict[str, Any]:
    """Replace the model fields whose 'auto' depends on the backend by their value on `platform` (in place);
    returns {field: value} of what was resolved."""
    from lsta_jax.models import cells

    resolved = {}
    if config.model.get("gate_conv", None) == "auto":
        with config.model.unlocked():
            config.model.gate_conv = cells.resolve_gate_conv("auto", platform)
        resolved["gate_conv"] = config.model.gate_conv
    return resolved


def build_model(config: Any) -> Any:
    """The config's model, as `trainer.train_and_evaluate` builds it (class counts must be set)."""
    from lsta_jax.models import create_model, registry
    from lsta_jax.train import trainer

    if config.model.num_classes <= 0:
        raise PreflightError(
            "config.model.num_classes is 0 (taken from the dataset in training): set "
            "--config.model.num_classes=N"
        )
    if (
        config.model.get("verb_classes", None) == 0
        and registry.model_kind(config.model.kind).selector_from_init
    ):
        raise PreflightError(
            "config.model.verb_classes is 0 (taken from the motion stream's checkpoint in training): set "
            "--config.model.verb_classes=N"
        )
    return create_model(config.model.kind, **trainer.model_config(config))


def abstract_variables(config: Any, model: Any) -> dict[str, Any]:
    """ShapeDtypeStructs of the model's variables (`params`, `batch_stats`), nothing computed."""
    import jax

    from lsta_jax.train import trainer

    inputs = trainer.example_inputs(config)
    return dict(jax.eval_shape(lambda k: model.init(k, **inputs), jax.random.PRNGKey(0)))


def abstract_batch(config: Any, model: Any, batch: int, train: bool) -> dict[str, Any]:
    """ShapeDtypeStructs of a global batch as the input pipeline yields it (`lsta_jax.data.pipeline`):
    the model inputs (float32), `label` int32, `verb`/`noun` for multi-task heads, `mask` for evaluation."""
    import jax
    import jax.numpy as jnp

    from lsta_jax.train import trainer

    out = {
        k: jax.ShapeDtypeStruct((batch, *v.shape[1:]), v.dtype)
        for k, v in trainer.example_inputs(config).items()
    }
    out["label"] = jax.ShapeDtypeStruct((batch,), jnp.int32)
    if getattr(model, "verb_classes", 0) > 0 and getattr(model, "noun_classes", 0) > 0:
        out["verb"] = jax.ShapeDtypeStruct((batch,), jnp.int32)
        out["noun"] = jax.ShapeDtypeStruct((batch,), jnp.int32)
    if not train:
        out["mask"] = jax.ShapeDtypeStruct((batch,), jnp.bool_)
    return out


def _with_sharding(tree: Any, sharding: Any) -> Any:
    import jax

    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


@dataclasses.dataclass
class CompiledReport:
    """Per-chip numbers of one compiled function (bytes, FLOPs) and its compile time in seconds."""

    function: str
    global_batch: int
    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    code: int
    flops: float
    compile_s: float
    convolutions: int
    while_loops: int

    @property
    def total(self) -> int:
        """Bytes resident on a chip while the function runs (donated arguments counted once)."""
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code


def hlo_op_counts(hlo_text: str) -> dict[str, int]:
    """Convolution and while-loop instructions of a compiled module's HLO text (fusion bodies included)."""
    return {
        "convolutions": len(re.findall(r"\bconvolution\(", hlo_text)),
        "while_loops": len(re.findall(r"\bwhile\(", hlo_text)),
    }


#: (topology, sha256 of the lowered program) -> (its report, the executable): a program already compiled in
#: this process for the same slice (the batch search, a table of several rows) is not compiled again.
_COMPILED: dict[tuple[str, str], tuple[CompiledReport, Any]] = {}


_OUT_OF_MEMORY = re.compile(r"RESOURCE_EXHAUSTED: .*?required for HLO temporaries \(([0-9.]+)([KMGT])\)")


def out_of_memory_bytes(message: str) -> int | None:
    """The temporaries' bytes named by the TPU compiler's out-of-HBM refusal ('... the total memory required
    for HLO temporaries (16.49G) exceeds available HBM ...'); None for any other error."""
    match = _OUT_OF_MEMORY.search(message)
    if match is None:
        return None
    return int(float(match.group(1)) * 1024 ** "KMGT".index(match.group(2)) * 1024)


def compile_lowered(function: str, batch: int, lowered: Any, topology: str) -> tuple[CompiledReport, Any]:
    """Compile `lowered` for `topology`; its report (XLA's per-chip memory and cost analyses, not
    `optimal_seconds`, which the TPU cost model reports as a negative number for these programs) and the
    executable (`input_formats`: the layouts of the arguments). A program the compiler refuses for want of
    HBM gives a report holding only the temporaries it asked for (so it does not fit) and no executable."""
    key = (topology, hashlib.sha256(lowered.as_text().encode()).hexdigest())
    if key in _COMPILED:
        report, compiled = _COMPILED[key]
        return dataclasses.replace(report, function=function, global_batch=batch), compiled
    start = time.perf_counter()
    try:
        compiled = lowered.compile()
    except Exception as e:  # jax.errors.JaxRuntimeError: the TPU compiler refuses what cannot fit in HBM
        required = out_of_memory_bytes(str(e))
        if required is None:
            raise
        report = CompiledReport(function, batch, 0, 0, 0, required, 0, 0.0, time.perf_counter() - start, 0, 0)
        return report, None
    seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    counts = hlo_op_counts(compiled.as_text())
    report = CompiledReport(
        function=function,
        global_batch=batch,
        arguments=int(memory.argument_size_in_bytes),
        outputs=int(memory.output_size_in_bytes),
        aliased=int(memory.alias_size_in_bytes),
        temporaries=int(memory.temp_size_in_bytes),
        code=int(memory.generated_code_size_in_bytes),
        flops=float(cost.get("flops", 0.0)),
        compile_s=seconds,
        **counts,
    )
    _COMPILED[key] = report, compiled
    return report, compiled


@dataclasses.dataclass
class Target:
    """A TPU slice: its name, chip, devices (all hosts) and host count."""

    topology: str
    chip: Chip
    devices: list[Any]

    @property
    def hosts(self) -> int:
        return len({d.process_index for d in self.devices})

    @property
    def cores_per_chip(self) -> int:
        """JAX devices per chip: 2 on v4, whose two TensorCores libtpu describes as two devices (no megacore),
        each with half the chip's HBM and peak; 1 on v5e, v5p and v6e."""
        return len({getattr(d, "core_on_chip", 0) for d in self.devices})

    @property
    def hbm_gib(self) -> float:
        """HBM per JAX device."""
        return self.chip.hbm_gib / self.cores_per_chip

    @property
    def peak_flops(self) -> float:
        """Peak bf16 FLOP/s per JAX device."""
        return self.chip.peak_bf16_flops / self.cores_per_chip

    @property
    def local_devices(self) -> list[Any]:
        """The chips of one host (process 0), where inference runs."""
        return [d for d in self.devices if d.process_index == self.devices[0].process_index]


def make_target(topology: str, chips_per_host: tuple[int, int, int] | None = None) -> Target:
    return Target(topology, chip_of(topology), topology_devices(topology, chips_per_host))


class RunCompiler:
    """Lowers and compiles the jitted functions of one config for one `Target` at any global batch."""

    def __init__(self, config: Any, target: Target) -> None:
        from lsta_jax.train import optimizer as opt
        from lsta_jax.train import trainer

        self.config, self.target = config, target
        self.model = build_model(config)
        self.variables = abstract_variables(config, self.model)
        params = self.variables["params"]
        tx, self.mask, _ = opt.make_optimizer(config, params, steps_per_epoch=100)
        self.tx = tx
        import jax
        import jax.numpy as jnp

        self.state = trainer.TrainState(
            step=jax.ShapeDtypeStruct((), jnp.int32),
            params=params,
            batch_stats=self.variables.get("batch_stats", {}),
            opt_state=jax.eval_shape(tx.init, params),
            rng=jax.eval_shape(lambda: jax.random.PRNGKey(0)),
        )
        self.mesh = trainer.create_mesh(target.devices)
        #: (function, global batch) -> the compiled executable
        self.executables: dict[tuple[str, int], Any] = {}
        self.steps = trainer.compile_steps(
            self.model,
            tx,
            self.mask,
            config.grad_accum_steps,
            mesh=self.mesh,
            loss_weights=trainer.loss_weights(config),
        )

    @property
    def batch_multiple(self) -> int:
        """Global batches must be multiples of this: every chip (and micro-batch) gets the same share."""
        return len(self.target.devices) * int(self.config.grad_accum_steps)

    def _compile(self, function: str, batch: int, lowered: Any) -> CompiledReport:
        report, self.executables[(function, batch)] = compile_lowered(
            function, batch, lowered, self.target.topology
        )
        return report

    def check_batch(self, batch: int) -> None:
        if batch < 1 or batch % self.batch_multiple:
            raise PreflightError(
                f"global batch {batch} is not a multiple of {len(self.target.devices)} chips x "
                f"{self.config.grad_accum_steps} accumulation steps: use a multiple of {self.batch_multiple}"
            )

    def train(self, batch: int) -> CompiledReport:
        self.check_batch(batch)
        state = _with_sharding(self.state, self.steps.replicated)
        data = _with_sharding(abstract_batch(self.config, self.model, batch, train=True), self.steps.data)
        return self._compile("train", batch, self.steps.train.lower(state, data))

    def eval(self, batch: int) -> CompiledReport:
        n = len(self.target.devices)
        batch = -(-batch // n) * n
        variables = {k: v for k, v in self.variables.items() if k in ("params", "batch_stats")}
        variables = _with_sharding(variables, self.steps.replicated)
        data = _with_sharding(abstract_batch(self.config, self.model, batch, train=False), self.steps.data)
        return self._compile("eval", batch, self.steps.eval.lower(variables, data))

    def inference(self, batch: int) -> CompiledReport | None:
        """`inference.forward` on one host's chips (None for models that are not clip classifiers)."""
        import jax
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        from lsta_jax import inference
        from lsta_jax.models import registry
        from lsta_jax.train import trainer

        if not registry.model_kind(self.config.model.kind).clip_classifier:
            return None
        local = self.target.local_devices
        batch = -(-batch // len(local)) * len(local)
        mesh = Mesh(np.asarray(local), ("batch",))
        clip = trainer.example_inputs(self.config)["clip"]
        clips = jax.ShapeDtypeStruct(
            (batch, *clip.shape[1:]), clip.dtype, sharding=NamedSharding(mesh, PartitionSpec("batch"))
        )
        variables = {k: v for k, v in self.variables.items() if k in ("params", "batch_stats")}
        variables = _with_sharding(variables, NamedSharding(mesh, PartitionSpec()))
        return self._compile("inference", batch, inference.forward.lower(self.model, variables, clips, False))

    def compile(self, function: str, batch: int) -> CompiledReport | None:
        return getattr(self, function)(batch)


def fits(report: CompiledReport, hbm_bytes: float) -> bool:
    return report.total <= hbm_bytes


def largest_fitting_batch(
    compile_train: Callable[[int], CompiledReport],
    multiple: int,
    hbm_bytes: float,
    known: Sequence[CompiledReport] = (),
) -> tuple[int, list[CompiledReport]]:
    """The largest multiple of `multiple` whose train step fits `hbm_bytes` per chip (0 if none does), and
    the reports of the compiles it took (`known` ones are reused).

    Per-chip memory is close to affine in the per-chip batch (the state is replicated, activations scale
    with the batch): the smallest batch and the largest known one give a line; its prediction is compiled,
    then the next multiple above it (which must not fit). Where the line was wrong (tile padding, a convex
    curve) the bracket is closed by steps doubling upwards and bisection: the answer is always a compiled
    batch that fits with the next multiple compiled and not fitting.
    """
    reports = {r.global_batch: r for r in known}

    def ok(batch: int) -> bool:
        if batch not in reports:
            reports[batch] = compile_train(batch)
        return fits(reports[batch], hbm_bytes)

    if not ok(multiple):
        return 0, list(reports.values())
    others = [b for b in reports if b != multiple]
    second = max(others) if others else 2 * multiple
    ok(second)
    smallest = reports[multiple]
    slope = (reports[second].total - smallest.total) / (second - multiple)
    if slope > 0:
        predicted = multiple + int((hbm_bytes - smallest.total) / slope) // multiple * multiple
    else:  # flat or noisy: no prediction beyond what was measured
        predicted = second
    good = max(b for b in reports if fits(reports[b], hbm_bytes))
    bad = min((b for b in reports if not fits(reports[b], hbm_bytes)), default=None)
    if bad is not None:
        predicted = min(predicted, bad - multiple)
    if predicted > good:
        if ok(predicted):
            good = predicted
        else:
            bad = predicted
    step = multiple  # upwards from the largest fitting batch, doubling, until one does not fit
    while (bad is None and good < MAX_BATCH) or (bad is not None and good + step < bad):
        if ok(good + step):
            good, step = good + step, 2 * step
        else:
            bad = good + step
    while bad is not None and bad - good > multiple:  # bisection of the bracket
        mid = (good + bad) // 2 // multiple * multiple
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, list(reports.values())


def _gib(n: float) -> str:
    return f"{n / GIB:6.2f}"


def format_report(
    target: Target, config: Any, reports: list[CompiledReport], hbm_bytes: float, resolved: dict[str, Any]
) -> str:
    """The per-chip table of the compiled functions."""
    n = len(target.devices)
    dtype = config.model.get("dtype", "float32")
    lines = [
        f"{config.get('name', config.model.kind)} on {target.topology}: {n} x {target.chip.name} "
        f"({target.hosts} host(s), {target.chip.hbm_gib:g} GiB HBM and "
        f"{target.chip.peak_bf16_flops / 1e12:g} TFLOP/s bf16 peak per chip"
        + (f"; {target.cores_per_chip} devices per chip, numbers per device" * (target.cores_per_chip > 1))
        + f"); model dtype {dtype}"
        + (f"; resolved for TPU: {resolved}" if resolved else ""),
        f"{'function':<10} {'batch':>6} {'/host':>6} {'/chip':>6} {'args':>7} {'outputs':>7} {'temps':>7} "
        f"{'total':>7} {'of HBM':>7} {'GFLOP':>8} {'est. ms':>8} {'convs':>6} {'whiles':>6} {'compile':>8}",
    ]
    for r in reports:
        chips = n if r.function != "inference" else len(target.local_devices)
        hosts = target.hosts if r.function != "inference" else 1
        lines.append(
            f"{r.function:<10} {r.global_batch:>6} {r.global_batch // hosts:>6} {r.global_batch // chips:>6} "
            f"{_gib(r.arguments):>7} {_gib(r.outputs):>7} {_gib(r.temporaries):>7} {_gib(r.total):>7} "
            f"{100 * r.total / hbm_bytes:>6.0f}% {r.flops / 1e9:>8.1f} "
            f"{1e3 * r.flops / target.peak_flops:>8.1f} {r.convolutions:>6} {r.while_loops:>6} "
            f"{r.compile_s:>7.1f}s"
        )
    lines.append(
        "per device (a chip; a TensorCore on v4), GiB; total = args + outputs - donated + temps + code; "
        "est. ms = FLOPs / peak bf16 FLOP/s, an ESTIMATE (a lower bound: no input pipeline, no "
        "communication, full MXU use); FLOPs count each while loop's body ONCE (XLA's cost analysis): with "
        "whiles > 0 they are a lower bound, --config.model.scan_unroll=full gives the cells' full count"
    )
    return "\n".join(lines)


def load_run_config(spec: str, overrides: Sequence[str], batch: int | None) -> Any:
    """The training config of `spec` with `--config.*` overrides and the global (and eval) batch."""
    from lsta_jax.train.config import apply_overrides, load_config

    config = apply_overrides(load_config(spec), list(overrides))
    if batch is not None:
        config.global_batch_size = batch
        config.eval_batch_size = batch
    return config


def run(
    config: Any,
    topology: str,
    functions: Sequence[str] = FUNCTIONS,
    hbm_gib: float | None = None,
    search: bool = True,
    out: Callable[[str], None] = print,
    chips_per_host: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """Compile `functions` of `config` for `topology`; returns a JSON-able summary with `fits` and, when the
    train step does not fit and `search`, `largest_batch` (0: not even the smallest batch)."""
    target = make_target(topology, chips_per_host)
    resolved = resolve_backend_defaults(config, "tpu")
    hbm_bytes = (target.hbm_gib if hbm_gib is None else hbm_gib) * GIB
    compiler = RunCompiler(config, target)
    compiler.check_batch(int(config.global_batch_size))
    reports = []
    for function in functions:
        batch = config.global_batch_size if function == "train" else config.eval_batch_size
        report = compiler.compile(function, int(batch))
        if report is not None:
            reports.append(report)
    out(format_report(target, config, reports, hbm_bytes, resolved))
    summary: dict[str, Any] = {
        "config": config.get("name", config.model.kind),
        "topology": topology,
        "chips": len(target.devices),
        "hosts": target.hosts,
        "chip": target.chip.name,
        "hbm_gib": hbm_bytes / GIB,
        "peak_bf16_flops": target.peak_flops,
        "cores_per_chip": target.cores_per_chip,
        "dtype": str(config.model.get("dtype", "float32")),
        "resolved": resolved,
        "reports": [dict(dataclasses.asdict(r), total=r.total) for r in reports],
        "fits": all(fits(r, hbm_bytes) for r in reports),
    }
    train = [r for r in reports if r.function == "train"]
    if search and train and not fits(train[0], hbm_bytes):
        largest, searched = largest_fitting_batch(
            compiler.train, compiler.batch_multiple, hbm_bytes, known=train
        )
        summary["largest_batch"] = largest
        summary["search"] = [dataclasses.asdict(r) for r in searched]
    return summary


def refusal_line(summary: dict[str, Any], config: Any) -> str:
    """The one line printed when the run does not fit."""
    over = [r for r in summary["reports"] if r["total"] > summary["hbm_gib"] * GIB]
    names = ", ".join(f"{r['function']} {r['total'] / GIB:.2f} GiB" for r in over)
    head = f"does not fit {summary['topology']} ({summary['hbm_gib']:g} GiB HBM per device): {names}"
    if "largest_batch" not in summary:
        return f"{head}; lower --config.eval_batch_size or use bfloat16 (--config.model.dtype=bfloat16)"
    if summary["largest_batch"] == 0:
        return (
            f"{head}; not even global batch {summary['chips'] * config.grad_accum_steps} fits: use "
            "--config.model.dtype=bfloat16, --config.model.remat=True or a larger chip"
        )
    largest = summary["largest_batch"]
    return f"{head}; the largest global batch that fits is {largest} (--batch {largest})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m lsta_jax.preflight",
        description=__doc__,
    )
    parser.add_argument("--config", required=True, help="configs/X.py[:arg], as for lsta_jax.train")
    parser.add_argument(
        "--topology",
        required=True,
        help="TPU slice, e.g. v5e:2x4 (v5e-8), v4:2x2x1 (v4-8), v5e:4x4 (4 hosts)",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="global train and eval batch (default: the config's)"
    )
    parser.add_argument(
        "--functions",
        default=",".join(FUNCTIONS),
        help=f"comma-separated subset of {','.join(FUNCTIONS)} (default: all)",
    )
    parser.add_argument(
        "--hbm-gib",
        type=float,
        default=None,
        help="HBM per device to fit in, GiB (default: the chip's; half of it on v4)",
    )
    parser.add_argument(
        "--chips-per-host",
        default="",
        help="host size as AxBxC chips (default: one host for v5e:2x4 and v6e:2x4, else libtpu's 2x2x1)",
    )
    parser.add_argument("--no-search", action="store_true", help="do not search the largest batch that fits")
    parser.add_argument("--json", default="", help="also write the summary to this JSON file")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        parser.error(f"unrecognised arguments {bad}; model/training fields are --config.field=value")
    text = args.chips_per_host
    try:
        chips_per_host = tuple(int(v) for v in text.split("x")) if text else None
    except ValueError:
        parser.error(f"--chips-per-host {args.chips_per_host!r}: expected AxBxC, e.g. 2x4x1")
    functions = [f for f in args.functions.split(",") if f]
    unknown = sorted(set(functions) - set(FUNCTIONS))
    if unknown:
        parser.error(f"--functions {unknown}: choose from {', '.join(FUNCTIONS)}")
    if not libtpu_installed():
        print(f"lsta_jax.preflight: compiling for a TPU needs libtpu; install it with: {INSTALL_HINT}")
        return 2
    import jax

    try:  # this host computes nothing: keep JAX off any accelerator plugin it would probe
        jax.config.update("jax_platforms", "cpu")
    except RuntimeError:
        pass
    try:
        config = load_run_config(args.config, overrides, args.batch)
        summary = run(
            config, args.topology, functions, args.hbm_gib, not args.no_search, chips_per_host=chips_per_host
        )
    except (PreflightError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"lsta_jax.preflight: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if not summary["fits"]:
        print(refusal_line(summary, config))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
