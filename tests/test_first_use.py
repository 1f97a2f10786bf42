"""First use without surprises: an unbuilt dataset is one line naming the fix, orbax's
"Metadata file does not exist" warnings stay off the console, and the module import graph has no cycles."""

import ast
import logging
from pathlib import Path

import numpy as np
import pytest

from lsta_jax.checkpoint import restore_model_variables
from lsta_jax.train import checkpoints as ckpt
from lsta_jax.train.__main__ import main as train_main
from lsta_jax.train.config import load_config
from lsta_jax.train.input_pipeline import make_data
from lsta_jax.train.tfds_input import DatasetNotBuilt

PACKAGE = Path(__file__).resolve().parent.parent / "lsta_jax"


def test_unbuilt_dataset_names_manual_dir_and_the_build_command(tmp_path, capsys):
    config = load_config("configs/gtea61.py:split=2")
    config.data.data_dir = str(tmp_path / "tfds")
    with pytest.raises(DatasetNotBuilt) as err:
        make_data(config)
    message = str(err.value)
    assert "\n" not in message and "gtea61/split2 is not built" in message
    assert "--config.data.manual_dir=" in message
    assert (
        f"python -m lsta_jax.data gtea61 --config split2 --manual-dir RAW_FRAMES_DIR --data-dir {tmp_path}"
        in (message)
    )
    argv = ["--config", "configs/gtea61.py:split=2", "--workdir", str(tmp_path / "w")]
    assert train_main([*argv, f"--config.data.data_dir={tmp_path / 'tfds'}"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: dataset gtea61/split2 is not built")


def test_loading_a_workdir_checkpoint_logs_no_missing_metadata_warning(tmp_path):
    tree = {"params": {"w": np.arange(3, dtype=np.float32)}}
    manager = ckpt.make_manager(tmp_path, best_metric=None)
    ckpt.save(manager, 1, tree, {"step": np.int32(1)}, None)
    manager.close()
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect()
    logging.getLogger("absl").addHandler(handler)
    try:
        restored = restore_model_variables(tmp_path, tree)
    finally:
        logging.getLogger("absl").removeHandler(handler)
    np.testing.assert_array_equal(restored["params"]["w"], tree["params"]["w"])
    assert not [m for m in seen if "Metadata file does not exist" in m]


def _imports(module: Path) -> set[str]:
    """Every lsta_jax module a file imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lsta_jax"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("lsta_jax"))
    return names


@pytest.mark.parametrize(
    "a, b",
    [("checkpoint", "train.checkpoints"), ("train.input_pipeline", "train.tfds_input")],
)
def test_no_import_cycle(a, b):
    def path(name):
        return PACKAGE.joinpath(*name.split(".")).with_suffix(".py")

    a_imports_b = f"lsta_jax.{b}" in _imports(path(a))
    b_imports_a = f"lsta_jax.{a}" in _imports(path(b))
    assert not (a_imports_b and b_imports_a), f"lsta_jax.{a} and lsta_jax.{b} import each other"
