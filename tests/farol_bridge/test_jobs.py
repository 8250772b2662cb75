"""A Job's streamed token lines: joined, they are exactly the final response."""

from farol_bridge.jobs import Job
from hypothesis import given, settings
from hypothesis import strategies as st

TEXT = st.text(alphabet=" \nab", max_size=6)


def streamed(pieces, stop, reason="length"):
    lines = []
    job = Job(id=1, tokens=[1], max_tokens=99, emit=lines.append, stop=stop, stream=True)
    for piece in pieces:
        if job.feed(piece):
            break
    final = job.finish(reason)
    return "".join(x["text"] for x in lines if x.get("event") == "token"), final["response"]


def test_leading_whitespace_does_not_shift_the_last_piece():
    # "\n\nHello" then " wor" held back for the stop "world": the end used to come out as "r".
    assert streamed(["\n\nHello", " wor"], ["world"]) == ("Hello wor", "Hello wor")


def test_the_space_before_a_held_stop_prefix_is_held_too():
    # " wor" could become "world", which cuts the answer to "Hello": its space must wait.
    assert streamed(["Hello", " wor", "ld"], ["world"], None) == ("Hello", "Hello")


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(TEXT, max_size=8), stop=st.lists(TEXT.filter(bool), max_size=3))
def test_streamed_pieces_always_add_up_to_the_response(pieces, stop):
    joined, response = streamed(pieces, stop)
    assert joined == response
