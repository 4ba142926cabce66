"""The live channel's *pump* thread: the runner's completed tasks, handed to the driver.

``TaskRunner.as_completed`` blocks until a task finishes, but the driver must also watch the
feed and the clock; the pump iterates it on its own thread and puts each completion on a queue
the driver waits on with a timeout (``TICK_S``). A failure of the runner itself (not of one
task, which comes as a ``Completed`` with its error) is kept in ``failed`` for the driver.
"""

from __future__ import annotations

import queue
import threading

from authoring.runner import Completed, TaskRunner

TICK_S = 0.1  # s between deadline checks when nothing happens


class TaskPump:
    """Moves completed tasks from the runner to a queue the driver can wait on with a timeout."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner
        self.completed: queue.Queue[Completed] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failed: BaseException | None = None  # the runner itself broke (not one task)
        self._thread = threading.Thread(target=self._run, name="live-pump", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Something was submitted: look for completions again."""
        self._wake.set()

    def get(self, timeout_s: float = TICK_S) -> Completed | None:
        """The next completed task, or None when none completed within ``timeout_s``."""
        try:
            return self.completed.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(TICK_S)
                self._wake.clear()
                for done in self.runner.as_completed():
                    self.completed.put(done)
                    if self._stop.is_set():
                        return
        except Exception as error:  # noqa: BLE001 - handed to the driver, or shutdown noise
            if not self._stop.is_set():
                self.failed = error

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=1.0)
