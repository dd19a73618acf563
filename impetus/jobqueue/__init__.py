"""The job queue of a stream on DynamoDB (see impetus.jobqueue.queue for the design)."""

from impetus.jobqueue.queue import JobQueue

__all__ = ["JobQueue"]
