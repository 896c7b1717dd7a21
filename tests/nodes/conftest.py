from __future__ import annotations

import pytest

from tests.conftest import chromium


@pytest.fixture(scope="package")
def browser():
    yield from chromium()
