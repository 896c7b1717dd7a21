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


def _offline(model: dict) -> bool:
    copies = model.get("copies") or []
    return bool(copies) and all(c["status"] == "offline" for c in copies)


@register.filter
def shown_status(model: dict) -> str:
    """The status badge: `offline` when every node holding the model has stopped heartbeating."""
    return "offline" if _offline(model) else model["status"]


@register.filter
def phase(model: dict) -> str:
    """What the page shows of a model object: a ready file whose llama-server failed shows that error; a
    model whose nodes are all offline offers nothing to do but look."""
    if _offline(model):
        return "offline"
    if model["status"] == "ready" and any(i["status"] == "error" for i in model.get("instances", [])):
        return "error"
    return PHASES.get(model["status"], "transfer")


@register.filter
def filesize(value: int | None) -> str:
    size = float(value or 0)
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.0f} {_UNITS[unit]}" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"


@register.filter
def memory_line(estimate: dict, context_size: int | str | None = None) -> dict:
    """The serve form's memory line, `text` and `over` (static/js/serve_estimate.js writes the same as the
    context changes)."""
    context_size = int(context_size) if str(context_size or "").isdigit() else estimate["contextSize"]
    needed = estimate["base"] + estimate["perToken"] * context_size
    text = f"Needs about {filesize(needed)} of memory with a context of {context_size:,} tokens"
    available = estimate["available"]
    if available is None:
        return {"text": f"{text}.", "over": False}
    if needed > available:
        return {"text": f"{text}, but node {estimate['node']} has only {filesize(max(available, 0))} available: "
                        "use a smaller context or stop another model.", "over": True}
    return {"text": f"{text}; node {estimate['node']} has {filesize(available)} available.", "over": False}


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
def first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]


@register.filter
def source_label(source: str) -> str:
    return SOURCES.get(source, source)


_COUNTS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


@register.filter
def parameters(gguf: dict | None) -> str:
    """The model's size label ("135M"), else its parameter count in human form ("15.0 M"), else a dash."""
    gguf = gguf or {}
    if gguf.get("sizeLabel"):
        return str(gguf["sizeLabel"])
    count = float(gguf.get("parameters") or 0)
    if not count:
        return "—"
    for scale, unit in _COUNTS:
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f}"
