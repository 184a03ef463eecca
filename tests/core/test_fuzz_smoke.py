"""A short budget of the decoder fuzzer (the long run: ``python -m lendchain.fuzz --inputs 1000000``)."""

from __future__ import annotations

from lendchain.fuzz.__main__ import fuzz


def test_every_decoder_rejects_mutated_input_cleanly():
    report = fuzz(inputs=800, seed=20261123, only=None, slow_ms=2000, quiet=True)
    assert set(report) >= {
        "codec.unpack",
        "transaction",
        "block",
        "consensus message",
        "wire frames",
        "node config",
    }
    for name, row in report.items():
        assert row["inputs"] == 800, name
        assert row["clean_rejections"] > 0, name  # mutation does break inputs: the fuzzer is not a no-op
