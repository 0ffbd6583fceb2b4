"""A run's progress on the terminal while it executes in this process: a line as each step starts
and ends (with its time), the model's stages, and hyperopt's trials (a tqdm bar on a terminal, plain
lines otherwise), read from the instance's event log, so nothing in the assets knows about it. A
step that says nothing for a minute gets a "still running" line: no minute passes silently."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable

import dagster as dg
from tqdm import tqdm

PROGRESS_PREFIX = "progress: "
"""Log messages from the assets that the terminal should show (the rest stay in the UI's run log)."""
_TRIAL = re.compile(r"trial (\d+) of (\d+)")
_STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


class RunProgress:
    """`with RunProgress(instance, run_id): job.execute_in_process(..., run_id=run_id)`."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        say: Callable[[str], None] = print,
        poll_seconds: float = 0.5,
        quiet_seconds: float = 60.0,
        terminal: bool | None = None,
    ) -> None:
        self.instance, self.run_id, self.say = instance, run_id, say
        self.poll_seconds, self.quiet_seconds = poll_seconds, quiet_seconds
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="run-progress", daemon=True)
        self._cursor: str | None = None
        self._started: dict[str, float] = {}
        """Running steps and when they started (the event log's clock, time.time())."""
        self._last_line = time.monotonic()
        self._trials: tqdm | None = None

    def __enter__(self) -> RunProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()  # what the run wrote after the last poll
        if self._trials is not None:
            self._trials.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._read()
            quiet = time.monotonic() - self._last_line
            if self._started and quiet >= self.quiet_seconds:
                step, since = next(reversed(self._started.items()))
                self._line(f"  ... {step} still running ({_duration(time.time() - since)})")

    def _read(self) -> None:
        try:
            found = self.instance.get_records_for_run(self.run_id, cursor=self._cursor)
        except Exception:  # the run is not stored yet (its first poll can come before it starts)
            return
        self._cursor = found.cursor
        for record in found.records:
            self._show(record.event_log_entry)

    def _show(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            if entry.user_message.startswith(PROGRESS_PREFIX):
                self._message(entry.user_message.removeprefix(PROGRESS_PREFIX))
            return
        if event.event_type not in _STEP_EVENTS:
            return
        step = event.step_key
        if event.event_type == dg.DagsterEventType.STEP_START:
            self._started[step] = entry.timestamp
            self._line(f"  {step} started")
            return
        began = self._started.pop(step, None)
        took = f" in {_duration(entry.timestamp - began)}" if began is not None else ""
        verdict = "done" if event.event_type == dg.DagsterEventType.STEP_SUCCESS else "FAILED"
        self._line(f"  {step} {verdict}{took}")

    def _message(self, message: str) -> None:
        trial = _TRIAL.search(message)
        if trial and self.terminal:
            number, total = map(int, trial.groups())
            if self._trials is None:
                self._trials = tqdm(total=total, desc="    LightGBM trials", unit="trial", leave=False)
            self._trials.set_postfix_str(message.split(": ", 1)[-1])
            self._trials.update(number - self._trials.n)
            self._last_line = time.monotonic()
            return
        self._line(f"    {message}")

    def _line(self, text: str) -> None:
        if self._trials is not None:
            self._trials.close()
            self._trials = None
        self.say(text)
        self._last_line = time.monotonic()


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
