"""LSTA motion stream (paper 5.2): (a) verb pre-training of the flow ResNet-34, (b) activities with attention.

Arg: `stage=verb|activity` (default verb), `dataset=gtea61|gtea71|egtea|synthetic|toy` (default gtea61),
`split=K` (GTEA 1-4, default 2 = GTEA61*; EGTEA 1-3, default 1). `toy`: in-memory clips, small backbone
(`set_toy`). `synthetic`: the embedded `synthetic_ego` with its TV-L1 flow (`set_synthetic`), the small
backbone of `configs/synthetic_pretrain.py` (`--config.init_from=` that pre-training) and a CPU schedule:
    python -m lsta_jax.train --config configs/lsta_flow.py:stage=verb,dataset=synthetic --workdir runs/fv \\
        --config.init_from=runs/pretrain
    python -m lsta_jax.train --config configs/lsta_flow.py:stage=activity,dataset=synthetic \\
        --workdir runs/flow --config.init_from=runs/fv
  Measured (2 CPU cores, 3 seeds, 144 held-out clips): verbs 63-72% (6 verbs; 40 epochs gave 73% at seed 0,
  80 no better), about 3 minutes; activities 19-22% (verb 58-65%, noun at chance: grayscale flow has no
  colour), about 2.5 minutes. docs/results.md "Ablation at small scale" has the two-stream rows built on them.

    python -m lsta_jax.convert --kind resnet34 --torch-checkpoint resnet34-b627a593.pth \\
        --output models/resnet34
    # (a) verbs: ego-rnn's flow network (kind egornn_flow), ImageNet weights with the cross-modality conv1
    python -m lsta_jax.train --config configs/lsta_flow.py:stage=verb,dataset=gtea61,split=2 \\
        --workdir runs/flow_verb_g61s2 --config.init_from=models/resnet34
    # (b) activities (kind lsta_flow): the verb network grafted in whole, fc_action = the selector
    python -m lsta_jax.train --config configs/lsta_flow.py:stage=activity,dataset=gtea61,split=2 \\
        --workdir runs/lsta_flow_g61s2 --config.init_from=runs/flow_verb_g61s2
    python -m lsta_jax.evaluate --checkpoint runs/lsta_flow_g61s2 \\
        --config configs/lsta_flow.py:stage=activity,dataset=gtea61,split=2

Paper (6.2-6.3): one 5-frame x/y flow stack per clip; (a) SGD, lr 0.01 x0.5 at epochs 75/150/250/500, 700
epochs; (b) SGD, lr 0.01 x0.5 at epochs 50/100, 500 epochs; batch 32. GTEA61* (split 2): 40.52% with
attention, 36.21% without (the ego-rnn flow network trained the same way). Stack: ego-rnn's random start in
training, the temporal centre in evaluation (the paper's "five frames located in the temporal center").
Verbs (a): `label_key='verb'`, the verb of each activity (GTEA: the class name before its first '_', the
authors' split of LSTA#1; EGTEA: the official verb column, 19 verbs); the builders also keep GTEA's
per-instance `action_label.txt` ids as `verb_label` (`--config.data.label_key=verb_label
--config.model.num_classes=N` trains on those). The number of verbs comes from the data (`num_classes=0`),
and (b) reads it from the stage-(a) workdir (`verb_classes=0`). Not given by the paper, from ego-rnn's flow
protocol: SGD momentum 0.9, weight decay 5e-4, BatchNorm in training mode, shuffled batches; every parameter
trained in both stages.
"""

from lsta_jax.train.config import default_config, model_fields, parse_arg
from lsta_jax.train.presets import set_dataset, set_synthetic, set_toy

STAGES = ("verb", "activity")
# dataset=synthetic: (epochs, lr milestones) of each stage, the paper's milestones scaled to fewer epochs
# (verbs 75/150/250/500 of 700, activities 50/100 of 500); measured: see the module docstring
SYNTHETIC_SCHEDULE = {"verb": (80, (9, 17, 29, 57)), "activity": (60, (6, 12))}


def get_config(arg=None):
    a = parse_arg(arg, stage="verb", dataset="gtea61", split=0)
    if a["stage"] not in STAGES:
        raise ValueError(f"lsta_flow config: stage must be one of {STAGES}, got {a['stage']!r}")
    c = default_config()
    flow_net = ("in_channels", "backbone_stage_sizes", "backbone_widths", "dropout_rate", "batchnorm")
    flow_net += ("batch_stats_from", "dtype")
    if a["stage"] == "verb":
        c.model = model_fields("egornn_flow", *flow_net, num_classes=0)
    else:  # verb_classes 0: the selector's classes are read from the verb network (init_from)
        c.model = model_fields("lsta_flow", *flow_net, num_classes=0, verb_classes=0)
    toy = a["dataset"] == "toy"
    if toy:
        set_toy(c)
    elif a["dataset"] == "synthetic":
        set_synthetic(c, flow=True)
    else:
        set_dataset(c, a["dataset"], a["split"])
    c.name = f"lsta_flow_{a['stage']}_{a['dataset']}_{c.data.builder_config}"
    c.data.modality = "flow"
    if a["stage"] == "verb" and not toy:  # (the toy clips have no verbs: their classes stand in)
        c.model.num_classes = 0  # the number of verbs, from the data
        c.data.label_key = "verb"
    if a["stage"] == "verb":
        c.lr_milestones = (75, 150, 250, 500)
        c.num_epochs = 700
    else:
        c.lr_milestones = (50, 100)
        c.num_epochs = 500
    c.shuffle = True
    c.trainable = "all"
    c.optimizer = "sgd"
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.learning_rate = 1e-2
    c.lr_gamma = 0.5
    c.eval_every_epochs = 5
    if a["dataset"] == "synthetic":  # SYNTHETIC_SCHEDULE: the paper's optimiser, fewer epochs
        c.num_epochs, c.lr_milestones = SYNTHETIC_SCHEDULE[a["stage"]]
        c.eval_every_epochs = 0
    return c
