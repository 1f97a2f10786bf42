"""Build the datasets from Python or the command line; export synthetic clips as frame folders and mp4s.

    python -m lsta_jax.data synthetic_ego --data-dir /tmp/tfds
    python -m lsta_jax.data synthetic_ego --data-dir /tmp/tfds --num-train 120 --frame-size 96
    python -m lsta_jax.data synthetic_ego --data-dir /tmp/tfds --flow     # the same clips + TV-L1 flow
    python -m lsta_jax.data synthetic_objects --data-dir /tmp/tfds      # the pre-training images
    python -m lsta_jax.data gtea61 --config split2 --manual-dir /data/gtea_61 --data-dir DIR
    python -m lsta_jax.data export --output /tmp/clips --count 4      # synthetic_ego test clips (the demo's)
    python -m lsta_jax.data flow --frames /data/gtea_61/frames --output /data/gtea_61   # TV-L1 flow images
The `tfds build` command of tensorflow-datasets 4.9.10 cannot be used without tensorflow (its CLI imports
tensorflow at start-up, in `scripts/cli/convert_format_utils.py`); this command runs the same
`download_and_prepare` (array_record files) and needs no tensorflow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import tensorflow_datasets as tfds

from lsta_jax import cli
from lsta_jax.data import synthetic, synthetic_objects
from lsta_jax.data.egtea import EgteaGazePlus
from lsta_jax.data.epic_kitchens import EpicKitchens55
from lsta_jax.data.epic_kitchens100 import EpicKitchens100
from lsta_jax.data.gtea import Gtea61, Gtea71

BUILDERS = {
    "gtea61": Gtea61,
    "gtea71": Gtea71,
    "egtea_gaze_plus": EgteaGazePlus,
    "epic_kitchens55": EpicKitchens55,
    "epic_kitchens100": EpicKitchens100,
    "synthetic_ego": synthetic.SyntheticEgo,
    "synthetic_objects": synthetic_objects.SyntheticObjects,
}
# builders that make their own data (no manual_dir, built on first use): name -> (options, builder config)
GENERATED = {
    "synthetic_ego": (synthetic.SyntheticOptions, synthetic.SyntheticEgoConfig),
    "synthetic_objects": (
        synthetic_objects.SyntheticObjectsOptions,
        synthetic_objects.SyntheticObjectsConfig,
    ),
}


def builder(
    name: str, data_dir: str | Path, config: str | None = None, **synthetic_options
) -> tfds.core.DatasetBuilder:
    """The builder object (not built); `synthetic_options` are fields of the generated datasets' options
    (`synthetic.SyntheticOptions`, `synthetic_objects.SyntheticObjectsOptions`)."""
    if name not in BUILDERS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(BUILDERS)}")
    cls = BUILDERS[name]
    kwargs = dict(data_dir=str(data_dir), file_format="array_record")
    if name in GENERATED and synthetic_options:
        options_cls, config_cls = GENERATED[name]
        options = dataclasses.replace(options_cls(), **synthetic_options)
        options.validate()
        return cls(config=config_cls(options, name=config), **kwargs)
    if synthetic_options:
        raise TypeError(f"{name}: options {sorted(synthetic_options)} only apply to {sorted(GENERATED)}")
    if config is None and cls.BUILDER_CONFIGS:
        config = cls.BUILDER_CONFIGS[0].name
    return cls(config=config, **kwargs)


def build(
    name: str,
    data_dir: str | Path,
    manual_dir: str | Path | None = None,
    config: str | None = None,
    manual_dir_flag: str = "manual_dir=",
    **synthetic_options,
) -> tfds.core.DatasetBuilder:
    """Build (once; later calls reuse the files) and return the builder: `.as_data_source(split)`,
    `.info.features['label'].names`. A `manual_dir` that is missing or empty is refused with one line naming
    `manual_dir_flag`, how the caller sets it (`--manual-dir` for the command,
    `--config.data.manual_dir` for training)."""
    if manual_dir is not None:
        folder = Path(manual_dir)
        if not folder.is_dir() or not any(folder.iterdir()):
            state = "does not exist" if not folder.is_dir() else "is empty"
            raise FileNotFoundError(
                f"{name}: the raw-data folder {folder} {state}: set {manual_dir_flag}RAW_DIR to the folder "
                "that holds frames/ in the authors' layout"
            )
    b = builder(name, data_dir, config, **synthetic_options)
    download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir) if manual_dir else None)
    b.download_and_prepare(download_config=download_config)
    return b


def class_names(b: tfds.core.DatasetBuilder, key: str = "label") -> list[str]:
    """The ClassLabel names of a built dataset (they travel into checkpoints)."""
    return list(b.info.features[key].names)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["flow"]:  # its own options: `python -m lsta_jax.data flow --help`
        from lsta_jax.data.flow_extract import main as flow_main

        return flow_main(argv[1:])
    parser = cli.ArgumentParser(prog="python -m lsta_jax.data", description=__doc__)
    parser.add_argument("name", help=f"one of {sorted(BUILDERS)}, 'export' or 'flow' (see flow --help)")
    parser.add_argument("--data-dir", default=None, help="tfds data_dir (default: ~/tensorflow_datasets)")
    parser.add_argument("--manual-dir", default=None, help="raw frames in the authors' layout")
    cli.add_hidden_alias(parser, "--data_dir", "--data-dir")
    cli.add_hidden_alias(parser, "--manual_dir", "--manual-dir")
    parser.add_argument("--config", default=None, help="builder config, e.g. split2")
    parser.add_argument("--output", default="synthetic_clips", help="export: output folder")
    parser.add_argument("--count", type=cli.positive_int, default=4, help="export: clips to write")
    parser.add_argument("--split", default="test", choices=("train", "test"), help="export: the split")
    parser.add_argument("--formats", default="frames,mp4", help="export: frames and/or mp4")
    defaults, switches = synthetic.SyntheticOptions(), []
    for field in dataclasses.fields(synthetic.SyntheticOptions):
        flag, default = f"--{field.name.replace('_', '-')}", getattr(defaults, field.name)
        if isinstance(default, bool):
            switches.append(flag)  # a switch; None (the option's default) when not given
            parser.add_argument(flag, action="store_const", const=True, help=f"synthetic: {field.name}")
        elif field.name == "layout":
            parser.add_argument(
                flag,
                choices=synthetic.LAYOUTS,
                default=None,
                help=f"synthetic: {field.name} (default: {default})",
            )
        else:
            parser.add_argument(
                flag,
                type=cli.non_negative_int,
                default=None,
                help=f"synthetic: {field.name} (default: {default})",
            )
    args = parser.parse_args(cli.old_switch_values(argv, switches))  # `--flow 1` still works
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(synthetic.SyntheticOptions)
        if getattr(args, f.name) is not None
    }
    if args.name == "synthetic_objects":  # its options are a subset (num_train, num_test, frame_size, seed)
        known = {f.name for f in dataclasses.fields(synthetic_objects.SyntheticObjectsOptions)}
        if set(options) - known:
            print(f"error: synthetic_objects has no options {sorted(set(options) - known)}", file=sys.stderr)
            return 2
    try:
        if args.name == "export":
            written = synthetic.export_clips(
                dataclasses.replace(synthetic.SyntheticOptions(), **options),
                args.output,
                split=args.split,
                count=args.count,
                formats=args.formats.split(","),
            )
            print(json.dumps(written, indent=1))
            return 0
        start = time.time()
        data_dir = args.data_dir or str(Path("~/tensorflow_datasets").expanduser())
        b = build(args.name, data_dir, args.manual_dir, args.config, "--manual-dir ", **options)
    except (KeyError, FileNotFoundError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sizes = {split: info.num_examples for split, info in b.info.splits.items()}
    print(
        f"{b.name}/{b.builder_config.name}: {sizes} clips, {len(class_names(b))} classes in {b.data_dir} "
        f"({time.time() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
