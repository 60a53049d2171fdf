"""The Space hardware price list (`GET /api/spaces/hardware`), public prices.

Prices are per hour in USD as the Hub's pricing page lists them; `unitCostMicroUSD`
is the same price in millionths of a dollar.
"""

from __future__ import annotations

from typing import Any

# name, pretty name, CPU, RAM, accelerator (model, count, VRAM) or None, $/hour
_FLAVORS: list[tuple[str, str, str, str, tuple[str, int, str] | None, float]] = [
    ("cpu-basic", "CPU Basic", "2 vCPU", "16 GB", None, 0.0),
    ("cpu-upgrade", "CPU Upgrade", "8 vCPU", "32 GB", None, 0.03),
    ("zero-a10g", "ZeroGPU", "dynamic", "dynamic", ("H200", 1, "70 GB"), 0.0),
    ("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", ("T4", 1, "16 GB"), 0.40),
    ("t4-medium", "Nvidia T4 - medium", "8 vCPU", "30 GB", ("T4", 1, "16 GB"), 0.60),
    ("l4x1", "1x Nvidia L4", "8 vCPU", "30 GB", ("L4", 1, "24 GB"), 0.80),
    ("l4x4", "4x Nvidia L4", "48 vCPU", "186 GB", ("L4", 4, "96 GB"), 3.80),
    ("l40sx1", "1x Nvidia L40S", "8 vCPU", "62 GB", ("L40S", 1, "48 GB"), 1.80),
    ("l40sx4", "4x Nvidia L40S", "48 vCPU", "382 GB", ("L40S", 4, "192 GB"), 8.30),
    ("l40sx8", "8x Nvidia L40S", "192 vCPU", "1534 GB", ("L40S", 8, "384 GB"), 23.50),
    (
        "a10g-small",
        "Nvidia A10G - small",
        "4 vCPU",
        "15 GB",
        ("A10G", 1, "24 GB"),
        1.00,
    ),
    (
        "a10g-large",
        "Nvidia A10G - large",
        "12 vCPU",
        "46 GB",
        ("A10G", 1, "24 GB"),
        1.50,
    ),
    (
        "a10g-largex2",
        "2x Nvidia A10G - large",
        "24 vCPU",
        "92 GB",
        ("A10G", 2, "48 GB"),
        3.00,
    ),
    (
        "a10g-largex4",
        "4x Nvidia A10G - large",
        "48 vCPU",
        "184 GB",
        ("A10G", 4, "96 GB"),
        5.00,
    ),
    (
        "a100-large",
        "Nvidia A100 - large",
        "12 vCPU",
        "142 GB",
        ("A100", 1, "80 GB"),
        2.50,
    ),
]


def flavor_names() -> frozenset[str]:
    return frozenset(row[0] for row in _FLAVORS)


def price_list() -> list[dict[str, Any]]:
    """Return the JobHardwareInfo rows the Hub answers."""
    return [_row(*flavor) for flavor in _FLAVORS]


def _row(
    name: str,
    pretty: str,
    cpu: str,
    ram: str,
    accelerator: tuple[str, int, str] | None,
    per_hour: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "prettyName": pretty,
        "cpu": cpu,
        "ram": ram,
        "accelerator": None,
        "unitCostMicroUSD": round(per_hour * 1_000_000),
        "unitCostUSD": per_hour,
        "unitLabel": "hour",
    }
    if accelerator is not None:
        model, count, vram = accelerator
        row["accelerator"] = {
            "type": "gpu",
            "model": model,
            "quantity": str(count),
            "vram": vram,
            "manufacturer": "Nvidia",
        }
    return row
