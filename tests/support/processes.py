"""kassa CLI commands as real subprocesses, for tests that kill and restart them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


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
        stop(proc, stop_timeout)
        if proc.stderr:
            proc.stderr.close()


class DevProcess:
    """`kassa dev` as a subprocess in its own session (as a terminal would run it), its
    stdout and stderr collected line by line."""

    def __init__(self, env: dict[str, str], cwd: Path, *, user: int | None = None,
                 python: str = sys.executable) -> None:
        import threading

        extra: dict[str, object] = {}
        if user is not None:
            import pwd

            entry = pwd.getpwuid(user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen(
            [python, "-m", "kassa.cli", "dev"], env=env, cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True, **extra)  # type: ignore[call-overload]
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.stdout),
                                               (self.proc.stderr, self.stderr))]
        for r in self._readers:
            r.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for_banner(self, within: float = 90) -> str:
        """The secret key from the banner's closing `export SK=…` line."""
        import time

        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in self.stdout:
                if line.startswith("export SK="):
                    return line.removeprefix("export SK=")
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"kassa dev did not start:\n{self.output()}")

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the whole process group, as closing the terminal does (SIGHUP)."""
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        for r in self._readers:
            r.join(timeout=5)
        return code

    def stop(self) -> None:
        """Terminate it if still running, and close the pipes (idempotent)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for r in self._readers:
            r.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr])


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate a child process, killing it if it will not stop in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], within: float = 30) -> None:
    """Wait until a kassa API subprocess answers /healthz (fail if it exits first)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if (await c.get(base + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("API did not become healthy")
