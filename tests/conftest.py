"""Fixtures shared by the whole suite.

Every test runs with a clean Hub environment: no token, endpoint or cache of the
machine's leaks in, and huggingface_hub sends nothing but what a test asks for.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

_HUB_VARIABLES = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_TOKEN_PATH",
    "HF_OIDC_RESOURCE",
    "SPACES_SCHEDULER_CONFIG",
    "SPACES_SCHEDULER_STATE",
)

# Set before anything imports huggingface_hub, which reads them at import.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
for _name in _HUB_VARIABLES:
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def clean_hub_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Clear the Hub variables and point HF_HOME at an empty folder."""
    for name in _HUB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
    monkeypatch.setenv("COLUMNS", "120")
    yield


def postgres_available(host: str = "127.0.0.1", port: int = 5432) -> bool:
    """Whether a PostgreSQL server answers on the usual local port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def start_sim() -> Iterator[object]:
    """Start simulated Hubs from world dicts; stop them all after the test."""
    from spaces_scheduler.hubsim import HubSim, World

    started: list[HubSim] = []

    def start(world: dict[str, object]) -> HubSim:
        sim = HubSim(World.from_dict(world), port=0)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
