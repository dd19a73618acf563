"""The gate a claimed job passes before any worker sees it.

The agent checks, without unpickling anything, that the job is what the API signed
(impetus.core.signing) and that this node's Python and cloudpickle can load it. A job that
fails becomes a final error record (``signature: ...``, ``python: ...``,
``cloudpickle: ...``) and never reaches a worker. The signing key stays in the agent
process: workers run user code and never hold it.

For args that travel through S3, the signature covers the object's reference and the
digest of its bytes; the worker that downloads them checks that digest before loading.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from impetus.core import codec, jobs
from impetus.core.claims import ClaimedJob
from impetus.core.jobs import Outcome
from impetus.core.signing import Envelope, SigningKey, sha256_hex


def _refuse(job: ClaimedJob, kind: str, message: str) -> Outcome:
    now = time.time()
    return Outcome(
        jobs.ERROR, error=jobs.system_error(kind, message, job.name), started=now, finished=now
    )


class JobGate:
    def __init__(self, signer: Callable[[], SigningKey]) -> None:
        self.signer = signer

    def check(self, job: ClaimedJob) -> Outcome | None:
        """None when ``job`` may run; else the error outcome to record instead.

        Raises :class:`impetus.core.signing.KeyUnavailable` when the key version the job's
        signature names cannot be read now: the agent gives the claim back."""
        if job.python != codec.PYTHON_VERSION:
            return _refuse(
                job, "python", f"job from Python {job.python}, node runs {codec.PYTHON_VERSION}"
            )
        if job.cloudpickle != codec.CLOUDPICKLE_VERSION:
            return _refuse(
                job,
                "cloudpickle",
                f"job pickled with cloudpickle {job.cloudpickle or '(unknown)'}, node runs "
                f"{codec.CLOUDPICKLE_VERSION}; install the lock's version on the client",
            )
        if not job.code or codec.digest(job.code) != job.code_digest:
            return _refuse(job, "signature", "the job's code does not match its digest")
        # S3 args: the signed digest of the object's bytes, checked by the worker that
        # downloads them; inline args: hashed here.
        args_digest = job.args_digest if job.transport == "s3" else sha256_hex(job.args)
        record = {
            "stream": job.stream,
            "job": job.id,
            "name": job.name,
            "stage": job.stage,
            "code": job.code_digest,
            "args_ref": job.args_ref,
            "python": job.python,
            "cloudpickle": job.cloudpickle,
            "retries": job.retries,
            "max_attempts": job.max_attempts,
            "time_limit": job.time_limit,
        }
        envelope = Envelope.of_record(record, args_digest=args_digest)
        if not self.signer().verify(envelope, job.signature):
            return _refuse(job, "signature", "missing or invalid; the job was not run")
        job.verified = True  # the outcome's MAC may vouch for these args now
        return None
