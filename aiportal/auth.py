"""API token authentication: `Authorization: Token <key>` (SPEC §4) and `Bearer <key>` (SPEC §5)."""
from __future__ import annotations

from rest_framework import authentication


class TokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"


class BearerAuthentication(authentication.TokenAuthentication):
    keyword = "Bearer"
