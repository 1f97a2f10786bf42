"""Every command refuses what would go wrong silently, with ONE line on stderr that names the problem and the
fix, and a non-zero exit status. Commands run in-process through their `main(argv)`.

The workdir fixture is written by hand (no training): a tiny `lsta_rgb` with random weights saved as a model
directory, plus the `config.json` and the `input` entry that training writes beside it.
"""

from __future__ import annotations

import dataclasses
import json
import re

import jax
import numpy as np
import pytest
from test_train import tiny_config

from lsta_jax import cli
from lsta_jax.__main__ import COMMANDS
from lsta_jax.__main__ import main as lsta_main
from lsta_jax.checkpoint import MODEL_JSON, abstract_variables, save_model
from lsta_jax.evaluate import main as evaluate_main
from lsta_jax.extract import main as extract_main
from lsta_jax.train import metrics, trainer
from lsta_jax.train.__main__ import main as train_main
from lsta_jax.train.config import ConfigOverrideError, apply_overrides, load_config
from lsta_jax.train.consistency import ConfigMismatch
from lsta_jax.train.input_pipeline import make_data


def one_line(text: str) -> str:
    """The single non-empty line of `text` (fails when there are several: an error must be one line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


def refused(capsys, main, argv) -> str:
    """Run `main(argv)`; it must exit non-zero (returned or via SystemExit); return its one stderr line."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    assert status not in (0, None)
    return one_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workdir of the tiny toy config (4 classes, 2 frames of 48 px, 10 eval clips): model directory +
    `config.json` + the `input` geometry, as `train_and_evaluate` writes them."""
    root = tmp_path_factory.mktemp("cli_errors") / "run"
    config = tiny_config()
    kind, model_config = config.model.kind, trainer.model_config(config)
    from lsta_jax.models import create_model

    abstract = abstract_variables(create_model(kind, **model_config), kind, model_config)
    rng = np.random.default_rng(0)
    variables = jax.tree_util.tree_map(
        lambda leaf: (
            rng.uniform(0.5, 1.5, leaf.shape) if leaf.ndim == 1 else rng.normal(0, 0.1, leaf.shape)
        ).astype(leaf.dtype),
        abstract,
    )
    save_model(root, kind, model_config, variables, make_data(config).class_names)
    (root / "config.json").write_text(config.to_json_best_effort(indent=2))
    meta = json.loads((root / MODEL_JSON).read_text())
    d = config.data
    meta["input"] = {"num_frames": d.num_frames, "size": d.crop_size, "resize_shorter": d.resize_shorter}
    (root / MODEL_JSON).write_text(json.dumps(meta))
    return root, config


# --- evaluate --------------------------------------------------------------------------------------------


def test_evaluate_reads_the_workdirs_config_when_config_is_omitted(workdir, capsys, tmp_path):
    root, config = workdir
    assert evaluate_main(["--checkpoint", str(root), "--output", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    # the workdir's 10 evaluation clips (configs/synthetic.py:toy alone has 96)
    assert summary["count"] == config.data.num_eval == 10
    assert "verb_accuracy" not in summary  # toy names move_0 ... move_3: one verb, nothing to report
    capsys.readouterr()


def test_evaluate_refuses_another_dataset(workdir, capsys):
    root, _ = workdir
    line = refused(capsys, evaluate_main, ["--checkpoint", str(root), "--config", "configs/synthetic.py"])
    assert "'toy'" in line and "'synthetic_ego'" in line and "omit --config" in line


def test_evaluate_refuses_another_input_geometry(workdir, capsys):
    root, _ = workdir
    # configs/synthetic.py:toy reads 6 frames; the model was trained on 2
    line = refused(capsys, evaluate_main, ["--checkpoint", str(root), "--config", "configs/synthetic.py:toy"])
    assert (
        "num frames 2" in line and "config.data.num_frames=6" in line and "--config.data.num_frames=2" in line
    )
    line = refused(capsys, evaluate_main, ["--checkpoint", str(root), "--config.data.crop_size=64"])
    assert "size 48" in line and "--config.data.crop_size=48" in line


def test_evaluate_refuses_another_class_count(workdir, capsys):
    root, _ = workdir
    # the toy config's data at the workdir's geometry: 8 classes for the 4-class model
    argv = ["--checkpoint", str(root), "--config", "configs/synthetic.py:toy"]
    argv += ["--config.data.num_frames=2", "--config.data.crop_size=48"]
    line = refused(capsys, evaluate_main, argv)
    assert "has 4 classes but the data toy has 8" in line and "--config.model.num_classes" in line


def test_evaluate_refuses_a_modality_the_model_does_not_read(workdir, capsys):
    root, _ = workdir
    line = refused(capsys, evaluate_main, ["--checkpoint", str(root), "--config.data.modality=flow"])
    assert "reads clip" in line and "'flow' gives flow" in line and "--config.data.modality=rgb" in line


def test_evaluate_needs_a_config_for_a_model_directory(tmp_path, workdir, capsys):
    root, _ = workdir
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in (MODEL_JSON,):
        (model_dir / name).write_text((root / name).read_text())
    line = refused(capsys, evaluate_main, ["--checkpoint", str(model_dir)])
    assert "no config.json" in line and "--config configs/X.py" in line


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--which", "bset"], ["--which", "must be latest, best or a step number", "'bset'"]),
        (["--flow-segments", "0"], ["--flow-segments", "positive integer"]),
        (["--config.total_steps"], ["--config.total_steps=VALUE"]),
        (["--frobnicate"], ["unrecognised", "--frobnicate"]),
    ],
)
def test_evaluate_usage_errors(argv, words, capsys):
    line = refused(capsys, evaluate_main, ["--checkpoint", "x", *argv])
    assert all(w in line for w in words), line


# --- extract ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--size", "-5", ["--size", "expected a positive integer, got -5"]),
        ("--num-frames", "0", ["--num-frames", "positive integer"]),
        ("--which", "bset", ["--which", "latest, best or a step number"]),
    ],
)
def test_extract_usage_errors(flag, value, words, capsys, tmp_path):
    argv = ["clip.mp4", "--checkpoint", "x", "--output-dir", str(tmp_path), flag, value]
    line = refused(capsys, extract_main, argv)
    assert all(w in line for w in words), line


# --- train: config overrides and the pre-flight checks ----------------------------------------------------


@pytest.mark.parametrize(
    "override, words",
    [
        ("--config.total_steps=abc", ["--config.total_steps=abc", "expected an integer"]),
        ("--config.shuffle=maybe", ["--config.shuffle=maybe", "boolean"]),
        ("--config.learning_rate=fast", ["--config.learning_rate=fast", "expected a number"]),
        ("--config.model.backbone_widths=abc", ["backbone_widths=abc", "tuple"]),
        ("--config.nope=1", ["no field 'nope'", "total_steps"]),
        ("--config.model.nope=1", ["no field 'model.nope'", "num_classes"]),
    ],
)
def test_train_config_override_errors_are_one_line(override, words, capsys, tmp_path):
    argv = ["--config", "configs/synthetic.py:toy", "--workdir", str(tmp_path / "w"), override]
    line = refused(capsys, train_main, argv)
    assert line.startswith("error: ") and all(w in line for w in words), line
    assert not (tmp_path / "w").exists()  # refused before anything was written


def test_typed_overrides_keep_their_meaning():
    c = apply_overrides(
        load_config("configs/synthetic.py:toy"),
        [
            "--config.learning_rate=1",  # an int for a float field
            "--config.lr_milestones=5",  # a scalar for a tuple
            "--config.shuffle=false",
            "--config.lr_gamma=inf",
            "--config.name=run 3",
        ],
    )
    assert c.learning_rate == 1.0 and isinstance(c.learning_rate, float)
    assert tuple(c.lr_milestones) == (5,) and c.shuffle is False and c.lr_gamma == float("inf")
    assert c.name == "run 3"
    with pytest.raises(ConfigOverrideError, match=r"--config.data.crop_size=1.5: expected an integer"):
        apply_overrides(c, ["--config.data.crop_size=1.5"])
    with pytest.raises(ValueError, match=r"config arg 'stage=two': stage must be of type int"):
        load_config("configs/synthetic.py:stage=two")


def test_training_with_fewer_data_classes_stops_before_the_first_step(tmp_path):
    """The GTEA61 case: data of 4 classes for a 61-class model stopped after the last step when the final
    evaluation wrote its per-class table; now before the first."""
    config = tiny_config(total_steps=2)
    config.model.num_classes = 61
    data = make_data(tiny_config())  # 4 classes
    with pytest.raises(ConfigMismatch) as err:
        trainer.train_and_evaluate(config, tmp_path / "w", data=data, quiet=True)
    message = str(err.value)
    assert (
        "\n" not in message and "61 classes" in message and "has 4 (move_0, move_1, move_2, ...)" in message
    )
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_training_refuses_a_best_metric_the_model_does_not_have(tmp_path, capsys):
    argv = ["--config", "configs/synthetic.py:toy", "--workdir", str(tmp_path / "w")]
    line = refused(capsys, train_main, [*argv, "--config.best_metric=action_top1"])
    assert "'action_top1'" in line and "--config.best_metric" in line and "top1" in line
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_training_refuses_a_modality_the_model_does_not_read(tmp_path):
    config = tiny_config(total_steps=1)
    config.data.modality = "flow"
    with pytest.raises(ConfigMismatch, match=r"reads clip .* set --config.data.modality=rgb"):
        trainer.train_and_evaluate(config, tmp_path / "w", quiet=True)


# --- metrics: only what the model and the class names make meaningful ------------------------------------


def test_verb_and_noun_accuracy_only_for_names_of_several_verbs_and_nouns():
    confusion = np.diag([2.0, 1.0, 1.0, 1.0])
    confusion[0, 1] = 1.0  # one clip of class 0 predicted as class 1
    sums = {"loss_sum": 0.0, "correct1": 5.0, "correct5": 6.0, "count": 6.0, "confusion": confusion}
    toy = metrics.summarize(sums, [f"move_{i}" for i in range(4)])
    assert "verb_accuracy" not in toy and "noun_accuracy" not in toy
    names = ["take_cup", "take_jar", "put_cup", "put_jar"]
    real = metrics.summarize(sums, names)
    assert real["verb_accuracy"] == pytest.approx(6 / 6)  # 0 -> 1: take -> take
    assert real["noun_accuracy"] == pytest.approx(5 / 6)  # cup -> jar


# --- data ------------------------------------------------------------------------------------------------


def test_data_empty_raw_folder_names_the_flag_of_each_entry_point(tmp_path, capsys):
    from lsta_jax.data.build import main as data_main

    empty = tmp_path / "raw"
    empty.mkdir()
    # the old underscore spellings still parse (hidden aliases)
    line = refused(capsys, data_main, ["gtea61", "--manual_dir", str(empty), "--data_dir", str(tmp_path)])
    assert str(empty) in line and "is empty" in line and "--manual-dir RAW_DIR" in line
    config = load_config("configs/gtea61.py:split=2")
    config.data.update(data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"does not exist: set --config.data.manual_dir=RAW_DIR"):
        make_data(config)


def test_data_flow_is_a_switch_that_takes_the_old_value_spelling(capsys):
    switches = ["--flow"]
    assert cli.old_switch_values(["x", "--flow", "1", "--seed", "2"], switches) == [
        "x",
        "--flow",
        "--seed",
        "2",
    ]
    assert cli.old_switch_values(["x", "--flow=yes"], switches) == ["x", "--flow"]
    assert cli.old_switch_values(["x", "--flow", "0"], switches) == ["x"]
    assert cli.old_switch_values(["x", "--flow", "--seed", "1"], switches) == ["x", "--flow", "--seed", "1"]
    from lsta_jax.data.build import main as data_main

    with pytest.raises(SystemExit):
        data_main(["--help"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+--flow\s+synthetic: flow$", out, re.M)  # a switch: no value in the usage
    assert "--data-dir" in out and "--data_dir" not in out  # the old spelling stays hidden


# --- help texts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["train", "evaluate", "extract", "convert", "data", "benchmarks.pipeline", "benchmarks.ablation"]
    + ["benchmarks.egornn_inputs"],
)
def test_help_shows_each_default_once_and_never_none(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        lsta_main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    options = out[out.index("options:") :]
    assert "(default: None)" not in options and "(default: False)" not in options
    entries = re.split(r"\n  (?=-)", options)  # one entry per option, its help text included
    for entry in entries:
        assert len(re.findall(r"default", entry)) <= 1, entry


# --- python -m lsta_jax ----------------------------------------------------------------------------------


def test_the_package_lists_every_command(capsys):
    import importlib.util
    from pathlib import Path

    assert lsta_main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert re.search(rf"^  {re.escape(name)}\s+\S", out, re.M), name
    # every `prog="python -m lsta_jax.X"` of the package is a listed command (none forgotten)
    progs = set()
    for path in Path("lsta_jax").rglob("*.py"):
        progs |= set(re.findall(r'prog="python -m lsta_jax\.([a-z_.]+)"', path.read_text()))
    assert progs <= set(COMMANDS), progs - set(COMMANDS)
    for module, _ in COMMANDS.values():
        assert importlib.util.find_spec(module) is not None, module
    line = refused(capsys, lsta_main, ["trian"])
    assert "unknown command 'trian'" in line and "train" in line


# --- convert and compare: the wrong kind ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lsta_torch_file(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from test_convert_lsta import small_torch_model

    path = tmp_path_factory.mktemp("torch") / "lsta.pth"
    torch.save(small_torch_model().state_dict(), path)
    return path


def test_convert_with_the_wrong_kind_names_the_kind_the_file_holds(lsta_torch_file, tmp_path, capsys):
    from lsta_jax.convert.__main__ import main as convert_main

    argv = ["--kind", "egornn_flow", "--torch-checkpoint", str(lsta_torch_file), "--output", str(tmp_path)]
    line = refused(capsys, convert_main, argv)
    assert "does not convert to kind egornn_flow" in line and "lsta_rgb checkpoint" in line
    assert f"python -m lsta_jax.convert --kind lsta_rgb --torch-checkpoint {lsta_torch_file}" in line


def test_compare_with_the_wrong_kind_names_the_kind_the_file_holds(lsta_torch_file, capsys):
    from lsta_jax.compare import main as compare_main

    line = refused(
        capsys, compare_main, ["--kind", "egornn_flow", "--torch-checkpoint", str(lsta_torch_file)]
    )
    assert (
        "is not an ego-rnn flow checkpoint" in line and "python -m lsta_jax.compare --kind lsta_rgb" in line
    )


def test_consistency_errors_are_value_errors():
    # callers (the commands, the demo, the ablation runner) catch ValueError: a mismatch must be one
    assert issubclass(ConfigMismatch, ValueError) and issubclass(ConfigOverrideError, ValueError)
    assert dataclasses.is_dataclass(make_data(tiny_config()))
