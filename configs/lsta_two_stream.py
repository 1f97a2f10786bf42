"""Two-stream LSTA with cross-modal fusion (paper 5.3, kind `lsta_two_stream`) from a trained RGB stream and
a trained motion stream.

Arg: `dataset=gtea61|gtea71|egtea|synthetic|toy` (default gtea61; toy: in-memory clips, small backbone;
synthetic: the embedded `synthetic_ego` with flow, the streams of `configs/synthetic.py` and
`configs/lsta_flow.py:dataset=synthetic`, a CPU schedule), `split=K` (GTEA 1-4, default 2 = GTEA61*; EGTEA
1-3, default 1).

    # the two streams first: configs/gtea61.py (stages 1, 2), configs/lsta_flow.py (verb, activity)
    python -m lsta_jax.train --config configs/lsta_two_stream.py:dataset=gtea61,split=2 \\
        --workdir runs/two_stream_g61s2 \\
        --config.init_from_rgb=runs/gtea61_s2_stage2 --config.init_from_flow=runs/lsta_flow_g61s2
    python -m lsta_jax.evaluate --checkpoint runs/two_stream_g61s2 --config configs/lsta_two_stream.py:split=2

Paper (6.2, Table 2): Adam, lr 0.01 "reduced by 0.99 after each epoch" (`lr_schedule='exponential'`), 200
epochs on GTEA61/71, 100 on EGTEA, batch 32, 25 RGB frames + the 5-frame flow stack (random start in
training, temporal centre in evaluation), one crop/flip draw for both. Results: 79.31% GTEA61* (split 2),
80.01% GTEA61 (4-split mean), 78.14% GTEA71, 61.86% EGTEA. Not given by the paper (our choices,
docs/differences.md §4.4): the Adam variant, weight decay 5e-4 and eps 1e-4 of the RGB stream's reference
protocol; the trained set = the RGB stream's stage-2 set (LSTA cell, classifier, layer4 conv1/conv2, the
ImageNet fc selector), the motion stream's layer4, selector and classifier, and every fusion parameter
(`conv_x_flow_*`, `rgb_summary`, `conv_x_rgb_*`, `flow_lstm_cell`); BatchNorm frozen in both streams; the
fusion shapes of `lsta_jax.models.two_stream`. The verb classes of the motion stream's selector are read from
the `init_from_flow` workdir (`verb_classes=0`).
"""

import ml_collections

from lsta_jax.train.config import default_config, model_fields, parse_arg
from lsta_jax.train.presets import SYNTHETIC_RGB_DROPOUT, set_dataset, set_synthetic, set_toy

# What the fusion stage trains (regexes over parameter paths; registered `never_trained` ones stay frozen).
TRAINABLE = (
    r"frameModel/lsta_cell/.*",
    r"frameModel/fc/.*",
    r"frameModel/resNet/layer4_\d+/conv[12]/kernel",
    r"frameModel/resNet/fc/.*",
    r"flowModel/resNet/layer4_\d+/.*",
    r"flowModel/resNet/fc_action/.*",
    r"flowModel/fc/.*",
    r"conv_x_flow_[ifc]/.*",
    r"rgb_summary/.*",
    r"conv_x_rgb_[ifco]/.*",
    r"flow_lstm_cell/.*",
)


def get_config(arg=None):
    a = parse_arg(arg, dataset="gtea61", split=0)
    c = default_config()
    c.model = model_fields(
        "lsta_two_stream",
        *("num_classes", "mem_size", "c_cam_classes", "attention_classes", "rgb_dropout_rate", "variant"),
        *("in_channels", "flow_dropout_rate", "backbone_stage_sizes", "backbone_widths", "fusion_kernel"),
        *("fusion_init", "summary_kernel", "summary_features", "flow_mem_size", "flow_embedding_residual"),
        *("batchnorm", "dtype", "scan_unroll", "gate_conv"),
        verb_classes=0,  # the motion stream's selector classes, read from init_from_flow
    )
    if a["dataset"] == "toy":
        set_toy(c)
    elif a["dataset"] == "synthetic":
        set_synthetic(c, flow=True)
        c.model.rgb_dropout_rate = SYNTHETIC_RGB_DROPOUT
    else:
        set_dataset(c, a["dataset"], a["split"])
        c.model.c_cam_classes = 150 if a["dataset"] == "egtea" else 100
    c.name = f"lsta_two_stream_{a['dataset']}_{c.data.builder_config}"
    c.data.modality = "rgb+flow"
    c.init_from_rgb = ""  # a trained lsta_rgb workdir (stage 2) -> frameModel
    c.init_from_flow = ""  # a trained lsta_flow workdir (stage activity) -> flowModel
    c.optimizer = "adam"
    c.learning_rate = 1e-2
    c.lr_schedule = "exponential"
    c.lr_gamma = 0.99
    c.lr_milestones = ()
    c.num_epochs = 100 if a["dataset"] == "egtea" else 200
    if a["dataset"] == "synthetic":
        c.num_epochs = 10
    return ml_collections.ConfigDict(dict(c.to_dict(), trainable=list(TRAINABLE)))  # regexes, not a stage
