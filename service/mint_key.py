"""Mint an API key: `python -m service.mint_key --name ci --scopes enqueue,read` (or `make key`).

Prints the key once, and the `API_KEYS` entry that holds only its SHA-256; the key itself is stored nowhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets

from settings import SCOPES, ApiKeyEntry

KEY_PREFIX = "jp_"  # recognisable in a leaked-secret scan


def mint(name: str, scopes: list[str]) -> tuple[str, ApiKeyEntry]:
    """A fresh random key (256 bits) and its `API_KEYS` entry."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = ApiKeyEntry.model_validate(
        {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes}
    )
    return key, entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="who holds the key, e.g. billing-service (shown in logs)")
    parser.add_argument("--scopes", default="enqueue,read", help=f"comma-separated, of {', '.join(SCOPES)}")
    args = parser.parse_args(argv)
    scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        parser.error(f"scopes must be some of {', '.join(SCOPES)}; got {args.scopes!r}")
    key, entry = mint(args.name, scopes)
    print(f"key (shown once; give it to {args.name}, then forget it):\n  {key}")
    print("API_KEYS entry (add it to the JSON list in the API's environment):")
    print("  " + json.dumps(entry.model_dump(mode="json"), separators=(", ", ": ")))


if __name__ == "__main__":
    main()
