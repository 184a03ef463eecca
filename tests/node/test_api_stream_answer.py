"""``/txs/stream``'s answers are ``json.dumps`` of the answer, byte for byte, however they are written.

``api._answer_text`` writes the answer to a message whose txs were all
accepted from a template, and any other with json.dumps; a client sees the
same text as ever, for any answer.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lendchain.node import api
from lendchain.node.api import _answer_text

json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
tx_ids = st.sampled_from(["ab" * 32, "", "AB12", 'a"b', "a\\b", "é1", "a b", "ａ1", "\x00"]) | st.text(
    max_size=8
)
accepted = st.builds(lambda tx_id: {"id": tx_id, "status": "accepted"}, tx_ids)
shaped_otherwise = st.sampled_from(
    [
        {"status": "accepted", "id": "ab" * 32},  # the keys in another order
        {"id": "ab" * 32, "status": "accepted", "extra": 1},
        {"id": "ab" * 32, "status": "known", "state": "pending"},
        {"id": None, "status": "rejected", "code": "malformed", "message": 'transaction is not "msgpack": é'},
        {"id": 7, "status": "accepted"},
        {"id": "ab" * 32, "status": "Accepted"},
    ]
)
results = st.lists(accepted | shaped_otherwise | json_values, max_size=6)


@settings(max_examples=400, deadline=None)
@given(results, st.none() | st.just("absent") | json_values)
def test_an_answer_is_written_as_json_dumps_writes_it(listed: list[Any], message_id: Any):
    answer: dict[str, Any] = {"results": listed}
    if message_id != "absent":
        answer["id"] = message_id
    assert _answer_text(answer) == json.dumps(answer)


def test_error_answers_and_other_shapes_are_json_dumps():
    for answer in (
        {"error": "mempool_full", "message": "full; retry", "status": 503, "retry_after_s": 2, "id": 2},
        {"error": "bad_request", "message": "message is not valid JSON", "status": 400},
        {"id": 1, "results": [{"id": "ab", "status": "accepted"}]},  # "id" first
        {"results": ({"id": "ab", "status": "accepted"},)},
        {"results": [{"id": "ab", "status": "accepted"}], "id": 1, "more": True},
    ):
        assert _answer_text(answer) == json.dumps(answer)


@settings(max_examples=200, deadline=None)
@given(st.lists(accepted, min_size=1, max_size=6), st.none() | st.just("absent") | json_values)
def test_an_answer_that_accepted_every_tx_is_written_as_json_dumps_writes_it(listed, message_id):
    answer: dict[str, Any] = {"results": listed}
    if message_id != "absent":
        answer["id"] = message_id
    assert _answer_text(answer) == json.dumps(answer)


def test_a_stream_of_accepted_txs_is_answered_from_the_template(monkeypatch):
    dumped: list[Any] = []

    class RecordingJson:
        @staticmethod
        def dumps(value: Any) -> str:
            dumped.append(value)
            return json.dumps(value)

    monkeypatch.setattr(api, "json", RecordingJson)
    answer = {
        "results": [{"id": "0f" * 32, "status": "accepted"}, {"id": "1e" * 32, "status": "accepted"}],
        "id": "b-7",
    }
    expected = '{"results": [{"id": "' + "0f" * 32 + '", "status": "accepted"}, {"id": "' + "1e" * 32
    assert _answer_text(answer) == expected + '", "status": "accepted"}], "id": "b-7"}'
    assert dumped == ["b-7"]  # the message's id alone: no result went through json.dumps
