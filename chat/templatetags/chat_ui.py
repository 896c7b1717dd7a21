"""Template filters of the chat pages."""
from __future__ import annotations

from django import template

from chat.services import CUT_OFF_MARK

register = template.Library()


@register.filter
def cut_off(content: str) -> bool:
    """True for an answer that was stopped or left before it was complete (`chat.services` marks it)."""
    return content.endswith(CUT_OFF_MARK)


@register.filter
def without_cut_off(content: str) -> str:
    return content.removesuffix(CUT_OFF_MARK)
