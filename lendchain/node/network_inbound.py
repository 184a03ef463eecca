"""Inbound streams of the network layer: ``InboundStreams`` is a mixin of ``Network`` (network.py).

A member's outbound consensus stream is this node's inbound one: the handler
checks its HELLO (chain id, and the name its key belongs to), then reads
frames until the stream breaks or falls silent for ``dead_after_s``, charging
each to the member's inbound budget. A removed member's node let go
(``network_members``) keeps its stream too, at a removed member's budget,
and what it sends is dropped; this node's stream back to it carries PINGs only. A request stream carries one request
(catch-up, a relayed batch) and its answer.
"""

from __future__ import annotations

import random
from typing import Any

import trio
from libp2p.abc import INetStream

from lendchain.node.network_link import MemberLink, bounded, quietly
from lendchain.node.network_wire import FrameKind, FrameReader, WireError, decode_hello, encode_frame


class InboundStreams:
    def _link_of_stream(self: Any, stream: INetStream, let_go: bool = False) -> MemberLink | None:
        """The member ``stream`` comes from; a removed member let go only with ``let_go``."""
        peer_id = stream.muxed_conn.peer_id
        link = self._by_peer.get(peer_id)
        if link is not None:
            link.peer_id = peer_id  # the key it runs now: talk to that one
            return link
        gone = self._let_go.get(peer_id)
        if gone is None:  # the Noise gate makes this unreachable; belt and braces
            self._refused(peer_id, "stream")
        elif let_go:
            return gone
        else:
            self.log.debug("a stream from %s, removed from the consortium, reset", gone.member.name)
        return None

    async def _handle_consensus_stream(self: Any, stream: INetStream) -> None:
        # A removed member's node that has not read its removal yet keeps its link: were its
        # stream reset, it would redial and drop the connection its catch-up requests ride on.
        link = self._link_of_stream(stream, let_go=True)
        if link is None:
            await quietly(stream.reset())
            return
        name = link.member.name
        heeded = not link.let_go  # what a removed member sends is read (at its budget) and dropped
        reader = FrameReader(stream, self.options["max_frame_size"])
        try:
            with trio.fail_after(self.options["dead_after_s"]):
                kind, payload = await reader.read_frame()
            if kind is not FrameKind.HELLO:
                raise WireError(f"first frame is {kind.name}, expected HELLO")
            chain_id, claimed = decode_hello(payload)
            if chain_id != self.chain_id:
                raise WireError(f"peer is on chain {chain_id!r}, we are on {self.chain_id!r}")
            if claimed != name:
                raise WireError(f"peer says it is {claimed!r} but its key is {name}'s")
            previous, link.inbound = link.inbound, stream
            if previous is not None:
                await quietly(previous.reset())
            while True:
                with trio.fail_after(self.options["dead_after_s"]):
                    kind, payload = await reader.read_frame()
                link.last_heard = trio.current_time()
                if kind is FrameKind.DATA:
                    if self._inject_loss("frame_loss"):
                        continue
                    wait = link.budget.delay(link.last_heard, frames=1, bytes=len(payload))
                    if wait > 0:
                        self._counters["throttled_frames"] += 1
                        self._warn_throttled(link, "consensus frames")
                        await trio.sleep(wait)
                    if not heeded:
                        self._counters["removed_frames"] += 1
                        continue
                    self._counters["frames_in"] += 1
                    self._counters["bytes_in"] += len(payload) + 5
                    try:
                        self._on_frame(name, payload)
                    except Exception:
                        self.log.exception("consensus frame handler failed on a frame from %s", name)
                elif kind is not FrameKind.PING:
                    raise WireError(f"unexpected {kind.name} frame on the consensus stream")
        except WireError as e:
            self._counters["wire_errors"] += 1
            self.log.warning("closing consensus stream from %s (%s): %s", name, link.peer_id, e)
        except trio.TooSlowError:
            self.log.info(
                "consensus stream from %s silent for %.1f s; closing", name, self.options["dead_after_s"]
            )
        except Exception as e:  # EOF, reset, connection lost
            self.log.debug("consensus stream from %s ended: %s: %s", name, type(e).__name__, e)
        finally:
            if link.inbound is stream:
                link.inbound = None
            await bounded(stream.reset())

    async def _handle_request_stream(self: Any, stream: INetStream) -> None:
        # A removed member's node asks too: the daemon serves it blocks up to its removal only.
        link = self._link_of_stream(stream, let_go=True)
        if link is None:
            await quietly(stream.reset())
            return
        name = link.member.name
        try:
            with trio.fail_after(self.options["dead_after_s"]):
                kind, payload = await FrameReader(stream, self.options["max_frame_size"]).read_frame()
            if kind is not FrameKind.REQUEST:
                raise WireError(f"first frame is {kind.name}, expected REQUEST")
            self._counters["requests_in"] += 1
            # Requests (catch-up, relayed txs) draw on the member's frame budget, as its frames do.
            wait = link.budget.delay(trio.current_time(), frames=1, bytes=len(payload)) if link.budget else 0
            if wait > 0:
                self._counters["throttled_frames"] += 1
                self._warn_throttled(link, "requests")
                await trio.sleep(wait)
            try:
                answer = encode_frame(FrameKind.RESPONSE, await self._on_request(name, payload))
                if len(answer) - 5 > self.options["max_frame_size"]:
                    raise ValueError(f"response of {len(answer) - 5} bytes exceeds max_frame_size")
            except Exception as e:
                self.log.exception("request handler failed on a request from %s", name)
                answer = encode_frame(FrameKind.ERROR, f"{type(e).__name__}: {e}".encode())
            await stream.write(answer)
            await stream.close()
        except WireError as e:
            self._counters["wire_errors"] += 1
            self.log.warning("closing request stream from %s (%s): %s", name, link.peer_id, e)
            await quietly(stream.reset())
        except Exception as e:
            self.log.debug("request stream from %s ended: %s: %s", name, type(e).__name__, e)
            await quietly(stream.reset())

    def _warn_throttled(self: Any, link: MemberLink, what: str) -> None:
        if link.due_throttle_warning(trio.current_time(), self.options["throttle_warn_every_s"]):
            self.log.warning(
                "rate limiting %s: it sends %s faster than its budget allows (over budget so far: %s)",
                link.member.name, what, link.budget.throttled,
            )  # fmt: skip

    def _inject_loss(self: Any, option: str) -> bool:
        if self.options[option] and random.random() < self.options[option]:
            self._counters["injected_losses"] += 1
            return True
        return False
