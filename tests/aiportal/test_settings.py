from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from aiportal.env import ConfigError, database_from_url, envbool, envids, envint

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    full_env.update({"AIPORTAL_RUN_DIR": str(tmp_path / "run"), "AI_MODEL_DIR": str(tmp_path / "models")}, **env)
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=full_env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def test_it_defaults_to_sqlite_in_wal_mode_with_a_busy_timeout(tmp_path):
    config = database_from_url("", tmp_path)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] >= 5


def test_it_reads_a_postgresql_url(tmp_path):
    config = database_from_url("postgresql://portal:s%40cret@db.example:6543/aiportal?sslmode=require", tmp_path)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("aiportal", "portal", "s@cret")
    assert (config["HOST"], config["PORT"]) == ("db.example", "6543")
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_it_refuses_an_unknown_database_scheme(tmp_path):
    with pytest.raises(ConfigError, match=r"DATABASE_URL='mysql://x/y': unsupported scheme 'mysql'"):
        database_from_url("mysql://x/y", tmp_path)


def test_it_refuses_a_postgresql_url_without_a_database(tmp_path):
    with pytest.raises(ConfigError, match="names no database"):
        database_from_url("postgresql://u:pw@host:5432/", tmp_path)


def test_it_parses_typed_settings(monkeypatch):
    monkeypatch.setenv("X_BOOL", "off")
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_IDS", "1, 22,333")
    assert envbool("X_BOOL", True) is False
    assert envint("X_INT", 1) == 12
    assert envids("X_IDS") == {1, 22, 333}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("X_BOOL", "maybe", "X_BOOL='maybe' is not a boolean"),
        ("X_INT", "twelve", "X_INT='twelve' is not an integer"),
        ("X_IDS", "12,bob", "X_IDS='12,bob' must be a comma-separated list of numeric user ids"),
    ],
)
def test_it_names_the_setting_in_a_bad_value(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    reader = {"X_BOOL": lambda: envbool(name, True), "X_INT": lambda: envint(name, 1), "X_IDS": lambda: envids(name)}[name]
    with pytest.raises(ConfigError, match=message):
        reader()


@pytest.mark.sqlite_only
@pytest.mark.django_db
def test_it_runs_sqlite_in_wal_mode(tmp_path):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 20000


def test_it_stops_start_up_with_one_line_for_a_bad_database_url(tmp_path):
    result = run_manage("runportal", env={"DATABASE_URL": "mysql://db/x"}, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "aiportal: configuration error: DATABASE_URL='mysql://db/x': unsupported scheme 'mysql' "
        "(use postgresql:// or sqlite://)"
    )


def test_it_reads_a_sqlite_url_with_three_slashes_as_relative_to_the_checkout(tmp_path):
    assert database_from_url("sqlite:///db.sqlite3", tmp_path)["NAME"] == str(tmp_path / "db.sqlite3")
    assert database_from_url("sqlite:///data/portal.db", tmp_path)["NAME"] == str(tmp_path / "data" / "portal.db")


def test_it_reads_a_sqlite_url_with_four_slashes_as_absolute(tmp_path):
    assert database_from_url("sqlite:////var/lib/aiportal/db.sqlite3", tmp_path)["NAME"] == "/var/lib/aiportal/db.sqlite3"


def test_it_stops_start_up_with_one_line_for_an_unreachable_database(tmp_path):
    result = run_manage("runportal", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/aiportal"}, tmp_path=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("aiportal: configuration error: DATABASE_URL: cannot connect to the database:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_it_stops_start_up_with_one_line_for_an_unreachable_redis(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite3"
    result = run_manage("runportal", env={"DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:9/0"}, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("aiportal: configuration error: REDIS_URL: cannot reach Redis at redis://127.0.0.1:9/0")
    assert len(result.stderr.strip().splitlines()) == 1


def test_it_stops_start_up_for_a_bad_torrent_format(tmp_path):
    result = run_manage("check", env={"P2P_TORRENT_FORMAT": "v3"}, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "aiportal: configuration error: P2P_TORRENT_FORMAT='v3' must be hybrid, v1 or v2"


def test_it_writes_a_named_process_log_to_a_rotating_file(tmp_path):
    script = ("import logging, django; django.setup(); from django.conf import settings; "
              "logging.getLogger('aiportal').warning('x' * 3000); logging.getLogger('aiportal').warning('y' * 3000); "
              "print(settings.LOG_DIR)")
    env = {**os.environ, "AIPORTAL_LOG_NAME": "node", "LOG_MAX_BYTES": "4096", "LOG_BACKUPS": "2",
           "AIPORTAL_RUN_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "aiportal.settings"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    logs = Path(done.stdout.strip())
    assert "y" * 3000 in (logs / "node.log").read_text()
    assert "x" * 3000 in (logs / "node.log.1").read_text()
