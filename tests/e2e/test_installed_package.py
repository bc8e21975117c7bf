"""The wheel kassa builds carries its migrations and repeatable SQL, and a non-editable
install finds them (db/repeatable.py reads through importlib.resources, not the source tree)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "kassa"


def test_a_non_editable_install_ships_and_finds_the_sql(tmp_path):
    # a clean copy: an editable install's src/kassa.egg-info/SOURCES.txt would otherwise add
    # files the package data does not name
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(tree)], capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("kassa-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("db/sql", "db/migrations/versions"):
        for path in (SRC / folder).iterdir():
            if path.suffix in (".sql", ".py"):
                assert f"kassa/{folder}/{path.name}" in shipped

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                "--target", str(target), str(wheel)], capture_output=True,
                               text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    probe = ("import json, kassa; from kassa.db import repeatable, migrate; "
             "print(json.dumps({'at': kassa.__file__, 'sql': [s.name for s in "
             "repeatable.sources()], 'heads': migrate._script().get_heads()}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert Path(found["at"]).is_relative_to(target)
    assert found["sql"] == sorted(p.name for p in (SRC / "db" / "sql").glob("*.sql"))
    assert found["heads"]
