"""What a node shows: tx status, blocks with certificates, chain queries, status.

Mixed into ``Node``; everything here only reads the store, the mempool, the
replica and what the consensus driver has seen of the other members. The
ledger's views know state only; who signed a loan's history entry and when
its block was cut come from the block store, so they are added here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

from lendchain import codec
from lendchain.crypto import did_from_public_key
from lendchain.ledger import queries
from lendchain.ledger.block import Block
from lendchain.ledger.errors import TxRejected
from lendchain.ledger.execute import execute_txs
from lendchain.ledger.exposure import book_page
from lendchain.ledger.member_names import member_name
from lendchain.ledger.rules import rules_status
from lendchain.ledger.state import ledger_events_key, next_nonce, read_value
from lendchain.ledger.transactions import Transaction, check_stateless, decode_transaction
from lendchain.node.driver import MemberSighting, now_ms, verify_certificate
from lendchain.node.keyschedule import key_schedule

# An idle member still re-announces its head certificate at least every two view-change
# timeouts; this many such intervals without a word and it counts as silent.
SILENT_INTERVALS = 3
RAW_BLOCKS_MAX_BYTES = 8 << 20  # of block bytes per ``GET /blocks/raw`` answer, as a catch-up batch


class NodeViews:
    _removals_seen: dict[str, int] = {}  # kept by ``MemberRoles._note_removals``: none until it runs
    _peer_heights_heard = False  # a peer said how far the chain is since the start (``sync_target``)
    _observer_target = 0  # the highest head the voting members' answers named (a follower's)
    _claimed_target = 0  # the head f+1 voting members claimed when asked (``_learn_peer_heights``)
    _catch_up_asks: dict[str, MemberSighting]  # member -> its node's last request for blocks

    def check_tx(self, raw: bytes) -> dict[str, Any]:
        """What the next block would do with ``raw``: a dry run on the committed head, nothing kept.

        The tx gets the admission checks (encoding, chain, schema, signature, a
        replaced member key, a nonce another pending tx holds), then executes in a throwaway overlay at
        the current time, after this node's pending txs of the same sender that
        come before it (in nonce order, as a block takes them). ``outcome``:
        ``ok``; ``refused`` (it would be included and fail, using its nonce);
        ``left_out`` (no block can include it now: its nonce, say); ``rejected``
        (refused at the door).
        """
        head = self.store.head()
        answer: dict[str, Any] = {"id": None, "height": head.height + 1}
        try:
            tx = decode_transaction(raw)
            answer["id"] = tx.id.hex()
            self._refuse_replaced_key(tx, head.height + 1)
            check_stateless(tx, self.genesis.chain_id)
        except TxRejected as e:
            return {**answer, "outcome": "rejected", "code": e.code, "message": e.message}
        holder = self.mempool.pending_at(tx.sender, tx.nonce)
        if holder is not None and holder.tx_id != tx.id:  # what the API's admission says to it
            message = f"nonce {tx.nonce} of {tx.sender} is taken by pending tx {holder.tx_id.hex()}"
            return {**answer, "outcome": "rejected", "code": "duplicate_nonce", "message": message}
        before = self.mempool.pending_run(tx.sender, next_nonce(self.store, tx.sender), tx.nonce)
        _, execution = execute_txs(
            self.store,
            [*(pending.tx for pending in before), tx],
            height=head.height + 1,
            timestamp_ms=max(now_ms(), head.timestamp_ms + 1),
            chain_id=self.genesis.chain_id,
            strict=False,
        )
        answer["after_pending"] = len(before)
        if tx.id in execution.tx_ids:
            result = execution.results[execution.tx_ids.index(tx.id)]
            return {**answer, "outcome": "ok" if result.ok else "refused", "result": result.to_json()}
        dropped = next(d for d in execution.dropped if d.tx_id == tx.id)
        return {**answer, "outcome": "left_out", "code": dropped.code, "message": dropped.message}

    def _refuse_replaced_key(self, tx: Transaction, height: int) -> None:
        """TxRejected for a member key a rotation replaced before ``height``: it never signs again."""
        signer = self.signers.get(tx.sender)
        if signer is not None and signer.replaced_at(height):
            raise signer.replaced(tx.sender)

    def tx_status(self, tx_id: bytes) -> dict[str, Any]:
        location = self.store.tx_location(tx_id)
        if location is not None:
            height, index, result = location
            block = self.store.block(height)
            tx = decode_transaction(block.txs[index])
            return {
                "id": tx_id.hex(),
                "status": "committed",
                "height": height,
                "index": index,
                "block_hash": block.hash().hex(),
                "timestamp_ms": block.header.timestamp_ms,
                "kind": tx.kind,
                "sender": tx.sender,
                "sender_name": self._member_name(tx.sender),
                "result": result.to_json(),
            }
        if tx_id in self.mempool:
            return {"id": tx_id.hex(), "status": "pending"}
        outcome = self.mempool.recent_outcome(tx_id)
        if outcome is not None:
            return {
                "id": tx_id.hex(),
                "status": outcome.status,
                "code": outcome.code,
                "message": outcome.message,
            }
        return {"id": tx_id.hex(), "status": "unknown"}

    def _block_json(self, height: int) -> dict[str, Any] | None:
        block = self.store.block(height)
        if block is None:
            return None
        doc = block.to_json()
        # What the ledger did by itself at the start of this block (instalments falling overdue,
        # defaults, penalties): no tx carries these, so a block is the only place to show them.
        doc["ledger_events"] = read_value(self.store, ledger_events_key(height)) or []
        certificate = self.store.certificate(height)
        if certificate is not None:
            schedule = key_schedule(self.genesis, self.store)
            cert = verify_certificate(self.genesis.chain_id, schedule, certificate)
            doc["certificate"] = {
                "view": cert.view,
                "signers": cert.signers(schedule),
                "hex": certificate.hex(),
            }
        return doc

    def block(self, ref: str) -> dict[str, Any] | None:
        if ref == "head":
            return self._block_json(self.store.head().height)
        if ref.isdigit():
            return self._block_json(int(ref))
        try:
            height = self.store.height_of_hash(bytes.fromhex(ref))
        except ValueError:
            return None
        return None if height is None else self._block_json(height)

    def blocks(self, start: int, limit: int) -> list[dict[str, Any]]:
        head = self.store.head().height
        return [b for h in range(start, min(head, start + limit - 1) + 1) if (b := self._block_json(h))]

    def raw_blocks(self, start: int, limit: int, max_bytes: int = RAW_BLOCKS_MAX_BYTES) -> dict[str, Any]:
        """Committed blocks from ``start`` as their canonical bytes with their commit certificates (hex).

        What a reader that trusts no node replays (``lendchain report``): the
        JSON block view carries tx hashes, not the txs, so it cannot be
        re-executed. Up to ``limit`` blocks and about ``max_bytes`` (always
        at least one block when there is one), with the chain's genesis hash
        and head, so the reader can tell a node of another chain at once.
        """
        head = self.store.head()
        blocks, size = [], 0
        for height in range(max(start, 1), min(head.height, start + limit - 1) + 1):
            raw, certificate = self.store.block_bytes(height), self.store.certificate(height)
            if raw is None or certificate is None or (blocks and size + len(raw) > max_bytes):
                break
            blocks.append({"height": height, "block": raw.hex(), "certificate": certificate.hex()})
            size += len(raw) + len(certificate)
        return {
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash().hex(),
            "head": {"height": head.height, "hash": head.hash.hex(), "timestamp_ms": head.timestamp_ms},
            "blocks": blocks,
        }

    def commits_since(self, height: int, limit: int) -> dict[str, Any]:
        head = self.store.head().height
        out = []
        for h in range(height + 1, min(head, height + limit) + 1):
            block = self.store.block(h)
            out.append(
                {
                    "height": h,
                    "hash": block.hash().hex(),
                    "timestamp_ms": block.header.timestamp_ms,
                    "txs": [decode_transaction(raw).id.hex() for raw in block.txs],
                }
            )
        return {"head": head, "commits": out}

    def query(self, kind: str, ref: str) -> dict[str, Any] | None:
        if kind == "nonce":
            return {
                "did": ref,
                "committed_nonce": next_nonce(self.store, ref),
                "next_nonce": self._next_nonce(ref),
            }
        # A timed view (a loan's forbearance) judges as of the head block's time, the chain's "now".
        found = queries.lookup(self.store, kind, ref, as_of_ms=self.store.head().timestamp_ms)
        if kind == "loan" and found is not None:
            self._add_signers(found["history"])
        if kind == "members" and found is not None:  # a founding member's address is in the genesis
            for member in found["members"]:
                founding = self.genesis.member(member["name"])
                if founding is not None:
                    member.setdefault("address", founding.address)
        if kind == "params" and found is not None:  # the state cannot tell a default the genesis wrote
            for row in found["parameters"]:
                if row["source"] == "default" and row["name"] in self.genesis.app:
                    row["source"] = "genesis"
        return found

    def book_page(self, did: str, start: int, limit: int, written_off: bool = False) -> dict[str, Any] | None:
        # Its rows' stages are judged as of the head block's time, as the timed views' are.
        return book_page(self.store, did, start, limit, written_off, self.store.head().timestamp_ms)

    @cached_property
    def _member_names(self) -> dict[str, str]:
        """did:key → name of every genesis member, voting or observer."""
        return {m.did: m.name for m in (*self.genesis.members, *self.genesis.observers)}

    def _member_name(self, did: str) -> str | None:
        """The member ``did`` is, or signs for with a key it rotated to; None for anyone else. A member
        admitted since the genesis is named from its record (one read, as for a party's DID)."""
        signer = self.signers.get(did)
        if signer is not None:
            return signer.name
        return self._member_names.get(did) or member_name(lambda key: read_value(self.store, key), did)

    def _party(self, did: str) -> dict[str, Any]:
        return {"did": did, "name": self._member_name(did)}

    def _add_signers(self, history: list[dict[str, Any]]) -> None:
        """Give each loan history entry its block's time and who signed it.

        An entry recorded under its tx's own kind (``loan.repay`` by a
        ``loan.repay`` tx) was signed by that tx's sender. Any other entry (an
        instalment falling overdue, a policy's automatic offer) is the chain's
        own doing while it executed that tx: its ``signer`` is None, and
        ``tx_kind`` / ``tx_sender`` name the tx that set it off.
        """
        blocks: dict[int, Block | None] = {}

        def block_at(height: int) -> Block | None:
            if height not in blocks:
                blocks[height] = self.store.block(height)
            return blocks[height]

        for entry in history:
            block = block_at(entry["height"])
            tx = self._committed_tx(entry.get("tx_id"), block_at)
            entry["timestamp_ms"] = block.header.timestamp_ms if block else None
            entry["tx_kind"] = tx.kind if tx else None
            entry["tx_sender"] = self._party(tx.sender) if tx else None
            entry["signer"] = self._party(tx.sender) if tx and tx.kind == entry["event"] else None

    def _committed_tx(self, tx_id: str | None, block_at: Callable[[int], Block | None]) -> Transaction | None:
        location = self.store.tx_location(bytes.fromhex(tx_id)) if tx_id else None
        if location is None:
            return None
        height, index, _ = location
        block = block_at(height)
        return decode_transaction(block.txs[index]) if block else None

    def status(self) -> dict[str, Any]:
        head = self.store.head()
        replica = self.replica
        return {
            "name": self.config.name,
            # The member's ledger identity (its genesis key's); after a key rotation the node
            # signs with another key, whose did:key acts for the member (``key_did``).
            "did": self._member_did(),
            "key_did": did_from_public_key(self.key.public_key),
            "peer_id": self.network.peer_id,  # the libp2p identity: the key_did's key's PeerID
            "chain_id": self.genesis.chain_id,
            "role": self._role(),
            "height": head.height,
            "head_hash": head.hash.hex(),
            "state_root": head.state_root.hex(),
            "view": replica.view if replica else None,
            "primary": replica.primary if replica else None,
            "in_view_change": replica.in_view_change if replica else False,
            "stable_checkpoint": replica.stable_checkpoint if replica else None,
            "members": list(self.voters),  # who votes at the height in flight (``member.voting``)
            "peers": sorted(self.network.connected_members()),
            # Every member's node this one links to, voting or not (peers are among them).
            "consortium": self.network.member_names(),
            "member_heights": self._member_heights(head.height),
            "mempool": {"txs": len(self.mempool), "bytes": self.mempool.size_bytes},
            "rules": rules_status(self.store, head.height),
            "sync": self.sync_status(),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "backup": self.backups.newest,
            "backup_schedule": self._backup_schedule(),
        }

    def sync_target(self) -> int | None:
        """The height this node must reach to be caught up; None until a peer has said how far the chain is.

        A voting member learns it from its peers' signed consensus messages (the
        replica fetches the blocks it lacks up to a height it can prove) or their
        answers to its asking (``_learn_peer_heights``), a follower from the
        voting members' answers to its fetches. Until one of them
        has been heard since the start, a node on an older store (restored from a
        backup, or down a while) cannot tell it is behind, so it does not say it
        is caught up. A removed member's node has every block it may ever fetch.
        """
        head = self.store.head().height
        if self.config.name in self._removals_seen:
            return head
        if self.driver is not None:
            others = set(self.voters) - {self.config.name}
            if self.driver.member_sightings or not others:
                self._peer_heights_heard = True
            target = max(self.driver.sync_target, self._claimed_target)
        else:
            target = self._observer_target
        return max(target, head) if self._peer_heights_heard else None

    def sync_status(self) -> dict[str, Any]:
        """``catching_up`` (``behind`` blocks, or None while not known yet) or ``synced``."""
        head = self.store.head().height
        target = self.sync_target()
        behind = None if target is None else target - head
        return {
            "state": "synced" if behind == 0 else "catching_up",
            "target": target,
            "behind": behind,
            "blocks_per_s": self._commit_rate(),
        }

    def note_catch_up(self, member: str, request: bytes) -> None:
        """``member``'s node asked this one for blocks (``request``, a sync request): it is alive, at
        the height below the first block it asked for. Its own consensus messages say nothing while
        it catches up (a node restored from a backup has no head certificate to announce)."""
        try:
            start = int(codec.unpack(request, max_size=1024)["from"])
        except (codec.CodecError, KeyError, TypeError, ValueError):
            return
        self._catch_up_asks[member] = MemberSighting(max(start - 1, 0), time.monotonic())

    def _backup_schedule(self) -> dict[str, Any] | None:
        """``[store] backup_interval_s`` and ``backup_keep``, and when the next backup is due."""
        interval = self.config.store.backup_interval_s
        if not interval:
            return None
        next_s = self.backups.next_due_s(interval)
        return {"interval_s": interval, "keep": self.config.store.backup_keep, "next_s": round(next_s)}

    def _role(self) -> str:
        """member: votes; observer: follows; joining: not admitted as far as this node's chain shows;
        removed: its member was removed from the consortium (``member.remove``)."""
        if self.voting:
            return "member"
        if self.config.name in self._removals_seen:
            return "removed"
        return "observer" if self.config.name in self.member_keys else "joining"

    def _member_did(self) -> str:
        """The member's first key's did:key (its genesis or admission key), whatever it signs with now."""
        keys = self.member_keys.get(self.config.name)
        return did_from_public_key(keys[-1] if keys else self.key.public_key)

    def _member_heights(self, own_height: int) -> list[dict[str, Any]]:
        """Each voting member's height as its signed consensus messages named it, and its last word.

        ``height`` and ``last_seen_s`` are None for a member not heard from since this
        node started; ``silent`` is a member heard from once that then stopped.
        """
        sightings = self.driver.member_sightings if self.driver else {}
        connected = self.network.connected_members()
        silent_after_s = SILENT_INTERVALS * 2 * self.genesis.consensus.view_change_timeout_ms / 1000
        now = time.monotonic()
        rows = []
        for name in self.voters:
            is_self = name == self.config.name
            seen = MemberSighting(own_height, now) if is_self else sightings.get(name)
            # Its node asking for blocks we hold, more lately than it voted: it is catching up
            # (restored from a backup, say), at the height it asked from, and not down.
            asked = None if is_self else self._catch_up_asks.get(name)
            catching_up = (
                asked is not None
                and (seen is None or asked.seen_at > seen.seen_at)
                and asked.height < own_height
                and now - asked.seen_at <= silent_after_s
            )
            if catching_up:
                seen = asked
            last_seen_s = round(now - seen.seen_at, 1) if seen else None
            rows.append(
                {
                    "name": name,
                    "height": seen.height if seen else None,
                    "last_seen_s": last_seen_s,
                    "connected": is_self or name in connected,
                    "self": is_self,
                    "silent": last_seen_s is not None and last_seen_s > silent_after_s,
                    "catching_up": catching_up,
                }
            )
        return rows

    def _commit_rate(self, window_s: float = 10.0) -> float:
        """Blocks committed per second over the last ``window_s`` (catch-up progress)."""
        now = time.monotonic()
        recent = [t for t in self._recent_commits if now - t <= window_s]
        return round(len(recent) / window_s, 1)
