"""The API Lambda's limits and names, in one place.

Limits protect DynamoDB (400 KB items, 1024-byte sort keys, 32 nesting levels) and the
Lambda payload limit; the API enforces them *before* the first write, so a refused
request changes nothing.
"""

from __future__ import annotations

SERVICE = "impetus-api"

# Lambda's synchronous invocation payload limit; API Gateway refuses larger bodies anyway.
MAX_BODY_BYTES = 6 * 1024 * 1024

# Payloads that travel inside one DynamoDB item (400 KB) with room for the item's fields.
# Larger payloads (through S3) are a later issue: refused with 413 for now.
MAX_PAYLOAD_BYTES = 350 * 1024
MAX_PROPERTIES_BYTES = 64 * 1024  # as impetus.streams
MAX_JSON_DEPTH = 30  # DynamoDB allows 32 levels of nested maps/lists
# DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 9.99E+125 (properties are
# stored as native maps, so their numbers must fit).
MAX_NUMBER_DIGITS = 38
MAX_NUMBER_MAGNITUDE = 9.99e125
MIN_NUMBER_MAGNITUDE = 1e-130

STREAM_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
STAGE_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
DIGEST_PATTERN = r"^[0-9a-f]{64}$"  # sha256 hex of the encoded code (impetus.codec.digest)
PYTHON_PATTERN = r"^3\.[0-9]{1,2}$"
MAX_KEY_CHARS = 512
MAX_KEY_BYTES = 1024  # DynamoDB sort key limit (UTF-8)
MAX_NAME_CHARS = 200

MAX_JOBS_PER_BATCH = 1000
MAX_ACK_IDS = 1000
MAX_RESULTS_LIMIT = 1000
MAX_PRIORITY = 1_000_000_000
MAX_DELAY_SECONDS = 86400 * 14

# How long a fetched authkey is trusted before Secrets Manager is asked again (rotation).
AUTHKEY_MAX_AGE_SECONDS = 300
