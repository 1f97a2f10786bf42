"""What a user sees while training: a progress line, JSONL metrics and TensorBoard events (no tensorflow).

`MetricWriter` appends `{"step", "split", ...}` lines to WORKDIR/metrics.jsonl and writes the same scalars as
TensorBoard events under WORKDIR/tensorboard/ with tensorboardX. `Progress` is a tqdm bar with steps/s,
clips/s, loss and ETA; it prints a note before the first step, whose compilation takes a while.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class MetricWriter:
    """JSONL + TensorBoard scalars; a no-op on non-primary processes."""

    def __init__(self, workdir: str | Path, enabled: bool = True) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from tensorboardX import SummaryWriter

        workdir = Path(workdir)
        self.jsonl = (workdir / "metrics.jsonl").open("a")
        self.tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
        self.jsonl.flush()
        for name, value in scalars.items():
            self.tb.add_scalar(f"{split}/{name}", value, step)
        self.tb.flush()

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tb.close()


class Progress:
    """tqdm bar over the steps of a run with steps/s and clips/s measured after the first (compiling) step."""

    def __init__(self, total: int, start: int, batch_size: int, enabled: bool = True) -> None:
        self.enabled, self.batch_size, self.start = enabled, batch_size, start
        self.t0: float | None = None
        self.s0 = start
        self.last_step = start
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
            self.bar.write("compiling the train step (the first step takes a while)...")

    def rates(self) -> dict[str, float]:
        if self.t0 is None or self.last_step <= self.s0:
            return {}
        steps_s = (self.last_step - self.s0) / (time.perf_counter() - self.t0)
        return {"steps_per_s": steps_s, "clips_per_s": steps_s * self.batch_size}

    def update(self, step: int, loss: float) -> None:
        if self.t0 is None:  # the first step compiled; time from here on
            self.t0, self.s0 = time.perf_counter(), step
        self.last_step = step
        if self.bar is None:
            return
        self.bar.update(step - self.bar.n)
        rates = self.rates()
        post = {"loss": f"{loss:.4f}"}
        if rates:
            post.update({"steps/s": f"{rates['steps_per_s']:.2f}", "clips/s": f"{rates['clips_per_s']:.1f}"})
        self.bar.set_postfix(post, refresh=True)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @property
    def measured(self) -> dict[str, Any]:
        return self.rates()
