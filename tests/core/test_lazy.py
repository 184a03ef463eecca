"""lazy_attribute: computed on the first read only, kept on the instance, fine on frozen dataclasses."""

from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from lendchain.lazy import lazy_attribute
from lendchain.ledger.state import TxResult


@dataclass(frozen=True)
class Doubled:
    number: int
    computed: list[int] = field(compare=False)

    @lazy_attribute
    def double(self) -> int:
        """Twice the number."""
        self.computed.append(self.number)
        return 2 * self.number


def test_the_value_is_computed_on_the_first_read_only_and_kept_per_instance():
    calls: list[int] = []
    first, second = Doubled(3, calls), Doubled(5, calls)
    assert calls == []
    assert (first.double, first.double, second.double, first.double) == (6, 6, 10, 6)
    assert calls == [3, 5]
    assert first.__dict__["double"] == 6


def test_a_frozen_instance_stays_frozen_and_equality_ignores_the_kept_value():
    kept, fresh = Doubled(4, []), Doubled(4, [])
    assert kept.double == 8
    assert kept == fresh
    with pytest.raises(FrozenInstanceError):
        kept.double = 9  # type: ignore[misc]


def test_read_on_the_class_it_is_the_descriptor_with_the_method_s_name_and_doc():
    assert isinstance(Doubled.double, lazy_attribute)
    assert Doubled.double.name == "double"
    assert Doubled.double.__doc__ == "Twice the number."


def test_a_tx_result_packs_once_and_its_leaf_and_stored_bytes_share_the_packing():
    result = TxResult(bytes(range(32)), "ok", "", ({"event": "party.registered", "role": "borrower"},))
    packed = result.packed
    assert result.packed is packed
    assert result.leaf() == b"\x94\xc4\x20" + bytes(range(32)) + packed[1:]
