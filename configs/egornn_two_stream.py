"""ego-rnn's joint two-stream model (kind `egornn_two_stream`, docs/differences.md §4.4) with
`main-run-twoStream.py`.

Arg: `dataset=gtea61|gtea71|egtea` (default gtea61), `split=K` (as `configs/egornn_flow.py`).

    python -m lsta_jax.train --config configs/egornn_rgb.py:split=2 --workdir runs/rgb_g61 ...  # RGB
    python -m lsta_jax.train --config configs/egornn_flow.py:split=2 --workdir runs/flow_g61 ...  # flow
    python -m lsta_jax.train --config configs/egornn_two_stream.py:split=2 --workdir runs/two_g61 \\
        --config.init_from_rgb=runs/rgb_g61_stage2 --config.init_from_flow=runs/flow_g61 \\
        --config.init_which=best
    python -m lsta_jax.evaluate --checkpoint runs/two_g61 --which best \\
        --config configs/egornn_two_stream.py:split=2

(or `--config.init_from=models/two_stream` for a converted ego-rnn two-stream checkpoint). The two trained
single-stream runs graft into `frameModel` / `flowModel` unchanged (ego-rnn: "either last or best
single-stream model can seed two-stream training", issue ego-rnn#3).

Protocol (`main-run-twoStream.py` defaults): batches of the 25-frame clip AND one 5-frame flow stack
(`data.modality='rgb+flow'`); SGD momentum 0.9, weight decay 5e-4, lr 1e-2 x0.99 after every epoch
(StepLR(1, 0.99), written as a milestone at every epoch), 250 epochs, batch 32, shuffled. Trained: `fc2`, the
RGB ConvLSTM, the RGB `layer4` conv1/conv2 kernels and the RGB backbone fc weight (its bias never gets a
gradient), and the whole flow `layer4` at lr 1e-4 (`lr_scales`); the flow `layer4` BatchNorm in training mode,
all other BatchNorm frozen (`batchnorm='train'`). Evaluated every epoch with the best kept, as ego-rnn.
Paper (Table 2/3, ego-rnn two stream): 77.59% GTEA61*, 79% GTEA61 (4 splits), 77% GTEA71, 60.76% EGTEA.
"""

import ml_collections

from lsta_jax.train.config import default_config, model_fields, parse_arg
from lsta_jax.train.presets import set_dataset


def get_config(arg=None):
    a = parse_arg(arg, dataset="gtea61", split=0)
    c = default_config()
    c.model = model_fields(
        "egornn_two_stream",
        *("num_classes", "mem_size", "attention_classes", "in_channels", "backbone_stage_sizes"),
        *("backbone_widths", "dropout_rate", "batchnorm", "dtype", "remat"),
    )
    set_dataset(c, a["dataset"], a["split"])
    c.name = f"egornn_two_stream_{a['dataset']}_{c.data.builder_config}"
    c.data.modality = "rgb+flow"
    c.init_from_rgb = ""  # a trained convlstm_rgb workdir / model dir, grafted into frameModel
    c.init_from_flow = ""  # a trained egornn_flow workdir / model dir, grafted into flowModel
    c.shuffle = True
    trainable = [
        r"fc2/.*",
        r"frameModel/lstm_cell/.*",
        r"frameModel/resNet/layer4_\d+/conv[12]/kernel",
        r"frameModel/resNet/fc/kernel",
        r"flowModel/layer4_\d+/.*",
    ]
    c.lr_scales = ((r"flowModel/layer4_\d+/.*", 0.01),)  # ego-rnn's second parameter group: lr 1e-4
    c.optimizer = "sgd"
    c.momentum = 0.9
    c.weight_decay = 5e-4
    c.learning_rate = 1e-2
    c.num_epochs = 250
    c.lr_milestones = tuple(range(1, c.num_epochs))
    c.lr_gamma = 0.99
    c.eval_every_epochs = 1
    return ml_collections.ConfigDict(dict(c.to_dict(), trainable=trainable))  # a regex list, not a stage
