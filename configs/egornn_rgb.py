"""ego-rnn's RGB baseline (kind `convlstm_rgb`, docs/differences.md §4.5), trained with ego-rnn's
`main-run-rgb.py`.

Arg: `dataset=gtea61|gtea71|egtea` (default gtea61), `split=K` (as `configs/egornn_flow.py`), `stage=1|2`.

    python -m lsta_jax.train --config configs/egornn_rgb.py:split=2 --workdir runs/rgb_g61 \\
        --config.init_from=models/resnet34
    python -m lsta_jax.train --config configs/egornn_rgb.py:split=2,stage=2 --workdir runs/rgb_g61_stage2 \\
        --config.init_from=runs/rgb_g61 --config.init_which=best

Protocol: Adam (the reference rule, eps 1e-4) with weight decay 4e-5, shuffled, batch 32, 25 frames; stage 1
trains the ConvLSTM and `fc` for 300 epochs, lr 1e-3 x0.1 at 25/75/150; stage 2 also the `layer4`
conv1/conv2 kernels and the backbone fc weight, 150 epochs, lr 1e-4 x0.1 at 25/75, from the BEST stage-1
model. Difference: frames are sampled with LSTA's rule floor(linspace(1, N, 25)) (ego-rnn's
`makeDatasetRGB` uses linspace(1, N, 25, endpoint=False)).
Paper: ego-rnn (RGB) 63.79% on GTEA61* (Table 2). It is the RGB half of `configs/egornn_two_stream.py`.
"""

import ml_collections

from lsta_jax.train.config import default_config, model_fields, parse_arg
from lsta_jax.train.presets import EGORNN_RGB_TRAINABLE, set_dataset


def get_config(arg=None):
    a = parse_arg(arg, dataset="gtea61", split=0, stage=1)
    if a["stage"] not in (1, 2):
        raise ValueError(f"egornn_rgb config: stage must be 1 or 2, got {a['stage']}")
    c = default_config()
    c.model = model_fields(
        "convlstm_rgb",
        *("num_classes", "mem_size", "attention_classes", "backbone_stage_sizes", "backbone_widths"),
        *("dropout_rate", "dtype", "remat"),
    )
    set_dataset(c, a["dataset"], a["split"])
    c.name = f"egornn_rgb_{a['dataset']}_{c.data.builder_config}_stage{a['stage']}"
    c.shuffle = True
    c.weight_decay = 4e-5
    trainable = list(EGORNN_RGB_TRAINABLE[a["stage"]])
    c.learning_rate, c.num_epochs, c.lr_milestones = 1e-3, 300, (25, 75, 150)
    if a["stage"] == 2:
        c.learning_rate, c.num_epochs, c.lr_milestones = 1e-4, 150, (25, 75)
        c.init_which = "best"
    c.eval_every_epochs = 1
    return ml_collections.ConfigDict(dict(c.to_dict(), trainable=trainable))  # a regex list, not a stage
