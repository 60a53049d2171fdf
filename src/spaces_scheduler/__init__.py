"""Refresh, rebuild, pause and resize Hugging Face Spaces on schedules."""

from __future__ import annotations

__version__ = "0.1.0"
