"""The README's walk-through as data: its fenced blocks, the ones marked ``walkthrough`` in
order, and one bash script that runs them the way a reader pastes them into one terminal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = "walkthrough"
# the address the README's commands use; the test points it at the kassa it started
README_API = "localhost:8000"

_FENCE = re.compile(r"^```([^`]*)$")
_MARKER = ">>> README.md line {line}: walk-through block {n} of {total}"
_MARKER_RE = re.compile(r"^>>> README\.md line (\d+): walk-through block (\d+) of (\d+)$",
                        re.MULTILINE)
DONE = ">>> walk-through finished"


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: ```` ```sh walkthrough ```` gives language ``sh`` and tags
    ``("walkthrough",)``."""

    line: int  # of the opening fence, 1-based
    language: str
    tags: tuple[str, ...]
    text: str

    @property
    def in_walkthrough(self) -> bool:
        return MARK in self.tags


def fenced_blocks(markdown: str) -> list[Block]:
    blocks: list[Block] = []
    opened: tuple[int, str, tuple[str, ...]] | None = None
    body: list[str] = []
    for number, line in enumerate(markdown.splitlines(), 1):
        fence = _FENCE.match(line)
        if opened is None:
            if fence:
                words = fence.group(1).split()
                opened = (number, words[0] if words else "", tuple(words[1:]))
                body = []
        elif line == "```":
            blocks.append(Block(opened[0], opened[1], opened[2], "\n".join(body) + "\n"))
            opened = None
        else:
            body.append(line)
    if opened is not None:
        raise ValueError(f"README.md line {opened[0]}: code block never closed")
    return blocks


def walkthrough(markdown: str) -> list[Block]:
    blocks = [b for b in fenced_blocks(markdown) if b.in_walkthrough]
    for b in blocks:
        if b.language not in ("sh", "python"):
            raise ValueError(f"README.md line {b.line}: a walk-through block is sh or python, "
                             f"not {b.language!r}")
    return blocks


def script(blocks: list[Block], *, api: str) -> str:
    """One bash script: every block in order in the same shell (variables carry over, as in
    a terminal), stopping at the first command that fails; python blocks run as ``python``
    on a here-document. ``api`` (host:port) replaces the README's localhost:8000."""
    parts = ["set -euo pipefail"]
    for n, block in enumerate(blocks, 1):
        marker = _MARKER.format(line=block.line, n=n, total=len(blocks))
        parts.append(f"printf '\\n%s\\n' '{marker}'")
        text = block.text.replace(README_API, api)
        if block.language == "python":
            parts.append(f"python - <<'KASSA_README_PYTHON'\n{text}KASSA_README_PYTHON")
        else:
            parts.append(text)
    parts.append(f"printf '\\n%s\\n' '{DONE}'")
    return "\n".join(parts) + "\n"


def last_block_started(output: str) -> str:
    """Which block was running when the script stopped, from its markers in the output."""
    markers = _MARKER_RE.findall(output)
    if not markers:
        return "before the first block"
    line, n, total = markers[-1]
    return f"block {n} of {total} (README.md line {line})"
