"""Checkpoints whose data files are truncated (as a full disk or a failed copy leaves them): load_model and
predict fail in one line naming the checkpoint; resuming sets it aside, says so, and goes on from the newest
readable one, ending bit-identical to a run that was never damaged."""

import os
import shutil
from pathlib import Path

import jax
import pytest
from inference_fixtures import moving_square_frames, write_frame_folder
from test_checkpoint_portability import BASE, cache  # noqa: F401  (cache: a fixture)
from test_train import leaves, tiny_config

from lsta_jax import load_model
from lsta_jax.checkpoint import CheckpointError, UnreadableCheckpoint
from lsta_jax.predict import main as predict_main
from lsta_jax.train import trainer
from lsta_jax.train.checkpoints import checkpoint_steps


def truncate_array_files(step_dir: Path) -> int:
    """Cut every array data file (orbax's `d/` chunks) of a checkpoint step to half its size."""
    files = [f for f in step_dir.rglob("*") if f.is_file() and f.parent.name == "d"]
    for f in files:
        os.truncate(f, f.stat().st_size // 2)
    return len(files)


@pytest.mark.usefixtures("cache")
def test_truncated_checkpoint_is_named_in_one_line_and_resume_falls_back(tmp_path, capsys):
    assert jax.device_count() == 4
    straight = trainer.train_and_evaluate(tiny_config(**BASE), tmp_path / "straight", quiet=True)
    expected = leaves(load_model(tmp_path / "straight")[1])
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "straight", run)
    assert checkpoint_steps(run) == [2, 4]
    assert truncate_array_files(run / "checkpoints" / "4") > 0

    # load_model: our exception, one line naming the checkpoint and the readable alternative
    with pytest.raises(UnreadableCheckpoint) as error:
        load_model(run)
    message = str(error.value)
    assert "\n" not in message and f"{run}/checkpoints/4/model cannot be read" in message
    assert "steps [2]" in message
    load_model(run, which=2)  # the previous checkpoint is intact
    # predict: `error: ...` in one line, non-zero exit
    clip = write_frame_folder(tmp_path / "clip", moving_square_frames(4, 64, 64, 0))
    capsys.readouterr()
    assert predict_main(["--checkpoint", str(run), "--no-progress", str(clip)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "checkpoints/4/model cannot be read" in err[0]

    # resume: step 4 is named and set aside, the run goes on from step 2 and redoes steps 3-4
    resumed = trainer.train_and_evaluate(tiny_config(**BASE), run, quiet=True)
    err = capsys.readouterr().err.strip().splitlines()
    named = [line for line in err if f"{run}/checkpoints/4/model cannot be read" in line]
    assert len(named) == 1 and f"moved to {run}/checkpoints/unreadable-4" in named[0]
    assert any("resuming from step 2, the newest readable checkpoint" in line for line in err)
    assert (run / "checkpoints" / "unreadable-4").is_dir() and checkpoint_steps(run) == [2, 4]
    got = leaves(load_model(run)[1])
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k].tobytes() == expected[k].tobytes(), k
    assert resumed["top1"] == straight["top1"]

    # nothing readable left: one line, no training
    for step in (2, 4):
        truncate_array_files(run / "checkpoints" / str(step))
    with pytest.raises(UnreadableCheckpoint, match="no checkpoint can be read") as error:
        trainer.train_and_evaluate(tiny_config(**BASE), run, quiet=True)
    assert "\n" not in str(error.value) and isinstance(error.value, CheckpointError)
