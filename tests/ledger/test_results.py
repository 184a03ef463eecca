"""A tx result's leaf and stored form, encoded once and shared (issue 7), stay what they were."""

from hypothesis import given
from hypothesis import strategies as st

from lendchain import codec
from lendchain.ledger.state import TxResult

events = st.lists(
    st.dictionaries(
        st.sampled_from(["event", "loan_id", "amount", "did", "state", "zeta", "alpha"]),
        st.integers(0, 2**40) | st.text(max_size=70) | st.binary(max_size=40),
        max_size=6,
    ),
    max_size=20,
)


@given(
    st.binary(min_size=32, max_size=32), st.sampled_from(["ok", "not_found"]), st.text(max_size=300), events
)
def test_leaf_and_stored_form_are_the_canonical_encodings(tx_id, code, message, evs):
    result = TxResult(tx_id, code, message, tuple(evs))
    assert result.leaf() == codec.pack([tx_id, code, message, evs])
    assert result.packed == codec.pack([code, message, evs])
    assert TxResult.from_value(tx_id, codec.unpack(result.packed)) == result
    # Execution packs its results at once: the same result, the same bytes.
    executed = TxResult.executed(tx_id, code, message, tuple(evs))
    assert executed == result and "packed" in vars(executed)
    assert executed.packed == result.packed and executed.leaf() == result.leaf()


@given(st.binary(max_size=300).filter(lambda b: len(b) != 32), st.sampled_from(["ok", "not_found"]), events)
def test_a_leaf_of_an_id_of_another_length_is_the_canonical_encoding_too(tx_id, code, evs):
    """Tx ids are sha256 digests; a result built by hand with any other id still packs canonically."""
    assert TxResult(tx_id, code, "", tuple(evs)).leaf() == codec.pack([tx_id, code, "", evs])
