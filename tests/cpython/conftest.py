"""CPython's test file is run through adapter.py only (see README.md)."""

collect_ignore = ["test_concurrent_futures.py"]
