"""How every process logs: one line a record, at the configured level."""

from __future__ import annotations

import logging

from pictograph.settings import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
