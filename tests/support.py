"""Worlds and helpers shared by the tests that use the simulated Hub."""

from __future__ import annotations

ALICE_TOKEN = "hf_aliceTestToken0123456789"
BOB_TOKEN = "hf_bobTestToken0123456789"


def alice_world(*spaces: dict[str, object], **hub: object) -> dict[str, object]:
    """Return a world with alice (write, org alice-org), bob (write) and `spaces`."""
    return {
        "hub": {"requests_per_window": 1000, "window_seconds": 300, **hub},
        "token": [
            {
                "value": ALICE_TOKEN,
                "user": "alice",
                "role": "write",
                "orgs": ["alice-org"],
            },
            {"value": BOB_TOKEN, "user": "bob", "role": "write", "orgs": []},
        ],
        "space": list(spaces),
    }


def fast(space_id: str, **keys: object) -> dict[str, object]:
    """Return a Space of the world whose restarts take a few tenths of a second."""
    return {
        "id": space_id,
        "build_seconds": 0.2,
        "start_seconds": 0.1,
        "stale_running_seconds": 0.05,
        **keys,
    }
