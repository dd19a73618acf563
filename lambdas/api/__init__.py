"""The API Lambda: HTTP API (payload v2.0) routes onto :class:`impetus.storage.queue.Queue`."""
