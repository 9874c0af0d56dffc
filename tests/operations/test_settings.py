from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pictograph.cli import app
from pictograph.settings import Settings, SettingsError, load_settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PICTOGRAPH_MEDIA_URL_TTL", "soon"),
        ("PICTOGRAPH_CELEBRITY_THRESHOLD", "0"),
        ("PICTOGRAPH_DATABASE_URL", "mysql://x"),
        ("PICTOGRAPH_REDIS_URL", "localhost:6379"),
        ("PICTOGRAPH_PUBLIC_BASE_URL", "example.com"),
        ("PICTOGRAPH_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert name in result.output


def test_environment_configures_the_real_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICTOGRAPH_DATABASE_URL", "postgres://u@db:5432/p")
    monkeypatch.setenv("PICTOGRAPH_SECRET_KEY", secrets.token_urlsafe(48))
    monkeypatch.setenv("PICTOGRAPH_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("PICTOGRAPH_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("PICTOGRAPH_CELEBRITY_THRESHOLD", "5000")
    settings = load_settings()
    assert not settings.embedded_database and not settings.embedded_redis
    assert not settings.embedded_storage and settings.celebrity_threshold == 5000


def test_embedded_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolved_secret_key()
    again = Settings(data_dir=tmp_path).resolved_secret_key()
    assert first == again and len(first) >= 48
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_secret_key_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICTOGRAPH_SECRET_KEY", "hunter2-but-longer")
    settings = load_settings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize(
    "key",
    [
        None,  # missing
        "Zq7-vR2pX9kLm4Tt8Wy1",  # random, but 20 characters
        "change-me-to-a-long-random-string",  # docker-compose.yml's old value
        "CHANGEME_please_to_something_long_and_random_1234",
        "your-secret-key-goes-here-0123456789abcdef",
        "this-is-an-example-key-1234567890abcdefghij",
        "a" * 64,
        "abcdabcdabcdabcdabcdabcdabcdabcdabcd",  # too few distinct characters
    ],
)
def test_on_postgresql_a_missing_short_or_placeholder_secret_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    monkeypatch.setenv("PICTOGRAPH_DATABASE_URL", "postgres://u@db:5432/p")
    if key is not None:
        monkeypatch.setenv("PICTOGRAPH_SECRET_KEY", key)
    with pytest.raises(SettingsError, match="PICTOGRAPH_SECRET_KEY") as refused:
        load_settings()
    assert key is None or key not in str(refused.value)
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 2
    assert "PICTOGRAPH_SECRET_KEY" in result.output and "secrets.token_urlsafe" in result.output
    assert key is None or key not in result.output


def test_the_embedded_default_needs_no_secret_key(tmp_path: Path) -> None:
    assert load_settings(data_dir=tmp_path).resolved_secret_key()


@pytest.mark.parametrize(("cache_ttl", "url_ttl", "expected"),
                         [(60, 300, 30), (10, 300, 10), (60, 86_400, 60), (60, 5, 0)])
def test_a_rendered_response_lives_at_most_a_tenth_of_a_media_url(
    tmp_path: Path, cache_ttl: int, url_ttl: int, expected: int
) -> None:
    settings = Settings(data_dir=tmp_path, response_cache_ttl=cache_ttl, media_url_ttl=url_ttl)
    assert settings.response_ttl == expected
    assert Settings(data_dir=tmp_path, response_cache=False).response_ttl == 0
