"""eleGAtt baseline (kind `elegatt_rgb`, `lsta_jax/models/baselines.py`) with the RGB protocol of a dataset.

Arg: `dataset=gtea61|gtea71|egtea|synthetic` (default gtea61), `split=K` (default: the dataset config's),
`stage=1|2`. `synthetic` is `configs/synthetic.py` (small backbone trained from scratch, everything trainable)
with an LSTM as wide as its LSTA memory (64): for a CPU-sized comparison with LSTA.
Data, schedule and evaluation are those of `configs/<dataset>.py` (docs/differences.md §5: stage 1 200 epochs
at lr 1e-3, stage 2 100 epochs at lr 1e-4 from the last stage-1 checkpoint); the model is replaced by eleGAtt
(512 LSTM units, dropout 0.7 before `fc`). Trainable sets (our choice, the paper gives none): stage 1 trains
the eleGAtt cell (gate and LSTM) and `fc`, the ResNet-34 stays frozen (as stage 1 of the RGB models); stage 2
also trains layer4's conv1/conv2 kernels, as the RGB models' stage 2, but NOT the backbone's ImageNet `fc`
(eleGAtt does not use it: it would only see weight decay).

    python -m lsta_jax.train --config configs/elegatt.py:dataset=gtea61,split=2 \\
        --workdir runs/elegatt_gtea61_s2_stage1 --config.init_from=models/resnet34
    python -m lsta_jax.train --config configs/elegatt.py:dataset=gtea61,split=2,stage=2 \\
        --workdir runs/elegatt_gtea61_s2_stage2 --config.init_from=runs/elegatt_gtea61_s2_stage1
    python -m lsta_jax.evaluate --checkpoint runs/elegatt_gtea61_s2_stage2 \\
        --config configs/elegatt.py:dataset=gtea61,split=2,stage=2

Paper (Table 3, eleGAtt): 59.48% GTEA61* (split 2), 66.77% GTEA61 (4-split mean), 60.83% GTEA71, 57.01% EGTEA.
Measured here: `dataset=synthetic` 51.0% top-1 on synthetic_ego (12 classes, chance 8.3%; LSTA 52.1%) after
360 steps from scratch, seed 0.
"""

from pathlib import Path

import ml_collections

from lsta_jax.train.config import load_config, parse_arg

TRAINABLE = {
    1: (r"elegatt_cell/.*", r"fc/.*"),
    2: (r"elegatt_cell/.*", r"fc/.*", r"resNet/layer4_\d+/conv[12]/kernel"),
}


def get_config(arg=None):
    a = parse_arg(arg, dataset="gtea61", split=0, stage=1)
    if a["dataset"] not in ("gtea61", "gtea71", "egtea", "synthetic") or a["stage"] not in (1, 2):
        raise ValueError(
            f"elegatt config: dataset must be gtea61, gtea71, egtea or synthetic, stage 1 or 2: {a}"
        )
    synthetic = a["dataset"] == "synthetic"
    split = f"split={a['split']}," if a["split"] else ""
    arg = "" if synthetic else f":{split}stage={a['stage']}"
    base = load_config(f"{Path(__file__).parent / a['dataset']}.py{arg}")
    values = base.to_dict()
    values["name"] = "elegatt_" + base.name
    values["model"] = dict(
        kind="elegatt_rgb",
        num_classes=base.model.num_classes,
        hidden_size=base.model.mem_size if synthetic else 512,
        attention_classes=base.model.attention_classes,
        backbone_stage_sizes=base.model.backbone_stage_sizes,
        backbone_widths=base.model.backbone_widths,
        dropout_rate=base.model.dropout_rate if synthetic else 0.7,
        dtype=base.model.dtype,
        remat=base.model.remat,
    )
    values["trainable"] = "all" if synthetic else TRAINABLE[a["stage"]]
    return ml_collections.ConfigDict(values)
