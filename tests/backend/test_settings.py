from pathlib import Path

import pytest

from backend.keyring import Keyring
from backend.settings import Environment, Secret, Settings, SettingsError


def test_defaults_are_production_and_local() -> None:
    settings = Settings.from_env({})
    assert settings.environment is Environment.PRODUCTION
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8000
    assert settings.database.url is None
    assert settings.data_dir == Path("var")


def test_variables_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "CITIZEN_ENV": "development",
            "CITIZEN_DATABASE_URL": "postgresql://u:pw@db/citizen",
            "CITIZEN_REDIS_URL": "redis://cache:6379/2",
            "CITIZEN_WORKERS": "4",
            "CITIZEN_LOG_JSON": "false",
            "CITIZEN_DATA_DIR": "/srv/citizen",
        }
    )
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.http.workers == 4
    assert settings.log_json is False
    assert settings.database.url == Secret("postgresql://u:pw@db/citizen")
    assert settings.data_dir == Path("/srv/citizen")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CITIZEN_WORKERS", "many"),
        ("CITIZEN_WORKERS", "0"),
        ("CITIZEN_HTTP_PORT", "70000"),
        ("CITIZEN_ENV", "staging"),
        ("CITIZEN_DATABASE_URL", "mysql://x"),
        ("CITIZEN_LOG_JSON", "maybe"),
    ],
)
def test_a_bad_variable_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_secrets_never_show_in_repr() -> None:
    settings = Settings.from_env({"CITIZEN_DATABASE_URL": "postgresql://u:hunter2@db/x"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.database)


def test_production_refuses_missing_keys(tmp_path: Path) -> None:
    settings = Settings(environment=Environment.PRODUCTION, data_dir=tmp_path)
    with pytest.raises(SettingsError, match="CITIZEN_KEY_PII_ENCRYPTION"):
        Keyring.load(settings, environ={})


def test_development_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(environment=Environment.DEVELOPMENT, data_dir=tmp_path)
    first = Keyring.load(settings, environ={})
    second = Keyring.load(settings, environ={})
    assert first.get("pii-encryption") == second.get("pii-encryption")
    assert first.get("pii-encryption") != first.get("pii-index")
    assert len(first.get("session")) == 32
    assert first.get("session").hex() not in repr(first)  # the repr lists names only
    assert (tmp_path / "keys" / "session.key").stat().st_mode & 0o077 == 0


def test_a_key_from_the_environment_wins(tmp_path: Path) -> None:
    settings = Settings(environment=Environment.DEVELOPMENT, data_dir=tmp_path)
    keyring = Keyring.load(settings, names=["session"], environ={"CITIZEN_KEY_SESSION": "A" * 43})
    assert keyring.get("session") == b"\x00" * 32
    with pytest.raises(SettingsError, match="CITIZEN_KEY_SESSION"):
        Keyring.load(settings, names=["session"], environ={"CITIZEN_KEY_SESSION": "short"})


def test_the_load_resolution_ages_are_read() -> None:
    settings = Settings.from_env(
        {"CITIZEN_TERMINAL_LOAD_RESOLVE": "60", "CITIZEN_TERMINAL_LOAD_DOUBTFUL": "3600"}
    )
    assert settings.terminal.load_resolve_after_seconds == 60
    assert settings.terminal.load_doubtful_after_seconds == 3600
    with pytest.raises(SettingsError, match="CITIZEN_TERMINAL_LOAD_DOUBTFUL"):
        Settings.from_env({"CITIZEN_TERMINAL_LOAD_DOUBTFUL": "-1"})
