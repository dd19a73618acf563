"""``impetus dashboard``: a live page of streams, errors, nodes and DFS on 127.0.0.1.

:mod:`impetus.dashboard.gather` reads the API (and DFS's decision log) into one JSON
snapshot; :mod:`impetus.dashboard.server` serves it with the static page in ``static/``.
The server holds the authkey and the stream keys: the page only ever sees the snapshot.
"""
