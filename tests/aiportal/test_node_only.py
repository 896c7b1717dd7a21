"""`make node` (`runportal --node-only`) on a second machine joins through the group's database: a SQLite
file there would be a portal of its own, so it refuses with the setting to change."""
from __future__ import annotations

import subprocess
import sys

from tests.models_app.inference.portal import ROOT


def test_a_node_only_start_refuses_a_sqlite_database_naming_the_setting(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DJANGO_SECRET_KEY": "node-only",
           "AIPORTAL_RUN_DIR": str(tmp_path / "run"), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "runportal", "--node-only"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "DATABASE_URL: a node joins its group through the group's PostgreSQL" in done.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # nothing was migrated into a stray file
