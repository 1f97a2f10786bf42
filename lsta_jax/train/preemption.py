"""Stop requests: SIGTERM (a scheduler's preemption, `kill`) and SIGINT (Ctrl-C) end training cleanly.

`StopRequest` turns the first SIGTERM or SIGINT into a flag; the training loop asks `requested()` at every
step boundary, saves a checkpoint and returns. A second SIGINT while the first is pending raises
KeyboardInterrupt as usual (an impatient Ctrl-C still aborts).

Multi-process runs must stop at the SAME step in every process (each one writes its part of the checkpoint
and its own iterator state; a process that stops alone leaves the others blocked in the next step's
collective). A signal may reach one process only (Ctrl-C in one terminal, a node's own SIGTERM), so the flag
is agreed on: every process contributes its own flag to a one-integer all-gather across processes at each
step boundary, and all stop when any one asked. That is one tiny collective per step, plus a host sync with
the step just dispatched; a single process reads its own flag and syncs nothing. (jax's preemption sync
manager agrees on a step through the coordination service without a collective, but it handles SIGTERM
only, exists only after `jax.distributed.initialize`, and installs its own SIGTERM handler.)
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import jax
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Context manager: while active, SIGTERM/SIGINT set a flag instead of killing the process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:  # ignored by the launcher (nohup, a background
                    continue  # job of a script): it decides, e.g. forwards one SIGTERM (launch/)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: abort now
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "a signal to another process"

    def requested(self) -> bool:
        """Whether any process received a stop signal; the same answer in every process."""
        local = self.signum is not None
        if jax.process_count() == 1:
            return local
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(local))
        return bool(np.max(flags))
