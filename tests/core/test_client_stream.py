"""``TxStream.submit_pipelined`` against a scripted socket: the window, the order, refusals, leaving early."""

from __future__ import annotations

import json
from collections import deque

import pytest

from lendchain.client import NodeError, TxStream


class ScriptedSocket:
    """Answers each message when asked, as the node does: in order, echoing its id."""

    def __init__(self, swap_ids: bool = False) -> None:
        self.unanswered: deque[dict] = deque()
        self.most_in_flight = 0
        self.swap_ids = swap_ids

    def send(self, text: str) -> None:
        self.unanswered.append(json.loads(text))
        self.most_in_flight = max(self.most_in_flight, len(self.unanswered))

    def recv(self, timeout: float) -> str:
        message = self.unanswered.popleft()
        number = message.get("id")
        if self.swap_ids:
            number += 1
        if message["txs"] == ["full"]:
            answer = {
                "error": "mempool_full",
                "message": "the mempool is full",
                "status": 503,
                "retry_after_s": 2,
            }
        else:
            answer = {"results": [{"id": item, "status": "accepted"} for item in message["txs"]]}
        return json.dumps({**answer, "id": number})


def stream_over(socket: ScriptedSocket) -> TxStream:
    stream = TxStream.__new__(TxStream)  # no connection: the scripted socket stands in for it
    stream.url, stream._timeout, stream._ws = "ws://node/txs/stream", 1.0, socket
    return stream


def test_at_most_window_messages_are_unanswered_and_answers_come_in_order():
    socket = ScriptedSocket()
    batches = [[f"{n:02x}"] for n in range(20)]
    answers = list(stream_over(socket).submit_pipelined(batches, window=3))
    assert [answer[0]["id"] for answer in answers] == [batch[0] for batch in batches]
    assert socket.most_in_flight == 3 and not socket.unanswered


def test_a_refused_batch_is_yielded_with_its_retry_time_and_the_rest_still_answered():
    batches = [["aa"], ["full"], ["bb"]]
    answers = list(stream_over(ScriptedSocket()).submit_pipelined(batches, window=2))
    refused = answers[1]
    assert isinstance(refused, NodeError)
    assert (refused.status, refused.code, refused.retry_after_s) == (503, "mempool_full", 2)
    assert [answers[0][0]["id"], answers[2][0]["id"]] == ["aa", "bb"]


def test_leaving_early_reads_the_answers_in_flight():
    socket = ScriptedSocket()
    stream = stream_over(socket)
    for answer in stream.submit_pipelined([[f"{n:02x}"] for n in range(10)], window=4):
        assert answer[0]["id"] == "00"
        break
    assert not socket.unanswered  # the three sent after the first were read and dropped
    assert stream.submit_hex(["ff"])[0]["id"] == "ff"


def test_an_answer_out_of_step_is_an_error_not_a_wrong_result():
    with pytest.raises(NodeError, match="answered message 1 where 0 was due"):
        list(stream_over(ScriptedSocket(swap_ids=True)).submit_pipelined([["aa"], ["bb"]]))
    with pytest.raises(ValueError, match="window"):
        list(stream_over(ScriptedSocket()).submit_pipelined([["aa"]], window=0))
