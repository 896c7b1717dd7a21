"""Create the `admin` user and its API token, or bring them in line with AIPORTAL_ADMIN_*."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from aiportal.env import env


class Command(BaseCommand):
    help = "Provision the admin user and its API token; print them."

    def handle(self, *args, **options):
        password = _password()
        user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if not user.check_password(password):
            user.set_password(password)
        user.is_staff = user.is_superuser = user.is_active = True
        user.save()
        token = _token(user)
        self.stdout.write(f"admin user:     admin / {password}")
        self.stdout.write(f"API token:      {token}")


def _password() -> str:
    given = env("AIPORTAL_ADMIN_PASSWORD")
    if given:
        return given
    path = settings.RUN_DIR / "admin_password"
    if not path.exists():
        settings.RUN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def _token(user) -> str:
    given = env("AIPORTAL_ADMIN_TOKEN")
    existing = Token.objects.filter(user=user).first()
    if given and (existing is None or existing.key != given):
        Token.objects.filter(user=user).delete()
        Token.objects.filter(key=given).delete()
        return Token.objects.create(user=user, key=given).key
    return (existing or Token.objects.create(user=user)).key
