"""The entry point ASGI servers import: ``uvicorn --factory backend.asgi:create_app_from_env``.

Settings are read when the server calls the factory in each worker, never at import time.
"""

from __future__ import annotations

from litestar import Litestar

from backend.app import create_app
from backend.observability import configure_logging
from backend.settings import Settings


def create_app_from_env() -> Litestar:
    settings = Settings.from_env()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_app(settings)
