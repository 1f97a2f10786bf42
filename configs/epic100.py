"""LSTA RGB on EPIC-KITCHENS-100, multi-task: activity, verb (97) and noun (300) heads, C_o = 300.

The EPIC-55 recipe (`configs/epic.py`: activity-controlled verb/noun biases, summed cross-entropies, the
reference's two-stage RGB protocol) on the `epic_kitchens100` builder: trained on the official 'train' split,
evaluated on 'validation', submitted on 'test'. The activity classes are the (verb, noun) pairs of the train
and validation annotations (`num_classes=0`: from the dataset). Arg: `stage=1|2`.

    python -m lsta_jax.data epic_kitchens100 --manual-dir /data/EPIC-KITCHENS-100 --data-dir DIR
    python -m lsta_jax.train --config configs/epic100.py --workdir runs/epic100_stage1 \\
        --config.init_from=models/resnet34 --config.data.data_dir=DIR
    python -m lsta_jax.train --config configs/epic100.py:stage=2 --workdir runs/epic100_stage2 \\
        --config.init_from=runs/epic100_stage1 --config.data.data_dir=DIR
    python -m lsta_jax.evaluate --checkpoint runs/epic100_stage2 --config configs/epic100.py:stage=2
    python -m lsta_jax.submission --checkpoint runs/epic100_stage2 --config configs/epic100.py:stage=2 \\
        --split test --output test.json --sls-pt 1 --sls-tl 3 --sls-td 3

There is no paper number for EPIC-KITCHENS-100 (the LSTA paper predates it).
"""

from pathlib import Path

from lsta_jax.train.config import load_config, parse_arg


def get_config(arg=None):
    a = parse_arg(arg, stage=1)
    c = load_config(f"{Path(__file__).parent / 'epic.py'}:stage={a['stage']}")
    c.name = f"epic100_stage{a['stage']}"
    c.model.verb_classes = 97
    c.model.noun_classes = 300
    c.data.name = "epic_kitchens100"
    c.data.eval_split = "validation"
    return c
