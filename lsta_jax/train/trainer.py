"""Train state, jitted train/eval steps over a device Mesh, and the training loop (docs/differences.md §5).

Shape of google/flax examples/imagenet (`create_train_state`, `train_step`, `eval_step`, `train_and_evaluate`)
on big_vision's machinery: `jax.jit` with `NamedSharding` over a 1-D `Mesh` ('data' axis); the state is
replicated, each batch is sharded on its leading axis, every process feeds its own slice of the global batch
(`jax.make_array_from_process_local_data`). The model gets the batch entries it takes by name (`model_inputs`:
`clip`, `flow`) and is trained on `losses.total_loss` (every classifier output that has a label in the
batch). BatchNorm runs on its running statistics (the reference calls `model.train(False)` for LSTA) unless
the model's `batchnorm` attribute is 'train' (ego-rnn's flow protocol, training from scratch): then the step
uses batch statistics and carries the updated running statistics in the state. Dropout is stochastic with
key fold_in(rng, step), so a resumed run draws the same masks. Initialisation order: resume
(WORKDIR/checkpoints) > `config.init_from` (a stage-1 workdir or a converted model directory; two-stream
models also `config.init_from_rgb` / `init_from_flow`, grafted into `frameModel` / `flowModel`) > scratch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lsta_jax.checkpoint import load_model, write_model_json
from lsta_jax.models import create_model, registry
from lsta_jax.train import checkpoints as ckpt
from lsta_jax.train import consistency, losses
from lsta_jax.train import metrics as metrics_lib
from lsta_jax.train import optimizer as opt
from lsta_jax.train.input_pipeline import Data, make_data
from lsta_jax.train.logging import MetricWriter, Progress
from lsta_jax.train.preemption import StopRequest
from lsta_jax.train.workdir_lock import hold_workdir


@flax.struct.dataclass
class TrainState:
    """Everything a step changes (all arrays, so it checkpoints and shards as one pytree)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


class NonFiniteLoss(RuntimeError):
    """Raised when a step produced a NaN/Inf loss or gradient; the last good checkpoint is kept."""


def model_config(config: Any) -> dict[str, Any]:
    """The JSON-able model config (kind removed) of a training config."""
    cfg = config.model.to_dict() if hasattr(config.model, "to_dict") else dict(config.model)
    cfg.pop("kind", None)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def create_mesh(devices: Any = None) -> Mesh:
    """1-D mesh over all devices (of all processes), axis 'data'."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), ("data",))


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The entries of `batch` that are model inputs (`registry.input_names()`), passed by name:
    `model.apply(variables, clip=..., flow=...)`; uint8 pixels normalised on the device
    (`lsta_jax.data.device_normalize`)."""
    names = registry.input_names()
    inputs = {k: batch[k] for k in names if k in batch}
    if not inputs:
        raise ValueError(f"batch has no model input: keys {sorted(batch)}, expected one of {names}")
    # loaders with normalize_on_host=False hand uint8 clips
    if any(getattr(v, "dtype", None) == np.uint8 for v in inputs.values()):
        from lsta_jax.data.device_normalize import normalize_inputs

        inputs = normalize_inputs(inputs)  # inside the jitted step: on the device
    return inputs


def example_inputs(config: Any) -> dict[str, jax.Array]:
    """Zero model inputs of one clip in the geometry of `config.data` (`registry.zero_inputs`): `clip`
    (1, T, S, S, 3) for RGB, `flow` (1, S, S, 2 * flow_stack) for flow, both for 'rgb+flow'."""
    d = config.data
    modality = d.get("modality", "rgb")
    given = consistency.MODALITY_INPUTS
    if modality not in given:
        raise ValueError(f"config.data.modality {modality!r}: expected one of {', '.join(given)}")
    zeros = registry.zero_inputs(given[modality], d.num_frames, d.crop_size, 2 * d.get("flow_stack", 5))
    return {name: jnp.asarray(value) for name, value in zeros.items()}


def trains_batchnorm(model: nn.Module) -> bool:
    """True when the model's BatchNorm uses batch statistics in training (`model.batchnorm == 'train'`)."""
    return getattr(model, "batchnorm", "frozen") == "train"


def check_batchnorm_protocol(model: nn.Module, config: Any, from_scratch: bool) -> None:
    """Refuse a run from scratch whose BatchNorm is frozen: its running statistics would stay at their initial
    values (mean 0, variance 1), i.e. no normalisation at all. Such a run needs `batchnorm='train'`, or
    pre-trained weights (`init_from`), which the reference fine-tunes with BatchNorm frozen."""
    if from_scratch and not trains_batchnorm(model) and hasattr(model, "batchnorm"):
        raise ValueError(
            f"{config.get('name', 'this config')}: training from scratch with frozen BatchNorm keeps its "
            "initial statistics (mean 0, variance 1: no normalisation); set --config.model.batchnorm=train, "
            "or start from pre-trained weights with --config.init_from=DIR"
        )


def init_variables(model: nn.Module, config: Any, rng: jax.Array) -> dict[str, Any]:
    """Scratch initialisation (the modules' PyTorch-like initialisers), jitted: one compile.

    The init key is an 'rbg' key derived from `rng`: the same distributions, but its program compiles in a
    fraction of threefry's time on a CPU (one threefry sampler per kernel shape takes tens of seconds).
    """
    seed = jax.random.randint(rng, (), 0, jnp.iinfo(jnp.int32).max)
    key = jax.random.key(int(seed), impl="rbg")
    return dict(jax.jit(lambda k, inputs: model.init(k, **inputs))(key, example_inputs(config)))


def graft(target: dict[str, Any], source: dict[str, Any], where: str) -> dict[str, Any]:
    """Replace the leaves of `target` by those of `source` (same structure and shapes), else a clear error."""
    t_flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(target)}
    s_flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(source)}
    missing, extra = sorted(set(t_flat) - set(s_flat)), sorted(set(s_flat) - set(t_flat))
    bad = [k for k in t_flat.keys() & s_flat.keys() if np.shape(t_flat[k]) != np.shape(s_flat[k])]
    if missing or extra or bad:
        raise ValueError(
            f"{where} does not fit this model: missing {missing[:10]}, unexpected {extra[:10]}, "
            f"shape mismatches {[(k, np.shape(t_flat[k]), np.shape(s_flat[k])) for k in sorted(bad)[:10]]}"
        )
    return jax.tree_util.tree_map(lambda _, s: jnp.asarray(s), target, source)


def load_init(config: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """Variables from `config.init_from`: a training workdir or model directory.

    The source kind's registered `init_role` says where its variables go: 'whole' the whole tree (stage 1 ->
    stage 2, or a converted PyTorch LSTA checkpoint); 'backbone' (the ResNet kinds) grafted into resNet, or
    for a flow network (no resNet) into its top-level backbone with the cross-modality conv1
    (`convert.ego_rnn_flow.flow_init_from_resnet`); 'backbone_of_other_kinds' (the verb-trained flow network
    of the motion stream's stage (a) -> `lsta_flow`) grafted into resNet of a model of another kind.
    """
    path = Path(config.init_from)
    meta = (
        json.loads((path / "lsta_jax_model.json").read_text())
        if (path / "lsta_jax_model.json").is_file()
        else {}
    )
    _, source = load_model(path, which=config.init_which)
    source = {k: v for k, v in source.items() if k in ("params", "batch_stats")}
    kind = meta.get("kind", "")
    role = registry.model_kind(kind).init_role if kind else "whole"
    if role == "backbone" and "resNet" not in variables["params"]:
        # a flow network (top-level backbone): ego-rnn's ImageNet initialisation, cross-modality conv1
        from lsta_jax.convert.ego_rnn_flow import flow_init_from_resnet

        return graft(variables, flow_init_from_resnet(variables, source), str(path))
    if role == "backbone" or (role == "backbone_of_other_kinds" and config.model.kind != kind):
        merged = {k: dict(v) for k, v in variables.items()}
        for collection in ("params", "batch_stats"):
            merged[collection]["resNet"] = graft(
                variables[collection]["resNet"], source[collection], f"{path} ({collection})"
            )
        return merged
    return graft(variables, source, str(path))


def selector_classes_of_init(config: Any) -> int:
    """The verb classes of the motion stream that initialises this model (`model.verb_classes` = 0): the
    `num_classes` of a stage-(a) `egornn_flow` (`init_from`), or the `verb_classes` of an `lsta_flow`
    (`init_from`, `init_from_flow`)."""
    from lsta_jax.checkpoint import read_model_json

    for field in ("init_from_flow", "init_from"):
        if config.get(field, ""):
            source = read_model_json(config.get(field))["config"]
            return int(source.get("verb_classes", source["num_classes"]))
    raise ValueError(
        "config.model.verb_classes is 0 (take it from the motion stream's initialisation) but neither "
        "config.init_from nor config.init_from_flow is set: set one, or --config.model.verb_classes=N"
    )


#: config fields grafting a trained single-stream workdir or model directory into a two-stream model's subtree
STREAM_INIT_FIELDS = {"init_from_rgb": "frameModel", "init_from_flow": "flowModel"}


def stream_inits(config: Any) -> dict[str, str]:
    """{field: path} of the `STREAM_INIT_FIELDS` set in `config` (absent fields count as unset)."""
    return {field: str(config.get(field, "")) for field in STREAM_INIT_FIELDS if config.get(field, "")}


def starts_from_scratch(config: Any, resume_step: int | None) -> bool:
    """Whether a run starts from its modules' initialisers: no checkpoint to resume, no `init_from` and no
    stream init (a two-stream model grafted from its two trained streams is fine-tuned, not from scratch)."""
    return resume_step is None and not config.get("init_from", "") and not stream_inits(config)


def load_stream_inits(config: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """Graft `config.init_from_rgb` into `frameModel` and `config.init_from_flow` into `flowModel`.

    Each source (training workdir, `config.init_which`, or model directory) must have exactly that subtree's
    structure and shapes (e.g. a `convlstm_rgb` run into an ego-rnn two-stream model), else a clear error.
    """
    merged = {k: dict(v) for k, v in variables.items()}
    for field, path in stream_inits(config).items():
        subtree = STREAM_INIT_FIELDS[field]
        if subtree not in variables["params"]:
            raise ValueError(f"config.{field} = {path}: this model has no {subtree} to initialise")
        _, source = load_model(path, which=config.init_which)
        for collection in ("params", "batch_stats"):
            if subtree in variables.get(collection, {}):
                merged[collection][subtree] = graft(
                    variables[collection][subtree],
                    source.get(collection, {}),
                    f"{path} ({collection}, for {subtree})",
                )
    return merged


def create_train_state(
    config: Any,
    model: nn.Module,
    steps_per_epoch: int,
    variables: dict[str, Any] | None = None,
    sharding: Any = None,
) -> tuple[TrainState, optax.GradientTransformation, Any, Any]:
    """(state, optimizer, trainable mask, lr schedule); scratch init unless `variables` are given.

    With `sharding` (e.g. replicated over the run's mesh) the state is born there: one jitted program with
    `out_shardings` builds it from host copies of the variables, instead of a device-0 state copied later.
    """
    rng = jax.random.PRNGKey(config.seed)
    init_rng, train_rng = jax.random.split(rng)
    if variables is None:
        variables = init_variables(model, config, init_rng)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    tx, mask, schedule = opt.make_optimizer(config, params, steps_per_epoch)
    build = functools.partial(_build_state, tx)
    if sharding is None:
        state = build(params, batch_stats, train_rng)
    else:  # numpy inputs are uncommitted: valid for a mesh spanning several processes
        host = jax.tree_util.tree_map(np.asarray, (params, batch_stats, train_rng))
        state = jax.jit(build, out_shardings=sharding)(*host)
    return state, tx, mask, schedule


def _build_state(
    tx: optax.GradientTransformation, params: Any, batch_stats: Any, rng: jax.Array
) -> TrainState:
    zero = jnp.zeros([], jnp.int32)
    return TrainState(step=zero, params=params, batch_stats=batch_stats, opt_state=tx.init(params), rng=rng)


def abstract_train_state(
    config: Any, model: nn.Module, steps_per_epoch: int
) -> tuple[TrainState, optax.GradientTransformation, Any, Any]:
    """`create_train_state` of a scratch model as shapes and dtypes only (`jax.eval_shape`): a resumed run's
    restore target, so resuming computes no initialisation it would throw away."""
    variables = jax.eval_shape(
        lambda: dict(model.init(jax.random.key(0, impl="rbg"), **example_inputs(config)))
    )
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    tx, mask, schedule = opt.make_optimizer(config, params, steps_per_epoch)
    _, train_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    state = jax.eval_shape(functools.partial(_build_state, tx), params, batch_stats, train_rng)
    return state, tx, mask, schedule


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    mask: Any,
    accum_steps: int = 1,
    loss_weights: dict[str, float] | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser update on a global batch: `losses.total_loss` (gradient accumulated over `accum_steps`
    equal micro-batches, which equals the full-batch gradient), reference Adam, frozen leaves untouched.
    With `batchnorm == 'train'` the running statistics are updated micro-batch after micro-batch."""
    step_key = jax.random.fold_in(state.rng, state.step)
    update_stats = trains_batchnorm(model)

    # differentiate only the trainable leaves: no backward pass through frozen layers (`partition_params`)
    trainable, frozen = opt.partition_params(state.params, mask)

    def loss_fn(
        trainable: Any, batch_stats: Any, micro: dict[str, jax.Array], key: jax.Array
    ) -> tuple[jax.Array, tuple[jax.Array, Any]]:
        variables = {"params": opt.combine_params(trainable, frozen, mask), "batch_stats": batch_stats}
        kwargs = dict(train=True, rngs={"dropout": key})
        if update_stats:
            out, updated = model.apply(variables, **model_inputs(micro), mutable=["batch_stats"], **kwargs)
            batch_stats = updated["batch_stats"]
        else:
            out = model.apply(variables, **model_inputs(micro), **kwargs)
        loss = losses.total_loss(out, micro, loss_weights)
        return loss, (out["logits"].astype(jnp.float32), batch_stats)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    label = batch["label"]
    if accum_steps == 1:
        (loss, (logits, batch_stats)), grads = grad_fn(trainable, state.batch_stats, batch, step_key)
    else:
        micro_batches = jax.tree_util.tree_map(
            lambda x: x.reshape(accum_steps, x.shape[0] // accum_steps, *x.shape[1:]), batch
        )

        def body(carry: Any, xs: Any) -> tuple[Any, jax.Array]:
            loss_sum, grad_sum, stats = carry
            i, micro = xs
            (loss_i, (logits_i, stats)), g = grad_fn(trainable, stats, micro, jax.random.fold_in(step_key, i))
            return (loss_sum + loss_i, jax.tree_util.tree_map(jnp.add, grad_sum, g), stats), logits_i

        zero = jax.tree_util.tree_map(jnp.zeros_like, trainable)
        (loss, grads, batch_stats), logits = jax.lax.scan(
            body, (0.0, zero, state.batch_stats), (jnp.arange(accum_steps), micro_batches)
        )
        loss = loss / accum_steps
        grads = jax.tree_util.tree_map(lambda g: g / accum_steps, grads)
        logits = logits.reshape(-1, logits.shape[-1])
    grads = opt.full_gradient(grads, state.params, mask)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = opt.apply_updates(state.params, updates, mask)
    grad_sq = sum(
        jnp.sum(jnp.square(g))
        for g, m in zip(*map(jax.tree_util.tree_leaves, (grads, mask)), strict=True)
        if m
    )
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_sq)
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == label),
        "grad_norm": jnp.sqrt(grad_sq),
        "finite": finite,
    }
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state.replace(batch_stats=batch_stats), metrics


def eval_step(
    variables: dict[str, Any], batch: dict[str, jax.Array], *, model: nn.Module
) -> dict[str, jax.Array]:
    """(sum, count) metrics of one eval batch (mask marks real clips; padding counts zero)."""
    out = model.apply(variables, **model_inputs(batch))
    sums = metrics_lib.batch_sums(out["logits"], batch["label"], batch.get("mask"))
    if "verb_logits" in out and "verb" in batch and "noun" in batch:  # multi-task heads: challenge metrics
        sums.update(
            metrics_lib.multitask_sums(
                out["verb_logits"], out["noun_logits"], batch["verb"], batch["noun"], batch.get("mask")
            )
        )
    return sums


@dataclasses.dataclass
class Steps:
    """The compiled steps of one run and the shardings they use."""

    mesh: Mesh
    train: Any
    eval: Any
    replicated: NamedSharding
    data: NamedSharding

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's slice of a global batch -> global jax.Arrays sharded over 'data'."""
        return {k: jax.make_array_from_process_local_data(self.data, np.asarray(v)) for k, v in batch.items()}

    def replicate(self, tree: Any) -> Any:
        """A replicated COPY of `tree` (the train step donates its state, the original stays valid)."""
        return jax.device_put(jax.tree_util.tree_map(np.array, tree), self.replicated)


def compile_steps(
    model: nn.Module,
    tx: optax.GradientTransformation,
    mask: Any,
    accum_steps: int = 1,
    mesh: Mesh | None = None,
    loss_weights: dict[str, float] | None = None,
) -> Steps:
    """jit the steps with replicated state and batch-sharded inputs over `mesh` (all devices by default)."""
    mesh = create_mesh() if mesh is None else mesh
    replicated = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P("data"))
    train = jax.jit(
        lambda s, b: train_step(
            s, b, model=model, tx=tx, mask=mask, accum_steps=accum_steps, loss_weights=loss_weights
        ),
        in_shardings=(replicated, data),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )
    evaluate = jax.jit(
        lambda v, b: eval_step(v, b, model=model), in_shardings=(replicated, data), out_shardings=replicated
    )
    return Steps(mesh, train, evaluate, replicated, data)


def evaluate(steps: Steps, variables: dict[str, Any], batches: Any) -> dict[str, np.ndarray]:
    """Accumulated `batch_sums` over an eval iterator."""
    total = None
    for batch in batches:
        total = metrics_lib.add_sums(total, jax.device_get(steps.eval(variables, steps.put_batch(batch))))
    if total is None:
        raise ValueError("the evaluation split yielded no batches")
    return total


def loss_weights(config: Any) -> dict[str, float]:
    """`config.loss_weights` as a plain dict (empty when the config has none: every term weighs 1.0)."""
    weights = config.get("loss_weights", None)
    return {
        k: float(v) for k, v in (weights.to_dict() if hasattr(weights, "to_dict") else weights or {}).items()
    }


def total_steps(config: Any, steps_per_epoch: int) -> int:
    return int(config.total_steps) if config.total_steps > 0 else int(config.num_epochs) * steps_per_epoch


def _split_state(state: TrainState) -> tuple[dict[str, Any], dict[str, Any]]:
    model_vars = {"params": state.params, "batch_stats": state.batch_stats}
    train_vars = {"step": state.step, "opt_state": state.opt_state, "rng": state.rng}
    return model_vars, train_vars


def check_model_fields(config: Any, workdir: Path) -> None:
    """Refuse to resume a workdir whose `config.json` has other `model` fields than `config`: one line naming
    each differing field and both values (restoring would fail on the first mismatched array, or silently
    change the network where shapes agree)."""
    path = workdir / "config.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text()).get("model", {})
    now = json.loads(config.to_json_best_effort() if hasattr(config, "to_json_best_effort") else "{}")
    now = now.get("model", {})
    # a field one side lacks has the module default (a workdir written before the field existed)
    kind = now.get("kind", saved.get("kind"))
    defaults = (
        json.loads(json.dumps(registry.defaults(kind), default=str)) if kind in registry.kinds() else {}
    )
    saved, now = {**defaults, **saved}, {**defaults, **now}
    differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if differ:
        fields = "; ".join(f"model.{k}: {saved.get(k)!r} in the workdir, {now.get(k)!r} now" for k in differ)
        raise ckpt.CheckpointError(
            f"{workdir} was trained with other model fields ({fields}): resume with the workdir's values "
            f"(its config.json), or train in another --workdir"
        )


def restore_readable(
    manager: Any, config: Any, workdir: Path, state: TrainState, data_iterator: Any, sharding: Any
) -> tuple[TrainState, int, Any]:
    """(state, step, manager) of the newest checkpoint that can be read, restored onto `sharding` in the
    structure of `state`; the iterator is set in place.

    Each newer checkpoint whose files cannot be read is named in one line (process 0, on stderr) and set aside
    as `checkpoints/unreadable-<step>`, so the run redoes those steps; a fresh manager then sees the remaining
    steps. None readable: `UnreadableCheckpoint`. A checkpoint of another model or process count is not
    damaged: its `CheckpointError` stops the run.
    """
    abstract_model, abstract_train = _split_state(state)
    set_aside = []
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            model_vars, train_vars = ckpt.restore(
                manager, step, abstract_model, abstract_train, data_iterator, sharding
            )
        except ckpt.UnreadableCheckpoint as e:
            manager.close()
            moved = ckpt.set_aside(workdir, step)
            set_aside.append(step)
            if jax.process_index() == 0:
                print(f"lsta_jax.train: {e}; moved to {moved}, trying the previous one", file=sys.stderr)
            manager = ckpt.make_manager(workdir, keep=config.keep_checkpoints, best_metric=config.best_metric)
            continue
        if set_aside and jax.process_index() == 0:
            print(
                f"lsta_jax.train: resuming from step {step}, the newest readable checkpoint", file=sys.stderr
            )
        restored = TrainState(
            params=model_vars["params"], batch_stats=model_vars["batch_stats"], **train_vars
        )
        return restored, step, manager
    raise ckpt.UnreadableCheckpoint(
        f"{workdir}: no checkpoint can be read (set aside: steps {set_aside} under "
        f"{workdir / ckpt.CHECKPOINTS}); start again in a new workdir, or from one of them with "
        "--config.init_from"
    )


def _save_config(config: Any, workdir: Path) -> None:
    text = (
        config.to_json_best_effort(indent=2) if hasattr(config, "to_json_best_effort") else json.dumps(config)
    )
    (workdir / "config.json").write_text(text + "\n")


def stop_if_not_finite(
    host_metrics: list[dict[str, Any]], step: int, manager: Any, workdir: Path, progress: Any
) -> None:
    """The NaN/Inf guard: raise `NonFiniteLoss` (nothing saved) if any logged step was not finite."""
    if all(bool(m["finite"]) for m in host_metrics):
        return
    progress.close()
    raise NonFiniteLoss(
        f"non-finite loss or gradient at or before step {step}; stopped without saving. The last good "
        f"checkpoint is step {manager.latest_step()} in {workdir}/checkpoints: lower the learning rate or "
        "check the input, then re-run the same command to resume from it."
    )


def train_and_evaluate(
    config: Any, workdir: str | Path, data: Data | None = None, quiet: bool = False
) -> dict:
    """Train `config` in `workdir` (resuming if it holds checkpoints); returns the final evaluation summary.

    Writes `config.json`, `lsta_jax_model.json` (so `lsta_jax.load_model(workdir)` works), `metrics.jsonl`,
    TensorBoard events under `tensorboard/`, checkpoints under `checkpoints/<step>/` and the final
    evaluation (`eval/summary.json`, confusion matrix CSV/PNG, per-class CSV). One run per workdir: a second
    one while this one lives raises `WorkdirBusy` naming it (`workdir_lock`). SIGTERM / SIGINT save a
    checkpoint at the next step boundary and return {} (`preemption`).
    """
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    with hold_workdir(workdir):
        return _train_and_evaluate(config, workdir, data, quiet)


def _train_and_evaluate(config: Any, workdir: Path, data: Data | None, quiet: bool) -> dict:
    """`train_and_evaluate` in a workdir this process holds."""
    primary = jax.process_index() == 0
    data = make_data(config) if data is None else data
    if config.model.num_classes <= 0:  # taken from the dataset (e.g. EPIC actions)
        config.model.num_classes = len(data.class_names)
    # `verb_classes` = 0: for a kind whose `verb_classes` is a motion stream's selector (`selector_from_init`)
    # "read it from the initialisation"; for the RGB kinds "no multi-task heads" (the default config's value)
    if (
        config.model.get("verb_classes", None) == 0
        and registry.model_kind(config.model.kind).selector_from_init
    ):
        config.model.verb_classes = selector_classes_of_init(config)  # from the motion stream
    model = create_model(config.model.kind, **model_config(config))
    consistency.check_training_run(config, data.class_names, model)  # before the first step, never after
    steps_per_epoch = config.steps_per_epoch if config.get("steps_per_epoch", 0) > 0 else data.steps_per_epoch
    num_steps = total_steps(config, steps_per_epoch)
    if config.global_batch_size % config.grad_accum_steps:
        raise ValueError(f"global_batch_size {config.global_batch_size} not divisible by grad_accum_steps")
    manager = ckpt.make_manager(workdir, keep=config.keep_checkpoints, best_metric=config.best_metric)

    resume_step = manager.latest_step()
    if resume_step is not None:
        check_model_fields(config, workdir)  # before anything is built or read
    check_batchnorm_protocol(model, config, from_scratch=starts_from_scratch(config, resume_step))
    initial = None
    if resume_step is None and (config.init_from or stream_inits(config)):
        initial = init_variables(model, config, jax.random.PRNGKey(config.seed))
        initial = load_init(config, initial) if config.init_from else initial
        initial = load_stream_inits(config, initial)
    mesh = create_mesh()
    replicated = NamedSharding(mesh, P())
    if resume_step is None:  # born replicated on the mesh
        state, tx, mask, schedule = create_train_state(config, model, steps_per_epoch, initial, replicated)
    else:  # restored onto THIS run's mesh (replicated), whatever devices and processes wrote the checkpoint
        template, tx, mask, schedule = abstract_train_state(config, model, steps_per_epoch)
        state, resume_step, manager = restore_readable(
            manager, config, workdir, template, data.train, replicated
        )
    start_step = int(state.step)
    if primary:
        _save_config(config, workdir)
        write_model_json(
            workdir,
            config.model.kind,
            model_config(config),
            {"params": state.params, "batch_stats": state.batch_stats},
            data.class_names,
            source=f"lsta_jax.train {config.get('name', '')}",
        )
        meta_path = workdir / "lsta_jax_model.json"
        meta = json.loads(meta_path.read_text())
        d = config.data
        meta["input"] = {"num_frames": d.num_frames, "size": d.crop_size, "resize_shorter": d.resize_shorter}
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    steps = compile_steps(
        model, tx, mask, config.grad_accum_steps, mesh=mesh, loss_weights=loss_weights(config)
    )
    writer = MetricWriter(workdir, enabled=primary)
    n_trainable = sum(
        int(np.size(p))
        for p, m in zip(*map(jax.tree_util.tree_leaves, (state.params, mask)), strict=True)
        if m
    )
    if not quiet and primary:
        how = (
            f"resumed at step {start_step}"
            if resume_step is not None
            else (
                "initialised from "
                + ", ".join(filter(None, [config.init_from, *stream_inits(config).values()]))
                if config.init_from or stream_inits(config)
                else "initialised from scratch"
            )
        )
        print(
            f"lsta_jax.train: {how}; {num_steps} steps ({steps_per_epoch}/epoch) of "
            f"{config.global_batch_size} "
            f"clips on {jax.device_count()} device(s) x {jax.process_count()} process(es); "
            f"{n_trainable:,} trainable parameters ({config.trainable}); workdir {workdir}",
            flush=True,
        )
    progress = Progress(num_steps, start_step, config.global_batch_size, enabled=primary and not quiet)
    summary: dict[str, Any] = {}
    last_saved = start_step if resume_step is not None else None
    eval_every = config.eval_every_steps if config.eval_every_steps > 0 else num_steps
    if config.eval_every_steps <= 0 and config.get("eval_every_epochs", 0) > 0:
        eval_every = config.eval_every_epochs * steps_per_epoch
    step = start_step
    train_log: list[dict[str, jax.Array]] = []
    stopped = False
    with StopRequest() as stop:  # SIGTERM / SIGINT: checkpoint at the next step boundary, then return
        while step < num_steps:
            batch = steps.put_batch(next(data.train))
            state, step_metrics = steps.train(state, batch)
            step += 1
            train_log.append(step_metrics)
            if step % config.log_every_steps == 0 or step == num_steps or step == start_step + 1:
                host = [jax.device_get(m) for m in train_log]
                train_log = []
                stop_if_not_finite(host, step, manager, workdir, progress)
                scalars = {k: float(np.mean([m[k] for m in host])) for k in ("loss", "accuracy", "grad_norm")}
                scalars["learning_rate"] = float(schedule(step - 1))
                writer.write(step, "train", {**scalars, **progress.rates()})
                progress.update(step, scalars["loss"])
            eval_metrics = None
            if step % eval_every == 0 or step == num_steps:
                variables = {"params": state.params, "batch_stats": state.batch_stats}
                sums = evaluate(steps, variables, data.make_eval())
                summary = metrics_lib.summarize(sums, data.class_names)
                eval_metrics = metrics_lib.scalar_metrics(summary)
                writer.write(step, "eval", eval_metrics)
                progress.note(
                    f"eval @ {step}: top1 {summary['top1']:.4f} "
                    f"mean class {summary['mean_class_accuracy']:.4f}"
                )
            stopped = stop.requested()  # the same answer in every process (preemption.py)
            if (
                step % config.checkpoint_every_steps == 0
                or step == num_steps
                or eval_metrics is not None
                or (stopped and last_saved != step)
            ):
                # a NaN guard before saving: never write a checkpoint of a diverged state
                stop_if_not_finite(jax.device_get(train_log), step, manager, workdir, progress)
                model_vars, train_vars = _split_state(state)
                ckpt.save(manager, step, model_vars, train_vars, data.train, eval_metrics, config.best_metric)
                last_saved = step
            if stopped and step < num_steps:
                break
    progress.close()
    writer.close()
    manager.close()
    if stopped and step < num_steps:
        if primary:
            print(
                f"lsta_jax.train: stopped by {stop.name} at step {step} of {num_steps}; checkpoint saved in "
                f"{workdir / ckpt.CHECKPOINTS / str(step)}. To resume, run the same command again "
                f"(same --config and overrides, --workdir {workdir}).",
                flush=True,
            )
        return {}
    if summary and primary:
        write_eval_outputs(workdir / "eval", summary, data.class_names, last_saved)
    return summary


def write_eval_outputs(directory: Path, summary: dict[str, Any], class_names: list[str], step: Any) -> None:
    """summary.json, per_class.csv, confusion.csv/png of an evaluation."""
    directory.mkdir(parents=True, exist_ok=True)
    confusion = summary.pop("confusion", None)
    (directory / "summary.json").write_text(json.dumps({"step": step, **summary}, indent=2) + "\n")
    metrics_lib.write_per_class(directory, summary, class_names)
    if confusion is not None:
        metrics_lib.write_confusion(directory, confusion, class_names, title=f"step {step}")


__all__ = [
    "NonFiniteLoss",
    "TrainState",
    "compile_steps",
    "create_mesh",
    "create_train_state",
    "eval_step",
    "evaluate",
    "example_inputs",
    "model_inputs",
    "train_and_evaluate",
    "train_step",
]
