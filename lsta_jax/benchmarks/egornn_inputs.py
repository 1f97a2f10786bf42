"""What enters and leaves the recurrent cell of an ego-rnn run and of an LSTA run, measured side by side.

    python -m lsta_jax.benchmarks.egornn_inputs --egornn RUNS/ego_rnn_seed0_stage1 \\
        --lsta RUNS/attention_pooling_seed0_stage1 [--clips 48] [--json out.json]

Both arguments are stage-1 workdirs of `configs/synthetic.py` (e.g. made by `lsta_jax.benchmarks.ablation`),
ego-rnn's of kind `convlstm_rgb`, LSTA's of kind `lsta_rgb` (any variant). For each run, on the first
`--clips` clips of the evaluation split (the run's frames and crop), and for two sets of weights, the run's
initialisation (the trainer's own scratch init with the run's seed, then its `init_from` grafted in, as
training started) and its trained last checkpoint, the command reports:

- the attention: the spread of the CAM logits ν_a (max - min over the cells of a frame), the softmax's largest
  value (ego-rnn: softmax(ν_a); LSTA: softmax(ν_a + s_t)), and the share of the attended input's mass
  (sum of |u_t ⊙ f_NBN| over channels) in that frame's argmax cell;
- mean |f_NBN| (the pre-BN features before attention) and mean |x| of the cell's input u_t ⊙ f_NBN, per frame;
- the gate pre-activations (i, f, c~, o): mean and the 1st / 99th percentiles over all frames and units;
- mean |c_T|, the features into `fc` (spatial mean of c_T): mean |.| and their std over clips, and the std
  of the logits over clips;
- per parameter group (the cell's convolutions on its input, those on h_{t-1}, LSTA's attention
  convolutions, `fc`; LSTA's output gate by what its convolutions act on, not by their names): the
  gradient norm of the mean cross-entropy at the initialisation (dropout off), whether the run's
  `config.trainable` trains it, and how far training moved it, ||θ_trained - θ_init|| / ||θ_init||.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lsta_jax import cli


def _groups(params: dict[str, Any], cell: str) -> dict[str, str]:
    """Parameter-path prefix -> group name, for the cell's convolutions and the classifier."""
    groups = {}
    # LSTA's output gate swaps the names (docs/differences.md §2.2): conv_o_x acts on h_{t-1}, conv_o_c on the
    # attended input (the pooled memory with output pooling)
    swapped = (
        {"conv_o_x": "cell hidden convs (h)", "conv_o_c": "cell input convs (x)"}
        if cell == "lsta_cell"
        else {}
    )
    for name in params[cell]:
        if name in swapped:
            groups[f"{cell}/{name}"] = swapped[name]
        elif name.endswith(("_xx", "_x")):
            groups[f"{cell}/{name}"] = "cell input convs (x)"
        elif name.endswith(("_hh", "_c")) and name.startswith("conv_"):
            groups[f"{cell}/{name}"] = "cell hidden convs (h)"
        elif name.endswith(("_s", "_cam")):
            groups[f"{cell}/{name}"] = "attention convs (s, cam)"
        else:
            groups[f"{cell}/{name}"] = f"cell {name}"
    groups["fc"] = "fc"
    return groups


def _flat(tree: Any) -> dict[str, np.ndarray]:
    import jax

    from lsta_jax.train.optimizer import param_path

    return {param_path(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def _load(workdir: Path) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """(config, model, initial variables, trained variables) of a training workdir."""
    import jax

    from lsta_jax.checkpoint import load_model
    from lsta_jax.evaluate import workdir_config
    from lsta_jax.train import trainer

    config = workdir_config(workdir)
    model, trained = load_model(workdir, which="latest")
    initial = trainer.init_variables(model, config, jax.random.PRNGKey(config.seed))  # as the trainer
    if config.init_from:
        initial = trainer.load_init(config, initial)
    return config, model, initial, dict(trained)


def _cell_pass(config: Any, variables: dict[str, Any], clip: np.ndarray) -> dict[str, Any]:
    """The backbone, the attention and the cell stepped frame by frame, with the gates' pre-activations."""
    import jax.numpy as jnp

    from lsta_jax.models import selector
    from lsta_jax.models.cells import ConvLSTMCell, LSTACell
    from lsta_jax.models.lsta import VARIANTS
    from lsta_jax.models.resnet import ResNet

    m = config.model
    params, stats = variables["params"], variables.get("batch_stats", {})
    b, t = clip.shape[:2]
    backbone = ResNet(
        stage_sizes=tuple(m.backbone_stage_sizes),
        widths=tuple(m.backbone_widths),
        num_classes=m.attention_classes,
        stage_strides=tuple(m.backbone_stage_strides) if m.get("backbone_stage_strides") else None,
        max_pool=m.get("backbone_max_pool", True),
    )
    out = backbone.apply(
        {"params": params["resNet"], "batch_stats": stats.get("resNet", {})},
        jnp.asarray(clip.reshape(b * t, *clip.shape[2:])),
        False,
    )
    cam, _ = selector.attention_pooling(out["layer4"], params["resNet"]["fc"]["kernel"], scores=out["logits"])
    _, h, w, k = out["layer4"].shape
    prebn = out["layer4_prebn"].reshape(b, t, h, w, k)
    cam = cam.reshape(b, t, h, w)
    convlstm = "lstm_cell" in params  # ego-rnn's ConvLSTM, else an LSTA cell (`lsta_cell`)
    if convlstm:
        cell, name = ConvLSTMCell(mem_size=m.mem_size, gate_conv=m.get("gate_conv", "auto")), "lstm_cell"
        gates = {g: (f"conv_{g}_xx", f"conv_{g}_hh") for g in "ifco"}
        carry = ConvLSTMCell.initial_carry(b, h, w, m.mem_size)
    else:
        attention_on, output_on, bias_on = VARIANTS[m.variant]
        cell = LSTACell(
            mem_size=m.mem_size,
            c_cam_classes=m.c_cam_classes,
            attention_pooling=attention_on,
            output_pooling=output_on,
            bias_control=bias_on,
            gate_conv=m.get("gate_conv", "auto"),
        )
        name = "lsta_cell"
        cam = selector.rescale_selector_map(cam, m.get("selector_map", "logits"))  # as the cell gets it
        gates = {g: (f"conv_{g}_x", f"conv_{g}_c") for g in "ifc"} | {"o": ("conv_o_x", "conv_o_c")}
        carry = LSTACell.initial_carry(b, h, w, m.mem_size)
    pre = {g: [] for g in gates}
    softmax_max, cell_share, x_abs = [], [], []
    for step in range(t):
        if convlstm:
            attention = selector.spatial_softmax(cam[:, step])
            x = prebn[:, step] * attention[..., None]
            (carry, _), state = cell.apply(
                {"params": params[name]}, carry, x, capture_intermediates=True, mutable=["intermediates"]
            )
        else:
            (carry, info), state = cell.apply(
                {"params": params[name]},
                carry,
                prebn[:, step],
                cam[:, step],
                capture_intermediates=True,
                mutable=["intermediates"],
            )
            attention, x = info["attention"], info["x_att"]
        inter = state["intermediates"]
        for g, (a, c) in gates.items():
            pre[g].append(np.asarray(inter[a]["__call__"][0] + inter[c]["__call__"][0]))
        mass = np.abs(np.asarray(x)).sum(-1).reshape(b, h * w)
        top = np.asarray(attention).reshape(b, h * w).argmax(-1)
        cell_share.append(mass[np.arange(b), top] / mass.sum(-1))
        softmax_max.append(np.asarray(attention).reshape(b, -1).max(-1))
        x_abs.append(float(np.abs(np.asarray(x)).mean()))
    # ConvLSTM carry (h, c); LSTA carry ((a, s), (c, o))
    c_last = np.asarray(carry[1] if convlstm else carry[1][0])
    features = c_last.mean(axis=(1, 2))
    logits = features @ np.asarray(params["fc"]["kernel"]) + np.asarray(params["fc"]["bias"])
    cam_np = np.asarray(cam).reshape(b, t, -1)
    return {
        "cam spread (max - min logit)": float((cam_np.max(-1) - cam_np.min(-1)).mean()),
        "softmax max": float(np.mean(softmax_max)),
        "mass share of argmax cell": float(np.mean(cell_share)),
        "mean |f_NBN|": float(np.abs(np.asarray(prebn)).mean()),
        "mean |x| into cell, per frame": [round(v, 5) for v in x_abs],
        **{
            f"gate {g} pre-act mean [p1, p99]": [
                float(np.mean(v)),
                float(np.percentile(np.stack(v), 1)),
                float(np.percentile(np.stack(v), 99)),
            ]
            for g, v in pre.items()
        },
        "mean |c_T|": float(np.abs(c_last).mean()),
        "features into fc: mean |.|": float(np.abs(features).mean()),
        "features into fc: std over clips": float(features.std(0).mean()),
        "logits: std over clips": float(logits.std(0).mean()),
    }


def _gradients(
    config: Any, model: Any, initial: dict[str, Any], batch: dict[str, np.ndarray]
) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import optax

    def loss(params: Any) -> jax.Array:
        logits = model.apply({**initial, "params": params}, jnp.asarray(batch["clip"]))["logits"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(batch["label"])).mean()

    return _flat(jax.grad(loss)(initial["params"]))


def measure(workdir: Path, clips: int) -> dict[str, Any]:
    """The module docstring's numbers for one workdir."""
    from lsta_jax.train.optimizer import trainable_mask
    from lsta_jax.train.tfds_input import make_data

    config, model, initial, trained = _load(workdir)
    config.eval_batch_size = clips
    batch = next(iter(make_data(config).make_eval()))
    cell = "lstm_cell" if "lstm_cell" in initial["params"] else "lsta_cell"
    groups = _groups(initial["params"], cell)
    grads = _gradients(config, model, initial, batch)
    init_flat, trained_flat = _flat(initial["params"]), _flat(trained["params"])
    mask = _flat(trainable_mask(initial["params"], config.trainable))
    per_group: dict[str, dict[str, Any]] = {}
    for path in init_flat:
        prefix = next((p for p in groups if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            continue
        g = per_group.setdefault(groups[prefix], dict(grad_sq=0.0, init_sq=0.0, moved_sq=0.0, trained=set()))
        g["grad_sq"] += float((grads[path] ** 2).sum())
        g["init_sq"] += float((init_flat[path] ** 2).sum())
        g["moved_sq"] += float(((trained_flat[path] - init_flat[path]) ** 2).sum())
        g["trained"].add(bool(mask[path]))
    return {
        "workdir": str(workdir),
        "kind": config.model.kind,
        "variant": config.model.get("variant", ""),
        "trainable": list(config.trainable) if not isinstance(config.trainable, str) else config.trainable,
        "initial": _cell_pass(config, initial, np.asarray(batch["clip"])),
        "trained": _cell_pass(config, trained, np.asarray(batch["clip"])),
        "parameters": {
            name: {
                "grad norm at init": g["grad_sq"] ** 0.5,
                "trained by config": " / ".join(sorted({"yes" if v else "no" for v in g["trained"]})),
                "moved (relative)": (g["moved_sq"] / max(g["init_sq"], 1e-30)) ** 0.5,
            }
            for name, g in per_group.items()
        },
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def report_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown tables: the activations (rows) per run and weights (columns), then the parameter groups."""
    names = list(results)
    lines = ["| quantity | " + " | ".join(f"{n} init | {n} trained" for n in names) + " |"]
    lines.append("| --- " * (1 + 2 * len(names)) + "|")
    for key in results[names[0]]["initial"]:
        row = [_fmt(results[n][w].get(key, "")) for n in names for w in ("initial", "trained")]
        lines.append(f"| {key} | " + " | ".join(row) + " |")
    lines += ["", "| run | parameter group | grad norm at init | trained by config | moved (relative) |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for n in names:
        for group, g in results[n]["parameters"].items():
            lines.append(
                f"| {n} | {group} | {_fmt(g['grad norm at init'])} | {g['trained by config']} "
                f"| {_fmt(g['moved (relative)'])} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m lsta_jax.benchmarks.egornn_inputs", description=__doc__)
    parser.add_argument(
        "--egornn", required=True, help="stage-1 workdir of configs/synthetic.py:variant=ego_rnn"
    )
    parser.add_argument("--lsta", required=True, help="stage-1 workdir of an LSTA variant (same seed)")
    parser.add_argument("--clips", type=cli.positive_int, default=48, help="evaluation clips measured")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    results = {}
    for label, workdir in (("ego-rnn", args.egornn), ("LSTA", args.lsta)):
        path = Path(workdir)
        if not (path / "config.json").is_file():
            parser.error(f"{workdir} is not a training workdir (no config.json)")
        results[label] = measure(path, args.clips)
    print("\n".join(report_lines(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
