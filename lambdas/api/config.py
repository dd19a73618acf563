"""The API Lambda's limits and names, in one place.

Limits protect DynamoDB (400 KB items, 1024-byte sort keys, 32 nesting levels) and the
Lambda payload limit; the API enforces them *before* the first write, so a refused
request changes nothing.
"""

from __future__ import annotations

from impetus.core import jobs, keys
from impetus.storage import payloads, streams

SERVICE = "impetus-api"

# Lambda's synchronous invocation payload limit; API Gateway refuses larger bodies anyway.
MAX_BODY_BYTES = 6 * 1024 * 1024

# Identifier rules and record limits are the Queue's own (impetus.core.keys, impetus.core.jobs,
# impetus.storage.streams); the API checks them up front so a refused request writes nothing.
# Larger payloads travel through S3 (impetus.storage.payloads); inline ones above this get a 413.
MAX_PAYLOAD_BYTES = jobs.MAX_PAYLOAD_BYTES
MAX_PROPERTIES_BYTES = streams.MAX_PROPERTIES_BYTES
MAX_JSON_DEPTH = 30  # DynamoDB allows 32 levels of nested maps/lists
# DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 9.99E+125 (properties are
# stored as native maps, so their numbers must fit).
MAX_NUMBER_DIGITS = 38
MAX_NUMBER_MAGNITUDE = 9.99e125
MIN_NUMBER_MAGNITUDE = 1e-130

STREAM_ID_PATTERN = keys.STREAM_ID.pattern
STAGE_PATTERN = keys.STAGE.pattern
JOB_ID_PATTERN = keys.JOB_ID.pattern
DIGEST_PATTERN = r"^[0-9a-f]{64}$"  # sha256 hex of the encoded code (impetus.core.codec.digest)
PYTHON_PATTERN = r"^3\.[0-9]{1,2}$"
CLOUDPICKLE_PATTERN = r"^[0-9]+(\.[0-9]+){1,3}([a-z]+[0-9]*)?$"  # a release, e.g. 3.1.3
MAX_NAME_CHARS = jobs.MAX_NAME_CHARS

MAX_REF_CHARS = 300
MAX_UPLOADS_PER_REQUEST = payloads.MAX_UPLOADS_PER_REQUEST

MAX_JOBS_PER_BATCH = 1000
MAX_ACK_IDS = 1000
MAX_RESULTS_LIMIT = 1000
MAX_PRIORITY = keys.PRIORITY_MAX
MAX_DELAY_SECONDS = jobs.MAX_DELAY_SECONDS

# How long a fetched authkey is trusted before Secrets Manager is asked again (rotation).
AUTHKEY_MAX_AGE_SECONDS = 300

# Seconds a warm container reuses its copy of a stream's item (impetus.storage.itemcopies):
# at most one read of a busy stream's item per container and second, whatever the rate of
# requests; about as stale as an eventually consistent read.
ITEM_COPY_TTL = 1.0
