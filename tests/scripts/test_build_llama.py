from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_llama.py"
FAKE_SOURCE = ROOT / "tests" / "fakes" / "fake_llama_cpp"
VERSION = "11434.0.0"


@pytest.fixture
def build(tmp_path, demo_gguf):
    """Run the real build script against the fake llama.cpp tree, with its own cache."""

    def run(*args: str, sigill: str = "", check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "LLAMA_SOURCE_DIR": str(FAKE_SOURCE),
               "LLAMA_BUILD_FLAVOURS": "native,generic", "FAKE_LLAMA_SIGILL_FLAVOURS": sigill}
        done = subprocess.run([sys.executable, str(SCRIPT), "--smoke-model", str(demo_gguf), *args], env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0 or not check, done.stderr
        return done

    return run


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "aiportal"


def in_use(cache: Path) -> str:
    return os.readlink(cache / f"llama-server-{VERSION}")


def test_it_caches_a_build_only_once_it_has_answered(build, cache):
    done = build()

    assert done.stdout.splitlines()[-1] == str(cache / f"llama-server-{VERSION}-native" / "bin" / "llama-server")
    assert in_use(cache) == f"llama-server-{VERSION}-native"
    meta = json.loads((cache / f"llama-server-{VERSION}" / "build.json").read_text())
    assert meta["flavour"] == "native"
    assert "-DGGML_NATIVE=ON" in meta["cmake"]
    assert "native build answered" in done.stderr


def test_it_builds_the_next_flavour_when_one_dies_of_sigill(build, cache):
    done = build(sigill="native")

    assert done.stdout.splitlines()[-1].endswith(f"llama-server-{VERSION}-generic/bin/llama-server")
    assert in_use(cache) == f"llama-server-{VERSION}-generic"
    assert not (cache / f"llama-server-{VERSION}-native").exists()
    assert "the native build does not run here: killed by SIGILL" in done.stderr
    failed = json.loads((cache / f"llama-server-{VERSION}.failed.json").read_text())
    assert "SIGILL" in failed["native"]["reason"]


def test_it_prints_one_line_per_step_and_keeps_the_compiler_output_in_a_log(build, cache):
    done = build()

    log = cache / "logs" / f"llama-build-{VERSION}-native.log"
    assert f"full output in {log}" in done.stderr
    assert "-- Configuring done" in log.read_text()
    assert "Configuring" not in done.stderr
    assert "building native 100%" in done.stderr


def test_it_reuses_a_cached_build_without_building_or_testing_it_again(build, cache):
    first = build().stdout.splitlines()[-1]

    again = build()
    assert again.stdout.splitlines()[-1] == first
    assert again.stderr == ""


def test_it_tests_the_cached_build_again_on_a_changed_machine_and_rebuilds_it_when_it_dies(build, cache):
    build()
    meta_path = cache / f"llama-server-{VERSION}-native" / "build.json"
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | {"fingerprint": "another machine"}))

    done = build(sigill="native")
    assert "the cached native build no longer runs here (killed by SIGILL" in done.stderr
    assert in_use(cache) == f"llama-server-{VERSION}-generic"


def test_it_keeps_a_cached_build_that_still_answers_on_a_changed_machine(build, cache):
    build()
    meta_path = cache / f"llama-server-{VERSION}-native" / "build.json"
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | {"fingerprint": "another machine"}))

    done = build()
    assert "testing the cached native build" in done.stderr
    assert "building" not in done.stderr
    assert json.loads(meta_path.read_text())["fingerprint"] != "another machine"


def test_it_rebuilds_on_request(build, cache):
    build()
    built_at = (cache / f"llama-server-{VERSION}" / "build.json").stat().st_mtime_ns

    done = build("--rebuild")
    assert "building the native flavour" in done.stderr
    assert (cache / f"llama-server-{VERSION}" / "build.json").stat().st_mtime_ns > built_at
    assert in_use(cache) == f"llama-server-{VERSION}-native"


def test_it_fails_clearly_and_caches_nothing_when_no_flavour_runs(build, cache):
    done = build(sigill="native generic", check=False)

    assert done.returncode != 0
    assert "no llama-server build ran on this machine" in done.stderr
    assert "killed by SIGILL" in done.stderr
    assert not (cache / f"llama-server-{VERSION}").exists()


def test_it_replaces_a_cache_from_before_flavours(build, cache):
    legacy = cache / f"llama-server-{VERSION}" / "bin"
    legacy.mkdir(parents=True)
    (legacy / "llama-server").write_text("#!/bin/sh\nexit 1\n")

    build()
    assert in_use(cache) == f"llama-server-{VERSION}-native"
