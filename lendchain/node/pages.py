"""The most a page of each paged API route holds (``?limit=``), and the highest height a route takes.

A module of its own, with no imports, so that the CLI refuses an out-of-range ``--limit`` or
``--from`` itself, naming its option, without importing the API (Starlette costs the CLI's
start-up about 64 ms): ``node.api`` checks the same numbers in the routes. A book page's limit
is the ledger's (``ledger.exposure.BOOK_PAGE_MAX``: a read per position).
"""

BLOCKS_PAGE_MAX = 500  # block views (``GET /blocks``)
RAW_BLOCKS_PAGE_MAX = 1000  # raw blocks with their certificates (``GET /blocks/raw``)
COMMITS_PAGE_MAX = 1000  # committed blocks' tx ids (``GET /commits``)
HEIGHT_MAX = 2**62  # the highest block height a route takes (a store key holds 8 bytes)
