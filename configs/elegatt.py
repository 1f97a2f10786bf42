"""eleGAtt baseline (kind `elegatt_rgb`, `lsta_jax/models/baselines.py`) with the RGB protocol of a dataset.

Arg: `dataset=gtea61|gtea71|egtea|synthetic` (default gtea61), `split=K` (default: the dataset config's),
`stage=1|2`. `synthetic` is `configs/synthetic.py:variant=elegatt,stage=S` (the embedded data from the
`synthetic_objects` pre-training, its protocol and LSTA's recipe scaled as there; an LSTM as wide as the
LSTA memory, 32): pass the pre-training workdir as `--config.init_from`.
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
Measured on the embedded data: docs/results.md "Baselines under their own recipes".
"""

from pathlib import Path

import ml_collections

from lsta_jax.train.config import load_config, parse_arg
from lsta_jax.train.presets import ELEGATT_TRAINABLE


def get_config(arg=None):
    a = parse_arg(arg, dataset="gtea61", split=0, stage=1)
    if a["dataset"] not in ("gtea61", "gtea71", "egtea", "synthetic") or a["stage"] not in (1, 2):
        raise ValueError(
            f"elegatt config: dataset must be gtea61, gtea71, egtea or synthetic, stage 1 or 2: {a}"
        )
    if a["dataset"] == "synthetic":
        return load_config(f"{Path(__file__).parent / 'synthetic.py'}:variant=elegatt,stage={a['stage']}")
    split = f"split={a['split']}," if a["split"] else ""
    base = load_config(f"{Path(__file__).parent / a['dataset']}.py:{split}stage={a['stage']}")
    values = base.to_dict()
    values["name"] = "elegatt_" + base.name
    values["model"] = dict(
        kind="elegatt_rgb",
        num_classes=base.model.num_classes,
        hidden_size=512,
        attention_classes=base.model.attention_classes,
        backbone_stage_sizes=base.model.backbone_stage_sizes,
        backbone_widths=base.model.backbone_widths,
        dropout_rate=0.7,
        dtype=base.model.dtype,
        remat=base.model.remat,
    )
    values["trainable"] = ELEGATT_TRAINABLE[a["stage"]]
    return ml_collections.ConfigDict(values)
