"""Formatting for the web UI; static/js/models.js formats live updates the same way."""
from __future__ import annotations

from django import template

register = template.Library()

PHASES = {
    "queued": "transfer",
    "downloading": "transfer",
    "verifying": "transfer",
    "ready": "ready",
    "starting": "running",
    "serving": "running",
    "stopping": "running",
    "error": "error",
}
_UNITS = ("B", "KB", "MB", "GB", "TB")
SOURCES = {"huggingface": "Hugging Face", "magnet": "Magnet link", "local": "Local file"}


@register.filter
def phase(status: str) -> str:
    return PHASES.get(status, "transfer")


@register.filter
def filesize(value: int | None) -> str:
    size = float(value or 0)
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.0f} {_UNITS[unit]}" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


@register.filter
def rate(value: int | None) -> str:
    return f"{filesize(value)}/s"


@register.filter
def percent(value: float | None) -> str:
    return f"{float(value or 0):.0f}%"


@register.filter
def ratio(value: float | None) -> str:
    return f"{float(value or 0):.2f}"


@register.filter
def source_label(source: str) -> str:
    return SOURCES.get(source, source)
