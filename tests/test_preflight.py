"""`lsta_jax.preflight`: a small run compiled for a TPU slice on this CPU host (libtpu), its per-chip numbers
against the parameter tree, the refusal naming the largest batch that fits, and the batch search itself."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from lsta_jax import preflight

needs_libtpu = pytest.mark.skipif(
    not preflight.libtpu_installed(), reason=f"libtpu is not installed ({preflight.INSTALL_HINT})"
)

TOPOLOGY = "v5e:2x2"  # 4 chips, one host
# the toy clips at 2 frames of 32 px: a full run's structure (backbone, attention, LSTA cell scanned over
# time, Adam, stage-1 mask) at a size the TPU compiler handles in seconds
SMALL = ["--config.data.num_frames=2", "--config.data.crop_size=32"]
SPEC = "configs/synthetic.py:toy"


@pytest.fixture(scope="module")
def compiled():
    config = preflight.load_run_config(SPEC, SMALL, 8)
    resolved = preflight.resolve_backend_defaults(config, "tpu")
    compiler = preflight.RunCompiler(config, preflight.make_target(TOPOLOGY))
    reports = {
        ("train", 4): compiler.train(4),
        ("train", 8): compiler.train(8),
    }
    return config, compiler, reports, resolved


def tiled_bytes(shape: tuple[int, ...], dtype: np.dtype, layout) -> int:
    """Bytes of one array in a TPU layout: dimensions in the layout's major-to-minor order, the minor ones
    rounded up to the layout's first tile (e.g. (8, 128) for float32 matrices), the buffer rounded up to the
    TPU's 512-byte allocation granule (a scalar takes 512 bytes)."""
    dims = [shape[i] for i in layout.major_to_minor]
    tile = layout.tiling[0] if layout.tiling else ()
    for j, size in enumerate(reversed(tile)):
        k = len(dims) - 1 - j
        if k >= 0:
            dims[k] = -(-dims[k] // size) * size
    return -(-int(np.prod(dims, dtype=np.int64)) * np.dtype(dtype).itemsize // 512) * 512


def per_chip_argument_bytes(arguments, executable, chips: int) -> tuple[int, int]:
    """(bytes in the executable's layouts, plain bytes) of the arguments on ONE chip: replicated leaves
    whole, batch leaves (sharded on 'data') 1/chips of their leading axis."""
    leaves = jax.tree_util.tree_leaves(arguments)
    formats = jax.tree_util.tree_leaves(executable.input_formats[0])
    assert len(leaves) == len(formats)
    tiled = plain = 0
    for leaf, fmt in zip(leaves, formats, strict=True):
        shape = list(leaf.shape)
        if shape and tuple(fmt.sharding.spec)[:1] == ("data",):
            assert shape[0] % chips == 0
            shape[0] //= chips
        tiled += tiled_bytes(tuple(shape), leaf.dtype, fmt.layout)
        plain += int(np.prod(shape, dtype=np.int64)) * np.dtype(leaf.dtype).itemsize
    return tiled, plain


@needs_libtpu
def test_per_chip_numbers_match_the_parameter_tree(compiled):
    config, compiler, reports, resolved = compiled
    assert resolved == {"gate_conv": "xla"}  # 'auto' resolved for the TPU, not for this CPU host
    chips = len(compiler.target.devices)
    assert chips == 4 and compiler.target.hosts == 1
    params = compiler.variables["params"]
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(params))
    trainable_bytes = sum(
        x.size * x.dtype.itemsize
        for x, m in zip(*map(jax.tree_util.tree_leaves, (params, compiler.mask)), strict=True)
        if m
    )
    assert 0 < trainable_bytes < param_bytes  # stage 1 freezes the backbone

    # the replicated state (params, BatchNorm statistics, Adam's two moments of the trainable leaves, step
    # counters) whole on every chip + 1/4 of the batch: XLA's argument bytes are exactly these leaves in the
    # layouts the executable chose (TPU tiles pad small arrays)
    for b in (4, 8):
        batch = preflight.abstract_batch(config, compiler.model, b, train=True)
        executable = compiler.executables[("train", b)]
        tiled, plain = per_chip_argument_bytes((compiler.state, batch), executable, chips)
        assert reports[("train", b)].arguments == tiled
        clip_bytes = b * 2 * 32 * 32 * 3 * 4 // chips
        assert plain >= param_bytes + 2 * trainable_bytes + clip_bytes
    small, large = reports[("train", 4)], reports[("train", 8)]
    # the donated state comes back as outputs in place: aliased, counted once in the total
    assert 0 < small.aliased <= small.outputs
    assert small.total == small.arguments + small.outputs - small.aliased + small.temporaries + small.code
    # twice the batch: more FLOPs and no less memory; a train step costs more than the eval forward
    assert 0 < small.flops < large.flops and large.temporaries >= small.temporaries
    assert small.convolutions > 0 and small.while_loops >= 1  # the time loop stays a rolled loop


@needs_libtpu
def test_refuses_with_the_largest_batch_that_fits(compiled, capsys):
    _, _, reports, _ = compiled
    small, large = reports[("train", 4)], reports[("train", 8)]
    assert small.total < large.total
    between = (small.total + large.total) / 2 / preflight.GIB  # batch 4 fits, batch 8 does not
    args = ["--config", SPEC, "--topology", TOPOLOGY, "--batch", "8", "--functions", "train", *SMALL]
    assert preflight.main([*args, f"--hbm-gib={between}"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "does not fit v5e:2x2" in last and "the largest global batch that fits is 4 (--batch 4)" in last

    below = small.total / 2 / preflight.GIB
    assert preflight.main([*args, f"--hbm-gib={below}"]) == 1
    assert "not even global batch 4 fits" in capsys.readouterr().out.strip().splitlines()[-1]

    assert preflight.main([*args, "--batch", "6"]) == 2  # not a multiple of the 4 chips
    assert "use a multiple of 4" in capsys.readouterr().err


@needs_libtpu
def test_a_multi_host_slice_shards_the_global_batch_over_all_hosts():
    """v5e:4x4 is 4 hosts of 4 chips: one mesh over the 16, each host feeding a quarter of the batch."""
    config = preflight.load_run_config(SPEC, SMALL, 32)
    target = preflight.make_target("v5e:4x4")
    assert len(target.devices) == 16 and target.hosts == 4 and len(target.local_devices) == 4
    compiler = preflight.RunCompiler(config, target)
    assert compiler.mesh.devices.size == 16 and compiler.batch_multiple == 16
    state = preflight._with_sharding(compiler.state, compiler.steps.replicated)
    batch = preflight._with_sharding(
        preflight.abstract_batch(config, compiler.model, 32, train=True), compiler.steps.data
    )
    lowered = compiler.steps.train.lower(state, batch)  # lowering only: the compile is the small run's
    assert "mhlo.num_partitions = 16" in lowered.as_text()
    clip = batch["clip"]
    assert clip.sharding.shard_shape(clip.shape)[0] == 2  # 32 clips / 16 chips
    with pytest.raises(preflight.PreflightError, match="multiple of 16"):
        compiler.check_batch(8)


def test_without_libtpu_the_command_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "libtpu_installed", lambda: False)
    assert preflight.main(["--config", SPEC, "--topology", TOPOLOGY]) == 2
    assert "pip install -e '.[tpu]'" in capsys.readouterr().out


def test_unknown_chip_generation_is_named():
    with pytest.raises(preflight.PreflightError, match="unknown TPU generation 'v9'"):
        preflight.chip_of("v9:2x2")
    assert preflight.chip_of("v5e:2x4").hbm_gib == 16 and preflight.chip_of("v4:2x2x1").hbm_gib == 32


@pytest.mark.parametrize("bend", [0.0, 0.02])
def test_largest_fitting_batch_against_brute_force(bend):
    """The search on a synthetic memory curve (affine, or bending upwards so the linear prediction is too
    high and bisection has to correct it) finds what checking every multiple finds, in a few compiles."""
    multiple, hbm = 8, 1000.0

    def memory(batch: int) -> float:
        return 100.0 + 3.0 * batch + bend * batch**2

    calls = []

    def compile_train(batch: int) -> preflight.CompiledReport:
        calls.append(batch)
        return preflight.CompiledReport("train", batch, int(memory(batch)), 0, 0, 0, 0, 1.0, 0.0, 0, 0)

    expected = max(b for b in range(multiple, 2000, multiple) if memory(b) <= hbm)
    known = [compile_train(512)]
    best, searched = preflight.largest_fitting_batch(compile_train, multiple, hbm, known)
    assert best == expected
    assert len(calls) <= (4 if bend == 0 else 12) and len(searched) == len(set(calls))


def test_compiler_out_of_memory_refusal_reads_as_a_batch_that_does_not_fit():
    # the TPU compiler's own refusal (seen for GTEA61 stage 1 at a large batch on v5e)
    message = (
        "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO temporaries "
        "(16.49G) exceeds available HBM (15.75G)."
    )
    required = preflight.out_of_memory_bytes(message)
    assert required == int(16.49 * 2**30)
    report = preflight.CompiledReport("train", 64, 0, 0, 0, required, 0, 0.0, 1.0, 0, 0)
    assert not preflight.fits(report, 15.75 * 2**30)
    assert preflight.out_of_memory_bytes("INVALID_ARGUMENT: something else") is None
