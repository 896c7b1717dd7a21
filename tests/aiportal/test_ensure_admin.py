from __future__ import annotations

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_it_provisions_the_given_token_and_password(monkeypatch):
    monkeypatch.setenv("AIPORTAL_ADMIN_TOKEN", "given-token-123")
    monkeypatch.setenv("AIPORTAL_ADMIN_PASSWORD", "given-password")
    output = run()
    assert "API token:      given-token-123" in output
    assert Token.objects.get().key == "given-token-123"
    assert authenticate(username="admin", password="given-password") is not None


def test_it_generates_a_token_once_and_keeps_it(monkeypatch):
    monkeypatch.delenv("AIPORTAL_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("AIPORTAL_ADMIN_PASSWORD", raising=False)
    first, second = run(), run()
    assert first == second
    assert Token.objects.count() == 1
    assert Token.objects.get().key in first


def test_it_replaces_the_token_when_a_new_one_is_given(monkeypatch):
    monkeypatch.delenv("AIPORTAL_ADMIN_TOKEN", raising=False)
    run()
    monkeypatch.setenv("AIPORTAL_ADMIN_TOKEN", "rotated")
    run()
    assert list(Token.objects.values_list("key", flat=True)) == ["rotated"]
