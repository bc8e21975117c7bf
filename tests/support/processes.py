"""kassa CLI commands as real subprocesses, for tests that kill and restart them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def kassa_process(args: list[str], env: dict[str, str], *, log: Path | None = None,
                  stop_timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m kassa.cli *args`` with ``env`` on top of ours; stderr is a pipe the test
    can read, or (with ``log``) stdout and stderr are appended to that file. Terminated
    (killed if it will not stop) on exit."""
    if log is not None:
        out = log.open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "kassa.cli", *args],
                                env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
        out.close()  # the child has its own descriptor
    else:
        proc = subprocess.Popen([sys.executable, "-m", "kassa.cli", *args],
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
