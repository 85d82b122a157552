"""The registry's backing stores: one interface (`Store`), two implementations.

`open_store(url)` picks the implementation from the URL: `sqlite:///path` (the
embedded default, one file in the data dir) or `redis://host:port/db` (state
shared by several nodes). Both pass the same contract tests.
"""
