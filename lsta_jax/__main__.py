"""`python -m lsta_jax`: the commands, one line each; `python -m lsta_jax COMMAND ARGS` runs one.

Each command is also `python -m lsta_jax.COMMAND` (its `--help` has the details).
"""

from __future__ import annotations

import importlib
import sys

#: command -> (module whose `main(argv)` runs it, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("lsta_jax.data.build", "build a dataset (tfds), export synthetic clips, or compute TV-L1 flow"),
    "train": ("lsta_jax.train.__main__", "train a model from a config file; re-running resumes"),
    "evaluate": (
        "lsta_jax.evaluate",
        "score a checkpoint on its evaluation split: top-1, confusion, pointing",
    ),
    "predict": ("lsta_jax.predict", "classify videos or frame folders; optional attention overlays"),
    "extract": ("lsta_jax.extract", "write clip (and frame) features of videos or frame folders as .npy"),
    "convert": ("lsta_jax.convert.__main__", "convert a PyTorch checkpoint into an lsta_jax model directory"),
    "compare": ("lsta_jax.compare", "run the Flax model and the PyTorch reference on one clip; differences"),
    "submission": ("lsta_jax.submission", "write an EPIC-KITCHENS challenge submission JSON"),
    "preflight": (
        "lsta_jax.preflight",
        "compile a run for a TPU slice on this host: per-chip memory, FLOPs, largest batch",
    ),
    "demo": ("lsta_jax.demo", "the end-to-end demo on the embedded synthetic data (CPU, minutes)"),
    "benchmarks.versus_torch": ("lsta_jax.benchmarks.versus_torch", "speed of Flax against PyTorch"),
    "benchmarks.pipeline": ("lsta_jax.benchmarks.pipeline", "throughput of the input pipeline"),
    "benchmarks.train_step": ("lsta_jax.benchmarks.train_step", "time of one jitted training step"),
    "benchmarks.ablation": ("lsta_jax.benchmarks.ablation", "the paper's ablation rows at small scale"),
    "benchmarks.selector_pointing": (
        "lsta_jax.benchmarks.selector_pointing",
        "pointing game of the attention selector alone",
    ),
    "benchmarks.accelerator_table": (
        "lsta_jax.benchmarks.accelerator_table",
        "the preflight over configs, TPU slices and dtypes (the docs' table)",
    ),
    "benchmarks.gpu": ("lsta_jax.benchmarks.gpu", "speed rows on a GPU host, as JSON"),
    "benchmarks.attention_memory": (
        "lsta_jax.benchmarks.attention_memory",
        "LSTA's attention maps against the selector's CAM it starts from",
    ),
    "benchmarks.egornn_inputs": (
        "lsta_jax.benchmarks.egornn_inputs",
        "what enters and leaves ego-rnn's and LSTA's recurrent cells, side by side",
    ),
}


def usage() -> str:
    """The command list as printed by `python -m lsta_jax`."""
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m lsta_jax COMMAND [ARGS]   (or python -m lsta_jax.COMMAND; COMMAND --help)", ""]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"python -m lsta_jax: error: unknown command {name!r}; one of: {', '.join(COMMANDS)} "
            "(python -m lsta_jax lists them)",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
