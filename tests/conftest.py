"""Shared test configuration."""

import os

# Before lendchain is imported, and inherited by every node process a test starts: each
# codec.pack_trusted also packs with the strict codec.pack and refuses a difference (a float).
os.environ["LENDCHAIN_CHECK_TRUSTED_PACK"] = "1"

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
