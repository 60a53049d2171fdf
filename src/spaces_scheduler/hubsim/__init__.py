"""A simulated Hugging Face Hub on 127.0.0.1, for trying and testing without the Hub.

    from spaces_scheduler.hubsim import HubSim, World
    sim = HubSim(World.default(), port=0)
    url = sim.start()           # "http://127.0.0.1:PORT"; pass it as HF_ENDPOINT
    ...
    sim.stop()

It speaks the part of the Hub API that spaces-scheduler uses, as huggingface_hub
expects it (paths, bodies, status codes, `X-Error-Code`, `Z` dates, `RateLimit`
headers), with a per-Space stage machine and scripted faults. See `world.py` for the
default world and `/work/shared/hubsim-world.example.toml` for every world key.
"""

from __future__ import annotations

from spaces_scheduler.hubsim.server import HubSim, serve_forever
from spaces_scheduler.hubsim.world import (
    DEFAULT_READ_TOKEN,
    DEFAULT_TOKEN,
    DEFAULT_WORLD,
    DEFAULT_WORLD_TOML,
    World,
    WorldError,
)

__all__ = [
    "DEFAULT_READ_TOKEN",
    "DEFAULT_TOKEN",
    "DEFAULT_WORLD",
    "DEFAULT_WORLD_TOML",
    "HubSim",
    "World",
    "WorldError",
    "serve_forever",
]
