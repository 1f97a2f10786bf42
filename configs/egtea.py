"""LSTA RGB on EGTEA Gaze+ (106 activities, C_o = 150 as the paper; the authors' script must be given
`--outPoolSize 150` by hand, docs/differences.md §5).

Arg: `split=K` (1-3, default 1), `stage=1|2`.

    python -m lsta_jax.train --config configs/egtea.py:split=1 --workdir runs/egtea_s1_stage1 \\
        --config.init_from=models/resnet34
    python -m lsta_jax.train --config configs/egtea.py:split=1,stage=2 --workdir runs/egtea_s1_stage2 \\
        --config.init_from=runs/egtea_s1_stage1

Multi-task verb/noun heads as for EPIC (`lsta_jax/models/heads.py`; not in the paper for EGTEA): add
`--config.model.verb_classes=19 --config.model.noun_classes=53` (the lists' verb and noun columns).

Paper (LSTA-RGB, Table 2): 57.94% (mean over the 3 splits). The paper trains EGTEA with the GTEA schedule
(200 + 100 epochs); the same is used here.
"""

from lsta_jax.train.config import default_config, parse_arg, stage2


def get_config(arg=None):
    a = parse_arg(arg, split=1, stage=1)
    if a["split"] not in (1, 2, 3) or a["stage"] not in (1, 2):
        raise ValueError(f"egtea config: split must be 1-3 and stage 1 or 2, got {a}")
    c = default_config()
    c.name = f"egtea_split{a['split']}_stage{a['stage']}"
    c.model.num_classes = 106
    c.model.c_cam_classes = 150
    c.data.name = "egtea_gaze_plus"
    c.data.builder_config = f"split{a['split']}"
    return stage2(c) if a["stage"] == 2 else c
