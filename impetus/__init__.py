"""Impetus: auto-scaling distributed processing for Python on AWS.

``from impetus import Impetus`` is the client programming model (see impetus.client).
"""

from impetus.client import Impetus

__all__ = ["Impetus"]
