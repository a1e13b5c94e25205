"""Stopping a process we started: by the PID we hold, politely first.

The broker, the demo's worker, the benchmarks' workers and the integration tests' workers
all stop the same way: a signal (SIGTERM unless told otherwise), then SIGKILL if the
process has not exited within the grace period. Never by name, so nothing we did not
start is touched.
"""

from __future__ import annotations

import signal
import subprocess

KILL_WAIT_S = 5.0  # after SIGKILL the kernel reaps promptly; this only bounds a stuck wait


def stop_process(
    process: subprocess.Popen[bytes], grace: float = 15.0, signum: int = signal.SIGTERM
) -> int:
    """Send ``signum`` (if it still runs), wait ``grace`` seconds, then kill; its exit code.

    >>> import sys
    >>> child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop_process(child, grace=5.0)
    -15
    """
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=KILL_WAIT_S)
    return process.returncode
