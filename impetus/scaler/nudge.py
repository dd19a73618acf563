"""The API's nudge: invoke the DFS Lambda asynchronously when a stream goes from empty
to non-empty, so the first due job does not wait for the 1-minute schedule.

Best effort by design: a failed nudge is logged and the request succeeds anyway (the
schedule is the backstop). Without ``IMPETUS_DFS_FUNCTION`` (the local stack, whose
ticker runs every second or two) there is nothing to nudge.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from impetus.core import aws
from impetus.core.config import ENV_DFS_FUNCTION

log = logging.getLogger(__name__)

_lambda: Any = None


def nudge(stream_id: str, client: Any = None) -> bool:
    """Invoke DFS with InvocationType=Event; True if the invoke was accepted."""
    function = os.environ.get(ENV_DFS_FUNCTION)
    if not function:
        return False
    global _lambda
    try:
        if client is None:
            _lambda = _lambda or aws.client("lambda")
            client = _lambda
        client.invoke(
            FunctionName=function,
            InvocationType="Event",
            Payload=json.dumps({"source": "impetus.nudge", "stream": stream_id}).encode(),
        )
    except Exception as exc:
        log.warning("nudging DFS (%s) failed: %s", function, exc)
        return False
    return True
