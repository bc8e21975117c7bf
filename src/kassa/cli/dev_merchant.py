"""The merchant `kassa dev` seeds, its key kept in KASSA_HOME (development only) so that every
`make run` prints a key that works."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kassa.config import Settings

if TYPE_CHECKING:  # the CLI imports the services only when a command runs
    from kassa.services.context import Kassa


async def seed_dev_merchant(settings: Settings, kassa: Kassa) -> dict[str, str]:
    """The merchant kept in KASSA_HOME/dev-merchant.json while its key still works; else a new
    one, written there."""
    from kassa.services import merchants

    path = Path(settings.home) / "dev-merchant.json"
    if path.exists():
        seeded = json.loads(path.read_text())
        if await merchants.KeyCache(0).authenticate(kassa, seeded["secret_key"]) is not None:
            return dict(seeded)
    seeded = await merchants.create_merchant(kassa, name="Dev merchant")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secret: never 0644
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(seeded))
    return dict(seeded)
