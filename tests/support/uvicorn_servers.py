"""Serve a uvicorn server for a test: in a background thread, or as a ``python -m`` child
that announces its URL on stdout (the simulators' shared plumbing)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

import kassa


@contextmanager
def serving_in_thread(server: uvicorn.Server, name: str, *,
                      startup_timeout: float = 10.0) -> Iterator[None]:
    """Run ``server`` in a daemon thread until the block ends; returns once it listens."""
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{name} stopped during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within {startup_timeout}s")
            time.sleep(0.005)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def announced_process(module: str, args: list[str], announcement: str, *,
                      startup_timeout: float = 20.0
                      ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m module *args``; yields the URL it prints after ``announcement`` and the
    process, which is terminated (killed if it will not stop) when the block ends."""
    env = dict(os.environ)
    # The child must import this same kassa, whether it is installed or on PYTHONPATH.
    source_root = str(Path(kassa.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                               env=env, text=True)
    assert process.stdout is not None
    try:
        yield _await_announcement(process, announcement, startup_timeout), process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


def _await_announcement(process: subprocess.Popen[str], announcement: str,
                        timeout: float) -> str:
    stdout = process.stdout
    assert stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"the process did not start within {timeout}s")
        readable, _, _ = select.select([stdout], [], [], remaining)
        if not readable:
            continue
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the process exited with {process.wait()}")
        if line.startswith(announcement):
            return line[len(announcement):].strip()
