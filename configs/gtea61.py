"""LSTA RGB on GTEA 61 (docs/differences.md §5; `train_rgb.sh`): stage 1, then stage 2 from the stage-1
workdir.

Arg: `split=K` (1-4, default 2 = the fixed split "GTEA61*"), `stage=1|2`; a bare number is the split.

    python -m lsta_jax.train --config configs/gtea61.py --workdir runs/gtea61_s2_stage1 \\
        --config.init_from=models/resnet34             # ImageNet ResNet-34 converted by lsta_jax.convert
    python -m lsta_jax.train --config configs/gtea61.py:split=2,stage=2 --workdir runs/gtea61_s2_stage2 \\
        --config.init_from=runs/gtea61_s2_stage1       # the LAST stage-1 checkpoint, as the reference
    python -m lsta_jax.evaluate --checkpoint runs/gtea61_s2_stage2 --config configs/gtea61.py:split=2,stage=2

Paper (LSTA-RGB, Table 2): 74.14% on GTEA61* (split 2), 71.32% mean over the 4 splits.
Stage 1: 200 epochs, Adam lr 1e-3 (x0.1 at epochs 25, 75, 150), batch 32, 25 frames, C_o = 100, trains the
LSTA cell and the classifier. Stage 2: 100 epochs, lr 1e-4 (x0.1 at 25, 75), also layer4 conv1/conv2 and the
backbone fc. Evaluation every 5 epochs on the test subject; 'best' is chosen by test top-1 as the reference.
"""

from lsta_jax.train.config import default_config, parse_arg, stage2


def get_config(arg=None):
    a = parse_arg(arg, split=2, stage=1)
    if a["split"] not in (1, 2, 3, 4) or a["stage"] not in (1, 2):
        raise ValueError(f"gtea61 config: split must be 1-4 and stage 1 or 2, got {a}")
    c = default_config()
    c.name = f"gtea61_split{a['split']}_stage{a['stage']}"
    c.model.num_classes = 61
    c.model.c_cam_classes = 100
    c.data.name = "gtea61"
    c.data.builder_config = f"split{a['split']}"
    return stage2(c) if a["stage"] == 2 else c
