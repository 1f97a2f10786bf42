"""LSTA RGB on EPIC-KITCHENS-55, activity (verb+noun pair) classification, C_o = 300.

The authors released no EPIC code (reference section 6). This config trains the single-head RGB model on the
action labels of the `epic_kitchens55` builder (classes named `verb_noun`, so verb and noun accuracies are
reported from the predicted action); the multi-task verb/noun heads with activity-controlled biases are
NOT implemented here. Number of classes: taken from the dataset (`num_classes=0`).

Arg: `stage=1|2`.

    python -m lsta_jax.train --config configs/epic.py --workdir runs/epic_stage1 \\
        --config.init_from=converted/resnet34
    python -m lsta_jax.train --config configs/epic.py:stage=2 --workdir runs/epic_stage2 \\
        --config.init_from=runs/epic_stage1

Paper (LSTA RGB, multi-task): 30.16% action top-1 on S1 (seen), 15.88% on S2 (unseen); verb ~58%.
"""

from lsta_jax.train.config import default_config, parse_arg, stage2


def get_config(arg=None):
    a = parse_arg(arg, stage=1)
    if a["stage"] not in (1, 2):
        raise ValueError(f"epic config: stage must be 1 or 2, got {a}")
    c = default_config()
    c.name = f"epic_stage{a['stage']}"
    c.model.num_classes = 0  # from the dataset
    c.model.c_cam_classes = 300
    c.data.name = "epic_kitchens55"
    c.data.builder_config = ""
    c.data.eval_split = "validation"
    c.shuffle = True  # large and ordered by video: an unshuffled loader would see one kitchen per stretch
    c.best_metric = "top1"
    return stage2(c) if a["stage"] == 2 else c
