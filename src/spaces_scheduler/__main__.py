from __future__ import annotations

from spaces_scheduler.cli import main

main()
