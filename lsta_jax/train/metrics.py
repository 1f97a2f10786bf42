"""Classification metrics kept as (sum, count) so a padded last batch counts every clip exactly once.

`batch_sums` runs inside the jitted eval step and returns sums over the real (mask=True) clips: loss, top-1
and top-5 hits, the count and the confusion matrix. Sums from all batches add up (`add_sums`); `summarize`
turns the total into top-1, top-5, mean class accuracy (the mean of the per-class recalls over the classes
present), per-class accuracy and, from class names `verb_noun`, verb and noun accuracies: the predicted and
true activity names are split at the FIRST '_' (docs/differences.md §8, LSTA#1: multi-object nouns such as
`ketchup,hotdog,bread` stay one noun class) and a clip counts as a verb hit when both verbs agree.

A model with multi-task heads adds `multitask_sums` (the EPIC-KITCHENS challenge's metrics):
`verb_top1/top5`, `noun_top1/top5`, `action_top1/top5` (the action of the challenge: the (verb, noun) pair,
scored by the product of the two heads' softmaxes, NOT the activity head, whose accuracy stays `top1`), and
`*_mean_class_recall` (the mean of the per-class recalls over the classes present in the split; the
challenge's leaderboard averages over its "many-shot" classes only, which needs the training-set class counts
and is not done here).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# The summary entries the commands print (those present): activity head, then the multi-task challenge metrics
REPORT_KEYS = (
    "top1",
    "top5",
    "mean_class_accuracy",
    "verb_accuracy",
    "noun_accuracy",
    *(f"{t}_{m}" for t in ("verb", "noun", "action") for m in ("top1", "top5", "mean_class_recall")),
    "loss",
)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy (`nn.CrossEntropyLoss` before its batch mean), in float32."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]


def batch_sums(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> dict[str, jax.Array]:
    """Sums over the clips where `mask` is True: loss, correct@1, correct@5, count, confusion (true, pred)."""
    num_classes = logits.shape[-1]
    weight = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    loss = cross_entropy(logits, labels)
    pred = jnp.argmax(logits, axis=-1)
    k = min(5, num_classes)
    top5 = jax.lax.top_k(logits, k)[1]
    in_top5 = jnp.any(top5 == labels[:, None], axis=-1)
    true_1h = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * weight[:, None]
    pred_1h = jax.nn.one_hot(pred, num_classes, dtype=jnp.float32)
    return {
        "loss_sum": jnp.sum(loss * weight),
        "correct1": jnp.sum((pred == labels) * weight),
        "correct5": jnp.sum(in_top5 * weight),
        "count": jnp.sum(weight),
        "confusion": jnp.einsum("bi,bj->ij", true_1h, pred_1h, precision=jax.lax.Precision.HIGHEST),
    }


def multitask_sums(
    verb_logits: jax.Array,
    noun_logits: jax.Array,
    verbs: jax.Array,
    nouns: jax.Array,
    mask: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """The EPIC-KITCHENS challenge's sums of the multi-task heads: `batch_sums` of the verb and of the noun
    head (keys prefixed `verb_`, `noun_`) and of the action = (verb, noun) pair scored as the product of the
    two softmaxes (the challenge's rule): `action_correct1` (both top-1 right), `action_correct5` (the true
    pair among the 5 most probable pairs), per-pair `action_hits` and `action_support` (V*N,) for the
    class-mean recall."""
    sums = {f"verb_{k}": v for k, v in batch_sums(verb_logits, verbs, mask).items()}
    sums.update({f"noun_{k}": v for k, v in batch_sums(noun_logits, nouns, mask).items()})
    num_nouns = noun_logits.shape[-1]
    num_pairs = verb_logits.shape[-1] * num_nouns
    weight = jnp.ones(verbs.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    pair_prob = (
        jax.nn.softmax(verb_logits.astype(jnp.float32), -1)[:, :, None]
        * jax.nn.softmax(noun_logits.astype(jnp.float32), -1)[:, None, :]
    ).reshape(verbs.shape[0], num_pairs)
    true_pair = verbs.astype(jnp.int32) * num_nouns + nouns.astype(jnp.int32)
    hit1 = (jnp.argmax(pair_prob, -1) == true_pair).astype(jnp.float32) * weight
    top5 = jax.lax.top_k(pair_prob, min(5, num_pairs))[1]
    hit5 = jnp.any(top5 == true_pair[:, None], -1).astype(jnp.float32) * weight
    sums.update(
        action_correct1=jnp.sum(hit1),
        action_correct5=jnp.sum(hit5),
        action_hits=jax.ops.segment_sum(hit1, true_pair, num_pairs),
        action_support=jax.ops.segment_sum(weight, true_pair, num_pairs),
    )
    return sums


def multitask_summary(sums: Mapping[str, np.ndarray]) -> dict[str, float]:
    """verb, noun and action top-1, top-5 and class-mean recall (mean over the classes present) from
    `multitask_sums`; verb and noun also their loss. Empty without multi-task sums."""
    if "verb_count" not in sums:
        return {}
    result = {}
    for task in ("verb", "noun"):
        part = summarize({k.removeprefix(f"{task}_"): v for k, v in sums.items() if k.startswith(f"{task}_")})
        result.update(
            {
                f"{task}_top1": part["top1"],
                f"{task}_top5": part["top5"],
                f"{task}_mean_class_recall": part["mean_class_accuracy"],
                f"{task}_loss": part["loss"],
            }
        )
    count = float(sums["verb_count"])
    support = np.asarray(sums["action_support"], np.float64)
    present = support > 0
    result["action_top1"] = float(sums["action_correct1"]) / count
    result["action_top5"] = float(sums["action_correct5"]) / count
    result["action_mean_class_recall"] = float(
        np.mean(np.asarray(sums["action_hits"], np.float64)[present] / support[present])
    )
    return result


def add_sums(total: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Accumulate `batch_sums` results on the host (float64, exact for counts)."""
    new = {k: np.asarray(v, np.float64) for k, v in new.items()}
    if total is None:
        return new
    return {k: total[k] + new[k] for k in new}


def split_activity(name: str) -> tuple[str, str]:
    """'verb_noun...' -> ('verb', 'noun...'), split at the first '_' (a name without '_' is its own verb)."""
    verb, _, noun = name.partition("_")
    return verb, noun


def verb_noun_metrics(class_names: Sequence[str] | None) -> tuple[str, ...]:
    """('verb_accuracy', 'noun_accuracy') when the class names are `verb_noun` activities of at least two
    verbs and two nouns, else (): with one verb (the toy set's `move_0` ... `move_7`) the verb accuracy is 1
    whatever the model does and the noun accuracy is top-1 again, so neither is reported."""
    if class_names is None or not any("_" in n for n in class_names):
        return ()
    verbs, nouns = zip(*(split_activity(n) for n in class_names), strict=True)
    return ("verb_accuracy", "noun_accuracy") if len(set(verbs)) > 1 and len(set(nouns)) > 1 else ()


def summarize(sums: Mapping[str, np.ndarray], class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Scalar metrics (and per-class accuracy) from accumulated `batch_sums`."""
    count = float(sums["count"])
    if count <= 0:
        raise ValueError("no evaluation clips were counted (empty split or every mask False)")
    confusion = np.asarray(sums["confusion"], np.float64)
    support = confusion.sum(axis=1)
    present = support > 0
    per_class = np.where(present, np.diag(confusion) / np.maximum(support, 1), np.nan)
    result: dict[str, Any] = {
        "loss": float(sums["loss_sum"]) / count,
        "top1": float(sums["correct1"]) / count,
        "top5": float(sums["correct5"]) / count,
        "mean_class_accuracy": float(np.nanmean(per_class)) if present.any() else float("nan"),
        "count": int(round(count)),
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
        "confusion": confusion,
    }
    if verb_noun_metrics(class_names):
        if len(class_names) != confusion.shape[0]:
            raise ValueError(f"{len(class_names)} class names for {confusion.shape[0]} classes")
        verbs, nouns = zip(*(split_activity(n) for n in class_names), strict=True)
        same_verb = np.asarray([[a == b for b in verbs] for a in verbs])
        same_noun = np.asarray([[a == b for b in nouns] for a in nouns])
        result["verb_accuracy"] = float((confusion * same_verb).sum() / count)
        result["noun_accuracy"] = float((confusion * same_noun).sum() / count)
    result.update(multitask_summary(sums))
    return result


def scalar_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The float entries of a summary (for logs, TensorBoard and checkpoint ranking)."""
    return {k: float(v) for k, v in summary.items() if isinstance(v, int | float) and k != "count"}


def write_confusion(
    directory: str | Path, confusion: np.ndarray, class_names: Sequence[str] | None = None, title: str = ""
) -> tuple[Path, Path]:
    """Write `confusion.csv` (rows true, columns predicted, with names) and `confusion.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    confusion = np.asarray(confusion)
    n = confusion.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    csv_path = directory / "confusion.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, confusion, strict=True):
            writer.writerow([name, *(int(round(v)) for v in row)])
    support = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(
        confusion, support, out=np.zeros_like(confusion, dtype=np.float64), where=support > 0
    )
    size = max(4.0, min(24.0, 0.25 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalized, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    if n <= 80:
        ax.set_xticks(range(n), names, rotation=90, fontsize=6)
        ax.set_yticks(range(n), names, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.tight_layout()
    png_path = directory / "confusion.png"
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return csv_path, png_path


def write_per_class(
    directory: str | Path, summary: Mapping[str, Any], class_names: Sequence[str] | None
) -> Path:
    """Write `per_class.csv`: class index, name, support-free accuracy (empty when the class is absent)."""
    path = Path(directory) / "per_class.csv"
    per_class = summary["per_class_accuracy"]
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(per_class))]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "class", "accuracy"])
        for i, (name, acc) in enumerate(zip(names, per_class, strict=True)):
            writer.writerow([i, name, "" if acc is None else f"{acc:.6f}"])
    return path
