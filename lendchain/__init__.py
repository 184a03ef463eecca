"""lendchain: an open consortium ledger for lending."""

__version__ = "0.1.0"
