"""The deterministic application: transactions, loan state, blocks.

Importing any part of the ledger imports the domain modules below, which
register their transaction kinds (see ``kinds.py``). A new domain module
(scoring, consent, governance, ...) registers its kinds the same way and is
added here.
"""

from lendchain.ledger import loans as _loans  # noqa: F401  (registers the loan kinds)
