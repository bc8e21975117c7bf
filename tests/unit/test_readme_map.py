"""README's "Layout" and "Where things are": every source path they name exists, so the map
a newcomer follows from a request to its SQL cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "kassa"


def map_paths() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    names = re.findall(r"`([a-z_/]+(?:\.py|\.sql|/))`", section)
    # `services/payouts*.py` style globs and test paths are checked as what they are
    return sorted({n for n in names if not n.startswith("tests/")})


def test_every_path_the_map_names_exists() -> None:
    paths = map_paths()
    assert len(paths) > 30
    missing = [p for p in paths if not (SRC / p).exists() and not (ROOT / p).exists()]
    assert missing == []
