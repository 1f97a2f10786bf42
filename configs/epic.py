"""LSTA RGB on EPIC-KITCHENS-55, multi-task: activity, verb (125) and noun (352) heads, C_o = 300 (paper 6.5).

The authors released no EPIC code (docs/differences.md §6). The activity classes are the (verb, noun) pairs of
the training annotations (`epic_kitchens55` builder, `num_classes=0`: taken from the dataset); the verb and
noun heads sit on the same LSTA feature and the activity logits control their biases through a learnt
linear map (`head_bias_control='logits'`, `lsta_jax/models/heads.py`; 'probabilities' or 'none' to ablate).
The loss is the sum of the three cross-entropies (`loss_weights`). Evaluation reports the challenge's verb,
noun and action top-1/top-5 and class-mean recall on the held-out 'validation' videos.

Arg: `stage=1|2`.

    python -m lsta_jax.data epic_kitchens55 --manual-dir /data/EPIC_KITCHENS_2018 --data-dir DIR
    python -m lsta_jax.train --config configs/epic.py --workdir runs/epic_stage1 \\
        --config.init_from=models/resnet34 --config.data.data_dir=DIR
    python -m lsta_jax.train --config configs/epic.py:stage=2 --workdir runs/epic_stage2 \\
        --config.init_from=runs/epic_stage1 --config.data.data_dir=DIR
    python -m lsta_jax.evaluate --checkpoint runs/epic_stage2 --config configs/epic.py:stage=2
    python -m lsta_jax.submission --checkpoint runs/epic_stage2 --config configs/epic.py:stage=2 \\
        --split test_s1 --output seen.json        # and --split test_s2 --output unseen.json

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
    c.model.verb_classes = 125
    c.model.noun_classes = 352
    c.model.head_bias_control = "logits"
    c.data.name = "epic_kitchens55"
    c.data.builder_config = ""
    c.data.eval_split = "validation"
    c.shuffle = True  # large and ordered by video: an unshuffled loader would see one kitchen per stretch
    c.best_metric = "top1"
    return stage2(c) if a["stage"] == 2 else c
