from __future__ import annotations

import signal
import subprocess
import sys

from reachwatch.streams.local.process import stop_process

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period() -> None:
    child = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"up\n"
    assert stop_process(child, grace=0.5) == -signal.SIGKILL


def test_an_exited_process_is_left_alone_and_keeps_its_exit_code() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.wait()
    assert stop_process(child, grace=0.5, signum=signal.SIGKILL) == 3
