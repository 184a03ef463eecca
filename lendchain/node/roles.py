"""A member's part in consensus, and how its node changes part at a height without a restart.

A member that votes at the height in flight runs a PBFT replica (the
``ConsensusDriver``); any other member's node follows the chain read-only: it
fetches certified blocks from the voting members and checks each commit
certificate against the members that voted at that block's height.

The ledger's ``member.voting`` governance action moves a member across from an
effective height H on (``lendchain.ledger.membership``). Its node switches after
committing H - 1:

- *promoted*: the follower stops fetching and starts a replica on its store's
  head, in the view its head block was committed in (``Replica``'s
  ``head_view``: its WAL is empty); peers send it consensus frames from the
  moment the change executed, so it hears the round at H;
- *demoted*: the replica stops, its WAL is cleared (every height it could
  have voted at is committed) and the node follows. Peers stop sending it
  consensus frames once H is the height in flight.

Consensus frames go to the members that vote at the height in flight or are
scheduled to vote later (``consensus_peers``), not to every member.

A member admitted after the genesis (``member.admit``) runs its node with
``join = true``. Until its admission executes, its peers refuse it; from the
block that admits it they link to it (``_follow_roster``) and it follows the
chain from its start, like any observer, until a ``member.voting`` change
promotes it. A member removed (``member.remove``, never while it votes) is
let go the same way, ``key_rotation_delay_blocks`` after the removal: its
links close. From the removal on, its peers dial it no more (``Network.stop_dialling``)
and only answer its node. It may still connect and fetch blocks up to the one that
removes it, and no further, even if it was down when that happened; once it
has read its removal it closes its own links (``Network.leave``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import multiaddr
import trio

from lendchain import codec
from lendchain.consensus.certificate import CertificateError, CommitCertificate
from lendchain.consensus.keys import KeySchedule
from lendchain.consensus.quorum import faulty
from lendchain.consensus.replica import Replica
from lendchain.genesis import Member
from lendchain.ledger.addresses import current_addresses
from lendchain.ledger.admission import admitted_members
from lendchain.ledger.block import Block
from lendchain.ledger.keyrotation import delay_blocks, member_signers
from lendchain.ledger.removal import cut_off
from lendchain.ledger.state import get_params
from lendchain.node.driver import ConsensusDriver, decode_sync_response, verify_certificate
from lendchain.node.keyschedule import key_schedule
from lendchain.node.network_host import listenable

OBSERVER_POLL_S = 0.5
SYNC_BATCH_BLOCKS = 64


def consensus_peers(schedule: KeySchedule, height: int) -> set[str]:
    """Who consensus frames go to at ``height`` in flight: its voters and every member voting later."""
    later = {name for name, at, voting in schedule.voting_changes() if voting and at > height}
    return {*schedule.voters_at(height), *later}


class MemberRoles:
    """The ``Node`` mixin that runs the replica or the follower, whichever this member is now."""

    genesis: Any
    config: Any
    store: Any
    log: Any
    _removals_seen: dict[str, int]  # removed member -> removal height, as of the last commit (views)
    _addresses_seen: dict[str, str] = {}  # member -> the address member.address recorded, likewise

    def _consortium_members(self: Any, key: Any) -> list[Member]:
        """Every member's node this one links to: the genesis's, admitted ones, and itself.

        A node with ``join = true`` that its store does not show admitted yet is
        listed at its configured address, so the network knows who it is; its
        peers refuse it until they execute its admission, then link to it.
        """
        gone = cut_off(self.store, self.store.head().height) - {self.config.name}
        self._addresses_seen = current_addresses(self.store)
        members = [
            member for member in self._members_on_chain(self._addresses_seen) if member.name not in gone
        ]
        if all(member.name != self.config.name for member in members):
            self.log.warning(
                "%s is not a member of %s yet: it follows the chain once the members admit it "
                "(gov propose-admit with its admission request); its peers refuse it until then",
                self.config.name,
                self.genesis.chain_id,
            )
            members.append(Member(self.config.name, key.public_key, self.config.p2p_listen, (), False))
        return members

    def _members_on_chain(self: Any, moved: dict[str, str]) -> list[Member]:
        """The genesis's members and observers, then admitted ones, at ``moved`` (``current_addresses``)."""
        return [
            replace(member, address=moved.get(member.name, member.address))
            for member in (*self.genesis.members, *self.genesis.observers, *admitted_members(self.store))
        ]

    def _remember_let_go(self: Any, schedule: KeySchedule) -> None:
        """At start: the removed members let go may still fetch the blocks up to their removal."""
        gone = cut_off(self.store, self.store.head().height) - {self.config.name}
        for member in self._members_on_chain(self._addresses_seen):
            if member.name in gone:
                self.network.let_go(member, schedule.keys_of(member.name)[::-1])

    def _follow_roster(self: Any, gone: set[str]) -> None:
        """After a commit that changed the members' keys: link to admitted members, drop let-go ones.

        ``gone``: the removed members the network no longer links to (``removal.cut_off``).
        For this node's own member, an admission must name the key it runs on; if it
        does not, its peers refuse it, which only an operator can mend.
        """
        for name in gone - {self.config.name}:
            self.network.remove_member(name)
        for member in admitted_members(self.store):
            if member.name in gone:
                continue
            if member.name != self.config.name:
                self.network.add_member(member)
            elif self.key.public_key not in self.member_keys[member.name]:
                self.log.error(
                    "%s was admitted with node key %s…, but this node runs on %s…: its peers refuse it; "
                    "start it with the admitted key",
                    member.name,
                    member.public_key.hex()[:16],
                    self.key.public_key.hex()[:16],
                )

    def _follow_addresses(self: Any) -> None:
        """After a commit: dial a member whose node moved (``member.address``) at its new address.

        When it is this node's own member, the node moves its listener there
        (``_move_listen_address``): peers dial only the new address from now on.
        """
        moved = self.app.roster.addresses
        if moved == self._addresses_seen:
            return
        for name, address in moved.items():
            if self._addresses_seen.get(name) == address:
                continue
            if name == self.config.name:
                self._move_listen_address(address)
            else:
                self.network.set_address(name, address)
        self._addresses_seen = moved

    def _move_listen_address(self: Any, address: str) -> None:
        """This member's node moved (``member.address``): peers dial only ``address`` from now on.

        Without ``[p2p] listen`` the node moves there at once if it can listen
        there (an address of this machine); else, or with an explicit
        ``listen``, the operator restarts it where it can be reached.
        """
        if self.config.p2p_listen_from_chain:
            try:
                self.network.relisten(address)
                return
            except OSError as e:
                problem = f"it cannot listen there ({e})"
        else:
            problem = f"[p2p] listen is {self.network.listen_address}"
        self.log.warning(
            "the chain now records %s as this node's address (member.address), and peers dial only "
            "that one; %s: start the node where that address reaches it",
            address,
            problem,
        )

    def _own_listen_address(self: Any) -> str:
        """Where this node listens at start: ``[p2p] listen``, else its address as the chain records it.

        The genesis's (or admission's) address, unless a ``member.address``
        change moved it. An explicit ``listen`` that differs from a moved
        address is the operator's call (a NAT, a proxy), but worth a warning.
        """
        recorded = current_addresses(self.store).get(self.config.name)
        if recorded is None or recorded == self.config.p2p_listen:
            return self.config.p2p_listen
        if self.config.p2p_listen_from_chain and listenable(multiaddr.Multiaddr(recorded)):
            self.log.info("listening on %s, the address member.address recorded for this node", recorded)
            return recorded
        self.log.warning(
            "the chain records %s as this node's address (member.address), and peers dial only that "
            "one; this node listens on %s: unless that address forwards here, set [p2p] listen to it",
            recorded,
            self.config.p2p_listen,
        )
        return self.config.p2p_listen

    def _note_removals(self: Any, removed: dict[str, int]) -> None:
        """After a commit (and at start): a removal executed (``member.remove``) changes who signs for whom.

        ``removed``: ``removed_members`` of the store. The keys of a removed member
        sign nothing from the next block on, so the views' signer map follows now,
        not when the network lets the member go. Said once, loudly, when it is this
        node's own member.
        """
        in_consortium = self.config.name in self.member_keys and self.config.name not in removed
        self.metrics.consortium_member.set(int(in_consortium))
        if removed == self._removals_seen:
            return
        self._removals_seen = removed
        for name in removed.keys() - {self.config.name}:  # its node may read its removal and leave
            self.network.stop_dialling(name)
        self.signers = member_signers(self.store)
        if self.config.name in removed:
            self.log.error(
                "%s was removed from the consortium at height %d (member.remove): no key of it signs "
                "anything from then on, and its peers let this node go %d blocks later",
                self.config.name, removed[self.config.name], delay_blocks(get_params(self.store)),
            )  # fmt: skip
            self.network.leave()  # the members serve it nothing above that block

    def _start_replica(self: Any) -> None:
        """Build the replica and its driver on the store's head (at start, or when promoted)."""
        head = self.store.head()
        wal = self.store.wal_items()
        self.replica = Replica(
            self.genesis.chain_id,
            key_schedule(self.genesis, self.store, head.height),
            self.config.name,
            self.key,
            self.app,
            self.genesis.consensus,
            head.height,
            head.hash,
            wal,
            # The replica signs each message with the key valid at its height.
            other_signing_keys=[k for k in self._signing_keys if k.public_key != self.key.public_key],
            head_view=0 if wal else self._head_view(head.height),
        )
        self.driver = ConsensusDriver(
            self.replica,
            self.app,
            self.store,
            self._send,
            self._broadcast,
            self._request,
            self.metrics,
            self.log,
            relay=self.relay.send_request,
        )
        self.driver.commit_listeners.append(self._on_commit)

    def _head_view(self: Any, height: int) -> int:
        """The view the head block was committed in (0 at genesis, or if its certificate is unreadable)."""
        certificate = self.store.certificate(height) if height else None
        try:
            return CommitCertificate.decode(certificate).view if certificate else 0
        except CertificateError as e:  # a damaged store: its checksum check names the damage
            self.log.warning(
                "the certificate of head block %d does not decode (%s): starting in view 0", height, e
            )
            return 0

    async def _run_role(self: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Vote or follow, and switch when a commit says this member's part changed."""
        started = False
        while True:
            self._role_changed = trio.Event()
            async with trio.open_nursery() as nursery:
                if self.voting:
                    if self.driver is None:
                        self._start_replica()
                    await nursery.start(self.driver.run)
                    nursery.start_soon(self.relay.run)
                else:
                    nursery.start_soon(self._follow_as_observer)
                if not started:
                    started = True
                    task_status.started()
                await self._role_changed.wait()
                nursery.cancel_scope.cancel()
            if not self.voting:
                self.replica = self.driver = None
                self._forget_votes()

    def _forget_votes(self: Any) -> None:
        """Clear the consensus WAL of a member that does not vote (demoted, or started as one).

        Nothing in it is of use again: every height it could have voted at is below the
        demotion, so committed. A later promotion starts clean, in its head block's view.
        """
        stale = self.store.wal_items()
        if stale:
            self.store.wal_write([(key, b"") for key, _ in stale])

    def _review_role(self: Any, height: int, schedule: KeySchedule) -> None:
        """After committing ``height``: who to send consensus frames to, and whether we vote next."""
        self.voters = schedule.voters_at(height + 1)
        self.metrics.voting_members.set(len(self.voters))
        peers = consensus_peers(schedule, height + 1) - {self.config.name}
        if peers != self.consensus_peers:
            self.consensus_peers = peers
            self.network.set_consensus_peers(peers)
            self.relay.voters = sorted(peers)
        voting = schedule.is_voter(self.config.name, height + 1)
        if voting != self.voting:
            self.log.warning(
                "%s %s from height %d (member.voting): %s",
                self.config.name,
                "votes" if voting else "no longer votes",
                height + 1,
                "starting the replica" if voting else "stopping the replica; following the chain",
            )
            self.voting = voting
            self.metrics.voting.set(int(voting))
            self._role_changed.set()

    async def _learn_peer_heights(self: Any) -> None:
        """After the start, ask the other voting members how far the chain is, until one answers.

        A voting member otherwise learns it from their consensus messages only,
        and an idle chain at its genesis sends none, so it could never tell that
        it is caught up (``sync_target``). The answers are claims, not proof: the
        height that f+1 of them claim (one of those is honest) is its target
        until the replica proves a higher one; the blocks it fetches it checks.
        """
        claims: dict[str, int] = {}
        while not self._peer_heights_heard and self.config.name not in self._removals_seen:
            head = self.store.head().height
            for name in sorted(set(self.voters) - {self.config.name}):
                if name not in self.network.reachable_members():
                    continue
                try:  # an empty range: only the peer's head comes back
                    answer = await self._request(name, codec.pack({"from": head + 1, "to": head}), 2.0)
                    claims[name], _ = decode_sync_response(answer)
                except Exception as e:  # not up yet, cut off, or an answer that is no sync answer
                    self.log.debug("asking %s how far the chain is failed: %s", name, e)
            if claims:
                ranked = sorted(claims.values(), reverse=True)
                f = faulty(len(self.voters))
                self._claimed_target = ranked[f] if len(ranked) > f else head
                self._peer_heights_heard = True
                return
            await trio.sleep(OBSERVER_POLL_S)

    async def _follow_as_observer(self: Any) -> None:
        """Read-only follower: fetch certified blocks from a voting member and apply them."""
        while True:
            head = self.store.head()
            progressed = False
            for name in sorted(self.consensus_peers):
                if name not in self.network.reachable_members():  # a removed member's link is never up
                    continue
                try:
                    payload = codec.pack({"from": head.height + 1, "to": head.height + SYNC_BATCH_BLOCKS})
                    target, blocks = decode_sync_response(await self._request(name, payload, 10.0))
                except Exception as e:
                    self.log.warning("observer sync from %s failed: %s", name, e)
                    continue
                self._observer_target = max(self._observer_target, target)
                self._peer_heights_heard = True
                for height, block, certificate in blocks:
                    if height != self.store.head().height + 1 or self._role_changed.is_set():
                        break
                    try:
                        schedule = key_schedule(self.genesis, self.store)
                        cert = verify_certificate(self.genesis.chain_id, schedule, certificate)
                    except ValueError as e:
                        self.log.warning(
                            "member %s served block %d with a bad certificate: %s", name, height, e
                        )
                        break
                    if cert.height != height or cert.digest != Block.decode(block).hash():
                        self.log.warning(
                            "member %s served block %d that its certificate does not cover", name, height
                        )
                        break
                    self.app.commit(height, block, cert.digest, certificate)
                    self._on_commit(height)
                    progressed = True
                break
            if not progressed:
                await trio.sleep(OBSERVER_POLL_S)
