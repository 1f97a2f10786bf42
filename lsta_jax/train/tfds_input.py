"""Training input from the tfds builders of `lsta_jax.data` (synthetic_ego, gtea61, gtea71, egtea_gaze_plus,
epic_kitchens55), read without tensorflow through `as_data_source` and the data package's grain loaders.

The builder is prepared on first use (`config.data.manual_dir` holds raw frames in the authors' layout for the
real datasets). Class names come from the builder's `label` feature. Loader contract (lsta_jax.data):
`make_train_loader(source, global_batch_size, seed, num_frames, crop_size, resize_shorter, shuffle, ...)`
-> an iterator of this process's {'clip', 'label'} with get_state/set_state; `make_eval_loader(source,
global_batch_size, num_frames, crop_size, resize_shorter, ...)` -> batches with a `mask`. Training clips
come as uint8 and are normalised on the device (`config.data.normalize_on_device`, default True; False
normalises on the host as the evaluation batches are); docs/input-pipeline.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsta_jax.train.data_bundle import Data


class DatasetNotBuilt(FileNotFoundError):
    """A dataset that needs raw files was neither built before nor given `config.data.manual_dir`."""


def dataset_builder(config: Any) -> Any:
    """`lsta_jax.data.build` of config.data (built on first use, reused afterwards).

    A dataset built from raw frames (every builder but the synthetic ones) that is not built yet and has no
    `config.data.manual_dir` raises `DatasetNotBuilt` with a one-line message naming the field and the build
    command, instead of tfds' traceback from inside `download_and_prepare`.
    """
    from lsta_jax import data as data_lib

    d = config.data
    data_dir = d.data_dir or str(Path("~/tensorflow_datasets").expanduser())
    options = d.synthetic.to_dict() if d.name in data_lib.GENERATED and d.get("synthetic") else {}
    config_name = d.builder_config or None
    if not d.manual_dir and d.name not in data_lib.GENERATED:
        b = data_lib.builder(d.name, data_dir, config=config_name, **options)
        if not b.is_prepared():
            where = f"{d.name}/{b.builder_config.name}" if b.builder_config else d.name
            command = f"python -m lsta_jax.data {d.name}"
            command += f" --config {b.builder_config.name}" if b.builder_config else ""
            raise DatasetNotBuilt(
                f"dataset {where} is not built in {data_dir}: pass --config.data.manual_dir=RAW_FRAMES_DIR "
                f"(built on first use) or build it once with `{command} --manual-dir RAW_FRAMES_DIR "
                f"--data-dir {data_dir}`"
            )
    manual_dir, flag = d.manual_dir or None, "--config.data.manual_dir="
    return data_lib.build(d.name, data_dir, manual_dir, config_name, manual_dir_flag=flag, **options)


def make_data(config: Any) -> Data:
    """`Data` for a tfds builder of lsta_jax.data (see the module docstring)."""
    from lsta_jax import data as data_lib

    for name in ("make_train_loader", "make_eval_loader"):
        if not hasattr(data_lib, name):
            raise ImportError(
                f"lsta_jax.data has no {name}: dataset {config.data.name!r} cannot be loaded yet"
            )
    d = config.data
    builder = dataset_builder(config)
    train_source = builder.as_data_source(split=d.train_split)
    eval_source = builder.as_data_source(split=d.eval_split)
    label_key = d.get("label_key", "label")
    if label_key in ("label", "verb", "noun"):  # ClassLabel features: the names of what is trained
        class_names = data_lib.class_names(builder, label_key)
    else:  # e.g. 'verb_label' (GTEA's action_label.txt ids): numbered, `model.num_classes` must be set
        if config.model.num_classes <= 0:
            raise ValueError(
                f"config.data.label_key {label_key!r} has no class names: set config.model.num_classes"
            )
        class_names = [str(i) for i in range(config.model.num_classes)]
    geometry = dict(
        num_frames=d.num_frames,
        crop_size=d.crop_size,
        resize_shorter=d.resize_shorter,
        worker_count=d.worker_count,
        modality=d.get("modality", "rgb"),
        label_key=d.get("label_key", "label"),
    )
    train = data_lib.make_train_loader(
        train_source,
        global_batch_size=config.global_batch_size,
        seed=config.seed,
        shuffle=config.shuffle,
        # uint8 training clips, normalised inside the jitted step (trainer.model_inputs); evaluation batches
        # stay float32 because evaluate's two-stream fusion applies the models outside that step
        normalize_on_host=not d.get("normalize_on_device", True),
        **geometry,
    )
    return Data(
        train=iter(train),
        make_eval=lambda: iter(
            data_lib.make_eval_loader(
                eval_source,
                global_batch_size=config.eval_batch_size,
                flow_segments=d.get("flow_segments", 1),
                **geometry,
            )
        ),
        class_names=class_names,
        steps_per_epoch=max(1, len(train_source) // config.global_batch_size),
        num_train=len(train_source),
        num_eval=len(eval_source),
    )
