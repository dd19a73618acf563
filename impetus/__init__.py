"""Impetus: auto-scaling distributed processing for Python on AWS.

``from impetus import Impetus`` is the client programming model (see impetus.client);
``from impetus import Executor`` is the ``concurrent.futures`` face of the same client.
"""

from impetus.client import Impetus
from impetus.executor import Executor

__all__ = ["Executor", "Impetus"]
