"""Data: tfds builders (no tensorflow), the reference's sampling and transforms, grain pipelines, load_clip.

Public interface (others code against these):
- `load_clip(source, num_frames=25, size=224, resize_shorter=256, min_frames=5) -> np.ndarray` float32
  (T, size, size, 3): the reference's eval preprocessing of a frames folder or a video (docs/differences.md
  §5).
- Builders, registered with tfds: `gtea61`, `gtea71` (configs split1..split4), `egtea_gaze_plus` (split1..3),
  `epic_kitchens55`, `epic_kitchens100` (splits train/validation/test, record names = narration ids),
  `synthetic_ego` (configs 'default', 'tiny', or any `SyntheticOptions`; records carry per-frame `boxes`
  of the hand, target and confuser, passed through the eval loader in crop units), `synthetic_objects` (the
  pre-training images, `SyntheticObjectsOptions`).
  `build(name, data_dir, manual_dir=None, config=None, **synthetic_options) -> builder` (built, reusable);
  `builder.as_data_source(split)` -> random-access records; `class_names(builder)` -> ClassLabel names.
  Command line: `python -m lsta_jax.data NAME --data-dir DIR [--manual-dir RAW] [--config splitK]`.
  (The `tfds build` command of tensorflow-datasets 4.9.10 imports tensorflow at start-up, in its
  convert_format module, so it fails without tensorflow; `lsta_jax.data.build` calls the same
  `download_and_prepare`.)
- `make_train_loader(data_source, *, global_batch_size, seed, num_frames=25, crop_size=224,
  resize_shorter=256, shuffle=True, modality='rgb', label_key='label', shard_by_process=True,
  process_index=None, process_count=None, worker_count=None, num_epochs=None)` and
  `make_eval_loader(data_source, *, global_batch_size, ...same geometry..., process_index, process_count,
  worker_count)`: grain DataLoaders of per-process batches {'clip', 'label', 'verb', 'noun'} (verb and noun:
  the multi-task labels; + 'mask' for eval; + 'index' with `with_index=True`); iterators have
  get_state()/set_state() (resume with the same worker_count).
  `shuffle=True` by default; the reference's training loader is NOT shuffled (shuffle=False reproduces it).
  `num_eval_batches(num_examples, global_batch_size, worker_count=0)`: global batches of one eval pass.
  `normalize_on_host=False` (both loaders) gives uint8 `clip`/`flow`, normalised on the device by
  `device_normalize.normalize_inputs` (what `trainer.model_inputs` calls; docs/input-pipeline.md).
  Builder configs `<split>_jpeg` (gtea61, gtea71, egtea_gaze_plus) store the frames as JPEG (fast to decode,
  lossy) instead of PNG (the default, the reference's Scale(256) pixels exactly).
  `modality='flow'` gives 5-frame x/y flow stacks (b, crop, crop, 10); `label_key` picks 'label', 'verb',
  'noun' or 'verb_label' (flow verb pretraining).
- `synthetic.export_clips(SyntheticOptions(...), directory, split, count, formats)` and
  `python -m lsta_jax.data export --output DIR`: synthetic clips as frame folders and .mp4 files.
- `flow.tvl1_flow(frames (T, H, W, 3) uint8) -> (T - 1, H, W, 2) float32` (OpenCV TV-L1; x right, y down),
  `flow.quantize_flow` / `flow.dequantize_flow` (dense_flow's +-20 px -> 0..255, 128 ~ still) and
  `python -m lsta_jax.data flow --frames DIR_OR_TREE --output DIR`: flow_x/flow_y JPEGs in the authors' layout
  (`lsta_jax.data.flow_extract`; import `lsta_jax.data.flow` explicitly, it loads OpenCV).
- `transforms`: one function per reference rule (sampling, Scale, crops, flip, normalisation, flow stacks).
"""

from lsta_jax.data import transforms
from lsta_jax.data.build import BUILDERS, GENERATED, build, builder, class_names
from lsta_jax.data.clip_io import load_clip
from lsta_jax.data.egtea import EgteaGazePlus
from lsta_jax.data.epic_kitchens import EpicKitchens55
from lsta_jax.data.epic_kitchens100 import EpicKitchens100
from lsta_jax.data.gtea import Gtea61, Gtea71
from lsta_jax.data.pipeline import make_eval_loader, make_train_loader, num_eval_batches
from lsta_jax.data.synthetic import SyntheticEgo, SyntheticOptions, export_clips
from lsta_jax.data.synthetic_objects import SyntheticObjects, SyntheticObjectsOptions

__all__ = [
    "BUILDERS",
    "GENERATED",
    "EgteaGazePlus",
    "EpicKitchens55",
    "EpicKitchens100",
    "Gtea61",
    "Gtea71",
    "SyntheticEgo",
    "SyntheticObjects",
    "SyntheticObjectsOptions",
    "SyntheticOptions",
    "build",
    "builder",
    "class_names",
    "export_clips",
    "load_clip",
    "make_eval_loader",
    "make_train_loader",
    "num_eval_batches",
    "transforms",
]
