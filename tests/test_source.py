"""The portal's own code has no undefined names, unused variables or other pyflakes findings.

A name left behind by a rename (CI once saw `NameError: _touch` as a 500 from /v1) is caught here,
before any server runs. A line may opt out of "imported but unused" with a `# noqa` comment, for an
import kept for its side effect or as a module's interface.
"""
from pathlib import Path

from pyflakes import api, reporter

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["aiportal", "chat", "models_app", "torrents_app", "telegram_bot", "tests", "bench", "scripts"]


class _Collect(reporter.Reporter):
    def __init__(self):
        self.found: list[str] = []

    def unexpectedError(self, filename, msg):
        self.found.append(f"{filename}: {msg}")

    def syntaxError(self, filename, msg, lineno, offset, text):
        self.found.append(f"{filename}:{lineno}: {msg}")

    def flake(self, message):
        line = Path(message.filename).read_text().splitlines()[message.lineno - 1]
        if "imported but unused" in str(message) and "# noqa" in line:
            return
        self.found.append(str(message))


def test_the_source_has_no_pyflakes_findings():
    collect = _Collect()
    files = [str(path) for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    api.checkRecursive(files + [str(ROOT / "manage.py")], collect)
    assert collect.found == []
