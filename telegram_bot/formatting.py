"""A model's Markdown as Telegram HTML (parse_mode HTML), and answers cut into messages without
breaking a code block or an entity.

Telegram accepts a small set of tags (b, i, s, code, pre, a, blockquote) and nothing unbalanced,
so everything else is escaped. Each message is converted on its own: a bold run or a code block
that the cut would break is closed in one message and opened again in the next. When Telegram still
refuses the entities, the sender falls back to the plain text (`streaming.StreamingReply`).
"""
from __future__ import annotations

import html
import re

from telegram_bot import send

_FENCE = re.compile(r"^```[ \t]*([\w+#.-]*)[ \t]*\n(.*?)(?:^```[ \t]*$|\Z)", re.M | re.S)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+")
_QUOTE = re.compile(r"^&gt;[ \t]?")
_INLINE = [
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"<b>\1</b>"),
    (re.compile(r"(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])"), r"<b>\1</b>"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), r"<i>\1</i>"),
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), r"<i>\1</i>"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"<s>\1</s>"),
]
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


def to_html(markdown: str) -> str:
    """Telegram HTML for one message's worth of Markdown."""
    out, pos = [], 0
    for match in _FENCE.finditer(markdown):
        out.append(_blocks(markdown[pos:match.start()]))
        language, code = match.group(1), html.escape(match.group(2).rstrip("\n"), quote=False)
        out.append(f'<pre><code class="language-{html.escape(language)}">{code}</code></pre>' if language
                   else f"<pre>{code}</pre>")
        pos = match.end()
    out.append(_blocks(markdown[pos:]))
    return "".join(out).strip("\n")


def _blocks(text: str) -> str:
    lines, quoted = [], []
    for line in html.escape(text, quote=False).split("\n"):
        if _QUOTE.match(line):
            quoted.append(_inline(_QUOTE.sub("", line)))
            continue
        if quoted:
            lines.append(f"<blockquote>{chr(10).join(quoted)}</blockquote>")
            quoted = []
        heading = _HEADING.match(line)
        if heading:
            lines.append(f"<b>{_inline(heading.group(1))}</b>")
        else:
            lines.append(_inline(_BULLET.sub(lambda m: m.group(1) + "• ", line)))
    if quoted:
        lines.append(f"<blockquote>{chr(10).join(quoted)}</blockquote>")
    return "\n".join(lines)


def _inline(line: str) -> str:
    """One escaped line: code spans stay as they are, the rest gets bold, italics, strike and links."""
    parts, pos = [], 0
    for match in _CODE_SPAN.finditer(line):
        parts.append(_styled(line[pos:match.start()]))
        parts.append(f"<code>{match.group(1)}</code>")
        pos = match.end()
    parts.append(_styled(line[pos:]))
    return "".join(parts)


def _styled(text: str) -> str:
    text = _LINK.sub(lambda m: f'<a href="{m.group(2).replace(chr(34), "&quot;")}">{m.group(1)}</a>', text)
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text


def pieces(markdown: str, limit: int = send.MAX_TEXT) -> list[str]:
    """Markdown cut into messages of at most `limit` characters: at paragraph, line or word breaks,
    never inside a code block (a block longer than a message is closed and opened again)."""
    segments, pos = [], 0
    for match in _FENCE.finditer(markdown):
        segments += [(False, markdown[pos:match.start()]), (True, match.group(0))]
        pos = match.end()
    segments.append((False, markdown[pos:]))
    units: list[str] = []
    for is_code, text in segments:
        if not text.strip():
            continue
        units += _code_units(text, limit) if is_code else send.text_split(text.strip("\n"), limit)
    return send.blocks_pack(units, limit) or [markdown]


def _code_units(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block.rstrip("\n")]
    first, _, body = block.partition("\n")
    body = body.rstrip("\n").removesuffix("```").rstrip("\n")
    room = limit - len(first) - len("\n\n```")
    chunks: list[list[str]] = [[]]
    size = 0
    for line in body.split("\n"):
        for part in [line[i:i + room] for i in range(0, len(line), room)] or [""]:  # a line longer than a message
            if chunks[-1] and size + 1 + len(part) > room:
                chunks.append([])
                size = 0
            size += len(part) + (1 if chunks[-1] else 0)
            chunks[-1].append(part)
    return [f"{first}\n" + "\n".join(lines) + "\n```" for lines in chunks if lines]
