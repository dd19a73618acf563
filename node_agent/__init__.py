"""The Impetus node agent: one process per machine that runs the jobs of matching streams.

``agent`` claims jobs and hands them to ``worker`` processes; the rest are small pure
modules (settings, stream tracking, pool and batch sizing) that need no AWS.
"""
