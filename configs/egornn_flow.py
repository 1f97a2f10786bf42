"""ego-rnn's flow network (kind `egornn_flow`, docs/differences.md §4.2) trained with ego-rnn's
`main-run-flow.py`.

Arg: `dataset=gtea61|gtea71|egtea` (default gtea61), `split=K` (GTEA 1-4, default 2 = GTEA61*; EGTEA 1-3,
default 1); a bare value is the dataset.

    python -m lsta_jax.convert --kind resnet34 --torch-checkpoint resnet34-b627a593.pth \\
        --output models/resnet34
    python -m lsta_jax.train --config configs/egornn_flow.py:dataset=gtea61,split=2 --workdir runs/flow_g61 \\
        --config.init_from=models/resnet34      # ImageNet weights, conv1 by the cross-modality rule
    python -m lsta_jax.evaluate --checkpoint runs/flow_g61 --which best \\
        --config configs/egornn_flow.py:split=2

Protocol (ego-rnn's defaults): one 5-frame x/y flow stack per clip (random start in training, the temporal
centre in evaluation; a horizontal flip inverts the x flow), Scale(256) + multi-scale corner crop 224; SGD
momentum 0.9, weight decay 5e-4, lr 1e-2 x0.5 at epochs 150/300/500, 750 epochs, batch 32, shuffled, every
parameter trained, BatchNorm in training mode (`batchnorm='train'`), evaluated every epoch, best kept.
Paper: no row for this network alone; the LSTA paper's flow ResNet-34 without attention (verb pre-trained,
then activities) reaches 36.21% on GTEA61*. It is the flow half of the late fusion (`lsta_jax.evaluate
--flow-checkpoint`) and of `configs/egornn_two_stream.py`.
"""

from lsta_jax.train.config import default_config, model_fields, parse_arg
from lsta_jax.train.presets import set_dataset


def get_config(arg=None):
    a = parse_arg(arg, dataset="gtea61", split=0)
    c = default_config()
    c.model = model_fields(
        "egornn_flow",
        *("num_classes", "in_channels", "backbone_stage_sizes", "backbone_widths", "dropout_rate"),
        *("batchnorm", "batch_stats_from", "dtype"),
    )
    set_dataset(c, a["dataset"], a["split"])
    c.name = f"egornn_flow_{a['dataset']}_{c.data.builder_config}"
    c.data.modality = "flow"
    c.shuffle = True
    c.trainable = "all"
    c.optimizer = "sgd"
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.learning_rate = 1e-2
    c.lr_milestones = (150, 300, 500)
    c.lr_gamma = 0.5
    c.num_epochs = 750
    c.eval_every_epochs = 1
    return c
