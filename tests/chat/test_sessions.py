from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from aiportal.errors import ApplicationError, Conflict, NotFound
from chat import history, llm
from chat.models import ChatMessage, ChatSession
from chat.selectors import excerpt, session_search
from chat.services import (
    session_ask,
    session_clear,
    session_for_telegram,
    session_for_web_user,
    session_send,
    session_start,
)
from models_app.inference.services import serve_stop
from tests.chat.conftest import CONTEXT
from tests.streams import stream_read

pytestmark = pytest.mark.django_db
QUESTION = "What is the capital of France?"


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ada", password="pw")


def _turns(session: ChatSession) -> list[tuple[str, str]]:
    return list(session.messages.values_list("role", "content"))


def _long_turns(session: ChatSession, n: int) -> None:
    for i in range(n):
        ChatMessage.objects.create(session=session, role="user", content=f"question {i}: " + "tell me more " * 30)
        ChatMessage.objects.create(session=session, role="assistant", content=f"answer {i}: " + "here is more " * 30)


def test_it_streams_a_reply_and_saves_both_turns(served_demo, user):
    session = session_for_web_user(user=user, model_id=served_demo)

    deltas = stream_read(session_send(session=session, text=f"  {QUESTION}  ", max_tokens=24, temperature=0))

    assert len(deltas) > 3
    assert "Paris" in "".join(deltas)
    assert _turns(session) == [("user", QUESTION), ("assistant", "".join(deltas))]
    assert session.messages.get(role="user").tokens == llm.count_tokens(model_id=served_demo, text=QUESTION)
    assert ChatSession.objects.get(pk=session.pk).title == QUESTION


def test_it_continues_the_same_session_for_its_owner(served_demo, user):
    first = session_for_web_user(user=user, model_id=served_demo)
    session_ask(session=first, text=QUESTION, max_tokens=4, temperature=0)

    again = session_for_web_user(user=user)
    session_ask(session=again, text="And of Germany?", max_tokens=4, temperature=0)

    assert again.pk == first.pk
    assert again.was_expired is False
    assert [role for role, _ in _turns(again)] == ["user", "assistant", "user", "assistant"]


def test_it_keeps_telegram_sessions_apart_per_chat_and_user(served_demo):
    mine = session_for_telegram(chat_id=-100, user_id=1, model_id=served_demo)
    theirs = session_for_telegram(chat_id=-100, user_id=2, model_id=served_demo)
    private = session_for_telegram(chat_id=1, user_id=1, model_id=served_demo)

    assert len({mine.pk, theirs.pk, private.pk}) == 3
    assert session_for_telegram(chat_id=-100, user_id=1).pk == mine.pk
    assert session_for_telegram(chat_id=-100, user_id=3) is None


def test_it_starts_an_expired_session_afresh_and_says_so(served_demo, user, settings):
    settings.CHAT_SESSION_TIMEOUT_MINUTES = 30
    session = session_for_web_user(user=user, model_id=served_demo)
    session_ask(session=session, text=QUESTION, max_tokens=8, temperature=0)
    ChatSession.objects.filter(pk=session.pk).update(last_activity=timezone.now() - timedelta(minutes=31))

    said = _turns(session)

    again = session_for_web_user(user=user)

    assert again.pk == session.pk
    assert again.was_expired is True
    assert again.model_id == served_demo
    assert _turns(again) == []
    assert again.title == ""
    # What was said before the silence is a past chat of its own, as it was.
    past = ChatSession.objects.get(user=user, active=False)
    assert (_turns(past), past.title, past.model_id) == (said, QUESTION, served_demo)
    assert past.last_activity < timezone.now() - timedelta(minutes=30)
    assert [s.pk for s in session_search(user=user, query="capital OF france")] == [past.pk]


def test_an_idle_telegram_session_forgets_its_conversation(served_demo, settings):
    settings.CHAT_SESSION_TIMEOUT_MINUTES = 30
    session = session_for_telegram(chat_id=5, user_id=5, model_id=served_demo)
    session_ask(session=session, text=QUESTION, max_tokens=4, temperature=0)
    ChatSession.objects.filter(pk=session.pk).update(last_activity=timezone.now() - timedelta(minutes=31))

    again = session_for_telegram(chat_id=5, user_id=5)

    assert (again.pk, again.was_expired, _turns(again)) == (session.pk, True, [])
    assert ChatSession.objects.count() == 1 and ChatMessage.objects.count() == 0  # the bot shows no past chats


def test_search_finds_chats_by_title_or_message_and_cuts_an_excerpt_around_the_match(served_demo, user, admin_user):
    older = session_start(model_id=served_demo, user=user)
    ChatMessage.objects.create(session=older, role="user", content="Tell me about sourdough")
    ChatMessage.objects.create(session=older, role="assistant", content="Sourdough is bread raised by a "
                               "starter of wild yeast and lactic bacteria, fed with flour and water every day.")
    newer = session_start(model_id=served_demo, user=user)
    ChatMessage.objects.create(session=newer, role="user", content="Rust or Go?")
    ChatSession.objects.filter(pk=newer.pk).update(title="Rust or Go?")
    ChatMessage.objects.create(session=session_start(model_id=served_demo, user=admin_user), role="user",
                               content="wild yeast, someone else's")

    assert [s.pk for s in session_search(user=user)] == [newer.pk, older.pk]
    [found] = session_search(user=user, query="WILD yeast")
    assert found.pk == older.pk
    assert found.excerpt == ("…is bread raised by a starter of ", "wild yeast", " and lactic bacteria, fed with flour…")
    assert [s.excerpt for s in session_search(user=user, query="rust")] == [None]  # only in its title
    assert session_search(user=user, query="rye") == []
    before, match, after = excerpt("lorem " * 20 + "needle" + " ipsum" * 20, "NEEDLE")
    assert (before, match, after) == ("…" + "lorem " * 6, "needle", " ipsum" * 6 + "…")


def test_it_fits_the_history_into_the_context_keeping_the_system_prompt_and_recent_turns(served_demo, user):
    session = session_start(model_id=served_demo, user=user, system_prompt="You are a terse assistant.")
    _long_turns(session, 8)
    count = lambda text: llm.count_tokens(model_id=served_demo, text=text)  # noqa: E731

    messages, _ = history.history_fit(system_prompt=session.system_prompt, turns=list(session.messages.all()),
                                      text=QUESTION, context_size=CONTEXT, max_tokens=128, count=count)

    assert messages[0] == {"role": "system", "content": "You are a terse assistant."}
    assert messages[-1] == {"role": "user", "content": QUESTION}
    assert messages[1]["role"] == "user"
    assert messages[-2]["content"].startswith("answer 7: ")
    assert not any(m["content"].startswith("question 0: ") for m in messages)
    used = sum(count(m["content"]) + history.MESSAGE_OVERHEAD for m in messages)
    assert used <= CONTEXT - 128
    assert len(messages) < 2 + 16


def test_it_answers_with_a_history_longer_than_the_context(served_demo, user):
    session = session_start(model_id=served_demo, user=user)
    _long_turns(session, 8)

    answer = session_ask(session=session, text=QUESTION, max_tokens=8, temperature=0)

    assert answer.strip()
    assert session.messages.count() == 18
    assert not session.messages.filter(tokens__isnull=True, role="user").exclude(content__startswith="question").exists()


def test_it_refuses_a_message_longer_than_the_context_and_keeps_the_history(served_demo, user):
    session = session_for_web_user(user=user, model_id=served_demo)
    session_ask(session=session, text=QUESTION, max_tokens=8, temperature=0)

    with pytest.raises(ApplicationError) as caught:
        session_send(session=session, text="word " * 700)

    assert caught.value.code == "message_too_long"
    assert caught.value.message.startswith("Your message is too long for this model: ")
    assert len(_turns(session)) == 2


def test_it_refuses_an_empty_message(served_demo, user):
    session = session_for_web_user(user=user, model_id=served_demo)

    with pytest.raises(ApplicationError) as caught:
        session_send(session=session, text="   \n ")

    assert (caught.value.code, caught.value.message) == ("empty_message", "The message is empty.")


def test_it_refuses_a_session_for_an_unknown_model(user):
    with pytest.raises(NotFound) as caught:
        session_for_web_user(user=user, model_id="no-such-model")

    assert caught.value.message == "No model with id 'no-such-model'."
    assert ChatSession.objects.count() == 0


def test_it_clears_the_session_and_forgets_the_history(served_demo, user):
    session = session_for_web_user(user=user, model_id=served_demo)
    session_ask(session=session, text=QUESTION, max_tokens=8, temperature=0)

    session_clear(session=session)

    assert session_for_web_user(user=user) is None
    assert ChatMessage.objects.filter(session=session).count() == 0


def test_it_keeps_the_history_when_the_model_stopped(served_demo, user):
    session = session_for_web_user(user=user, model_id=served_demo)
    session_ask(session=session, text=QUESTION, max_tokens=8, temperature=0)
    serve_stop(model_id=served_demo)  # inside this test's transaction: rolled back for the next test

    with pytest.raises(Conflict) as caught:
        session_send(session=session, text="And of Germany?")

    assert caught.value.code == "model_not_serving"
    assert len(_turns(session)) == 2


def test_asking_again_replaces_the_last_exchange_once_the_new_answer_is_complete(served_demo, user):
    session = session_start(model_id=served_demo, user=user)
    with pytest.raises(Conflict) as refused:
        session_send(session=session, text=QUESTION, replace_last=True)
    assert refused.value.code == "nothing_to_replace"
    session_ask(session=session, text="Say hello.", max_tokens=8)
    session_ask(session=session, text=QUESTION, max_tokens=8)
    before = _turns(session)

    stream = session_send(session=session, text="What is the capital of Italy?", max_tokens=8, replace_last=True)

    async def read():
        first = await anext(stream)
        midway = await sync_to_async(_turns)(session)
        return first + "".join([delta async for delta in stream]), midway

    answer, midway = async_to_sync(read)()
    assert midway == before  # nothing replaced while the answer was still coming

    turns = _turns(session)
    assert len(turns) == 4 and turns[:2] == before[:2]
    assert turns[2:] == [("user", "What is the capital of Italy?"), ("assistant", turns[3][1])] and answer
