"""LSTA RGB on GTEA 71 (same protocol as GTEA 61, 71 classes, C_o = 100).

Arg: `split=K` (1-4, default 2), `stage=1|2`.

    python -m lsta_jax.train --config configs/gtea71.py:split=2 --workdir runs/gtea71_s2_stage1 \\
        --config.init_from=models/resnet34
    python -m lsta_jax.train --config configs/gtea71.py:split=2,stage=2 --workdir runs/gtea71_s2_stage2 \\
        --config.init_from=runs/gtea71_s2_stage1

Paper (LSTA-RGB, Table 2): 66.16% (mean over the 4 splits).
"""

from lsta_jax.train.config import default_config, parse_arg, stage2


def get_config(arg=None):
    a = parse_arg(arg, split=2, stage=1)
    if a["split"] not in (1, 2, 3, 4) or a["stage"] not in (1, 2):
        raise ValueError(f"gtea71 config: split must be 1-4 and stage 1 or 2, got {a}")
    c = default_config()
    c.name = f"gtea71_split{a['split']}_stage{a['stage']}"
    c.model.num_classes = 71
    c.model.c_cam_classes = 100
    c.data.name = "gtea71"
    c.data.builder_config = f"split{a['split']}"
    return stage2(c) if a["stage"] == 2 else c
