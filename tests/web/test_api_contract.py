from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.web.portal import ARTIFACTS, TOKEN, manage, portal_env, portal_start

pytestmark = pytest.mark.slow


@pytest.fixture
def throwaway_portal(tmp_path, web_redis_url, fake_hub):
    """A portal of its own: the generated requests may create and delete models."""
    url = web_redis_url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(url).flushdb()
    env = portal_env(base=tmp_path, redis_url=url, hf_endpoint=fake_hub.url)
    manage(env, "migrate", "--noinput", "-v", "0")
    portal = portal_start(env=env, log=tmp_path / "portal.log")
    yield portal
    portal.stop()


def test_it_keeps_every_promise_of_its_openapi_schema(throwaway_portal):
    ARTIFACTS.mkdir(exist_ok=True)
    cli = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [str(cli if cli.exists() else shutil.which("schemathesis")), "--no-color", "run", f"{throwaway_portal.url}/api/schema/",
         "--url", throwaway_portal.url, "--checks", "all", "--max-examples", "30", "--seed", "20261202",
         "--header", f"Authorization: Token {TOKEN}", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=900, check=False)
    (ARTIFACTS / "schemathesis.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:]
