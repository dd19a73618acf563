"""The job queue of a stream on DynamoDB (see impetus.storage.jobqueue.queue for the design)."""

from impetus.storage.jobqueue.queue import JobQueue

__all__ = ["JobQueue"]
