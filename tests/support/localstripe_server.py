"""localstripe (PyPI) on loopback for tests, as its own process.

Its CLI binds every interface and pickles its store to a fixed file in /tmp; this
launcher binds 127.0.0.1 on a free port (announced on stdout) and keeps the pickle in a
directory of the test's own. Run as ``python -m tests.support.localstripe_server DIR``.
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import stop

ANNOUNCEMENT = "localstripe listening on port "
API_KEY = "sk_test_localstripe_kassa"


@contextmanager
def running_localstripe(store_dir: Path, *, startup_timeout: float = 30.0) -> Iterator[str]:
    """Start localstripe; yields its base URL, stops it on exit."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.localstripe_server",
                             str(store_dir)], cwd=root, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + startup_timeout
        line = ""
        while not line.startswith(ANNOUNCEMENT):
            if time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start within {startup_timeout}s")
            if select.select([proc.stdout], [], [], 0.1)[0]:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"localstripe exited with {proc.wait()}")
        yield f"http://127.0.0.1:{int(line.removeprefix(ANNOUNCEMENT))}"
    finally:
        stop(proc)
        proc.stdout.close()


def _serve(store_dir: Path) -> None:
    import logging

    from aiohttp import web
    from localstripe import resources
    from localstripe.server import app

    pickle_path = store_dir / "localstripe.pickle"

    def dump_to_disk(self: resources.Store) -> None:
        with pickle_path.open("wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    def try_load_from_disk(self: resources.Store) -> None:
        if pickle_path.exists():
            with pickle_path.open("rb") as f:
                self.clear()
                self.update(pickle.load(f))

    resources.Store.dump_to_disk = dump_to_disk  # type: ignore[method-assign]
    resources.Store.try_load_from_disk = try_load_from_disk  # type: ignore[method-assign]
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"{ANNOUNCEMENT}{sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
