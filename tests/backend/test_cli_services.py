"""``citizen services`` prints the URLs of the servers it started in full (another terminal uses
them) and never the password of a URL it was given (a production server's, perhaps)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend.cli._serve import shown_url

DATABASE = "postgresql://citizen:pg-s3cret@db.internal:5432/citizen"
REDIS = "redis://:redis-s3cret@cache.internal:6379/0"


def test_a_given_url_is_shown_without_its_password() -> None:
    assert shown_url(DATABASE, started_here=False) == "postgresql://citizen:***@db.internal:5432/citizen"
    assert shown_url(REDIS, started_here=False) == "redis://:***@cache.internal:6379/0"
    several = "postgresql://app:p%40ss@h1:5432,h2:5432/citizen?target_session_attrs=read-write"
    assert shown_url(several, started_here=False) == (
        "postgresql://app:***@h1:5432,h2:5432/citizen?target_session_attrs=read-write"
    )
    assert shown_url("redis://cache.internal:6379/0", started_here=False) == "redis://cache.internal:6379/0"
    assert shown_url(DATABASE, started_here=True) == DATABASE  # one of ours: the other terminal needs it


def test_services_with_external_urls_prints_no_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {
            "CITIZEN_ENV": "development",
            "CITIZEN_DATA_DIR": str(tmp_path),
            "CITIZEN_LOG_LEVEL": "WARNING",
            "CITIZEN_DATABASE_URL": DATABASE,
            "CITIZEN_REDIS_URL": REDIS,
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli", "services"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "CITIZEN_DATABASE_URL=postgresql://citizen:***@db.internal:5432/citizen" in lines
    assert "CITIZEN_REDIS_URL=redis://:***@cache.internal:6379/0" in lines
