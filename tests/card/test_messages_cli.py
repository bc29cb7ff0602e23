"""``citizen messages poll`` (wired in backend/cli/_integrations.py): one pass, in process."""

from __future__ import annotations

import pytest

from backend.cli import main
from backend.settings import Settings


def test_messages_poll_runs_one_pass(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.database.url is not None and settings.redis.url is not None
    monkeypatch.setenv("CITIZEN_ENV", "test")
    monkeypatch.setenv("CITIZEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CITIZEN_DATABASE_URL", settings.database.url.reveal())
    monkeypatch.setenv("CITIZEN_REDIS_URL", settings.redis.url.reveal())
    assert main(["messages", "poll"]) == 0
    assert "polled 0 people" in capsys.readouterr().out
