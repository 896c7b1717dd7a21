"""The token count of a relayed stream, from llama-server's `predicted_n`, however the bytes are split."""
import json

from chat.llm import Tally

STREAM = (b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
          b'data: {"choices":[{"delta":{"content":"!"}}]}\n\n'
          b'data: {"choices":[{"finish_reason":"stop","delta":{}}],"timings":{"prompt_n":9,"predicted_n":123}}\n\n'
          b'data: [DONE]\n\n')


def test_it_reads_predicted_n_wherever_the_chunks_split():
    for size in (1, 2, 3, 7, 16, len(STREAM)):
        tally = Tally()
        for start in range(0, len(STREAM), size):
            tally.feed(STREAM[start:start + size])
        assert tally.count == 123, size


def test_it_counts_one_token_per_event_for_a_stream_cut_before_its_end():
    tally = Tally()
    tally.feed(STREAM[:STREAM.index(b"data: {\"choices\":[{\"finish")])

    assert tally.count == 2


def test_it_ignores_timings_that_are_not_llama_servers():
    tally = Tally()
    for event in ({"choices": [{"delta": {"content": "a"}}]}, {"timings": "soon"}, {"timings": {"predicted_n": "9"}}):
        tally.feed(f"data: {json.dumps(event)}\n\n".encode())

    assert tally.count == 3  # one per event, as no usable predicted_n came
