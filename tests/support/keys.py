"""API keys for the tests: minted the way `make key` does, one per scope set."""

from __future__ import annotations

import json

from service.mint_key import mint

ADMIN_KEY, ADMIN = mint("admin", ["enqueue", "read", "admin"])
ENQUEUE_KEY, ENQUEUER = mint("producer", ["enqueue"])
READ_KEY, READER = mint("dashboard", ["read"])


def api_keys_json() -> str:
    """The `API_KEYS` value holding the three test keys."""
    return json.dumps([entry.model_dump(mode="json") for entry in (ADMIN, ENQUEUER, READER)])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
