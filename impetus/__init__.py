"""Impetus: auto-scaling distributed processing for Python on AWS.

``from impetus import Impetus`` is the client programming model (see impetus.client);
``from impetus import Executor`` is the ``concurrent.futures`` face of the same client;
``impetus.context`` tells a running job its stream, its id and its stream's store
(see impetus.jobcontext).
"""

from impetus.client import Impetus
from impetus.executor import Executor
from impetus.jobcontext import context

__all__ = ["Executor", "Impetus", "context"]
