"""Fit a conversation into a model's context: the system prompt, the new message, and as many of
the most recent turns as the tokens left allow (counted with the model's own tokenizer)."""
from __future__ import annotations

from collections.abc import Callable

from aiportal.errors import ApplicationError
from chat.models import ChatMessage

# Tokens the chat template adds around each message (role markers, separators).
MESSAGE_OVERHEAD = 8

Counter = Callable[[str], int]


def answer_reserve(*, context_size: int, max_tokens: int) -> int:
    """Room kept for the answer: what was asked for, but never more than half the context."""
    return max(1, min(max_tokens, context_size // 2))


def history_fit(*, system_prompt: str, turns: list[ChatMessage], text: str, context_size: int,
                max_tokens: int, count: Counter) -> tuple[list[dict], int]:
    """The messages to send and the token count of `text`; older turns are dropped first."""
    budget = context_size - answer_reserve(context_size=context_size, max_tokens=max_tokens)
    text_tokens = count(text)
    used = text_tokens + MESSAGE_OVERHEAD
    if system_prompt:
        used += count(system_prompt) + MESSAGE_OVERHEAD
    if used > budget:
        raise ApplicationError(
            f"Your message is too long for this model: {text_tokens} tokens, and the model's context "
            f"leaves room for about {max(0, budget - MESSAGE_OVERHEAD)}. Send a shorter one.",
            code="message_too_long")
    kept = _recent_turns(turns, budget - used, count)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": turn.role, "content": turn.content} for turn in kept]
    messages.append({"role": "user", "content": text})
    return messages, text_tokens


def _recent_turns(turns: list[ChatMessage], room: int, count: Counter) -> list[ChatMessage]:
    kept: list[ChatMessage] = []
    for turn in reversed(turns):
        cost = _tokens(turn, count) + MESSAGE_OVERHEAD
        if cost > room:
            break
        kept.append(turn)
        room -= cost
    kept.reverse()
    # A conversation sent to the model starts with the person speaking, not with a dangling answer.
    while kept and kept[0].role != ChatMessage.Role.USER:
        kept.pop(0)
    return kept


def _tokens(turn: ChatMessage, count: Counter) -> int:
    if turn.tokens is None:
        turn.tokens = count(turn.content)
        ChatMessage.objects.filter(pk=turn.pk).update(tokens=turn.tokens)
    return turn.tokens
