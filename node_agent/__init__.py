"""The Impetus node agent: one process per machine that runs the jobs of matching streams.

``agent`` runs the loop and wires the parts: ``dispatch`` claims jobs (vetted by
``gate``), ``pool`` hands them to ``worker`` processes (one ``handle`` each), ``claims``
tracks what is held until completed, ``heartbeat`` reports the node and renews leases,
``scaling`` is the autoscaling side (protection, drain requests, lifecycle hooks),
``drain`` stops the node. Small pure modules (``config``, ``streams``, ``sizing``,
``pacing``) need no AWS; the nodes table itself is impetus.storage.nodes.
"""
