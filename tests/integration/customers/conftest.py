from tests.integration.vault.conftest import api, shop, vault  # noqa: F401 — same wiring
