"""The API Lambda: HTTP API (payload v2.0) events -> Queue operations -> JSON.

Order of checks for every request: auth (401/403), raw body (413/415/400), routing
(404/405), validation (400/413), then the Queue. Nothing is written before all checks pass.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from impetus.core.config import AwsSettings
from impetus.core.exceptions import ImpetusError
from impetus.scaler import nudge
from impetus.storage import joblist, payloads
from impetus.storage.queue import Queue
from lambdas.api import auth, guards, handlers, models, owners, pages
from lambdas.api.config import ITEM_COPY_TTL, MAX_RESULTS_LIMIT, SERVICE, STAGE_PATTERN
from lambdas.api.exceptions import (
    HttpError,
    ServerError,
    StreamExists,
    from_impetus,
    raw_error_response,
    raw_response,
)
from lambdas.api.routedoc import (
    OPENAPI,
    OWNED,
    AfterQuery,
    HolderPath,
    JobIdPath,
    KeyPath,
    StreamIdPath,
    answers,
    store_key,
)

logger = Logger(service=SERVICE)

app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=guards.loads)

_queue: Queue | None = None
_openapi_json: str | None = None


def queue() -> Queue:
    """One Queue per container (created on first use, reused by warm invocations)."""
    global _queue
    if _queue is None:
        _queue = Queue(AwsSettings.from_env())
    return _queue


def reset_state() -> None:
    """Forget per-container state (Queue, cached authkey): the next call is a cold start."""
    global _queue
    _queue = None
    auth.reset_cache()


def json_response(body: Any, status: int = HTTPStatus.OK) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _own(stream_id: str) -> None:
    """The request holds the stream's key (lambdas.api.owners), or 401/403/404."""
    owners.check(queue(), stream_id, app.current_event.headers or {})


# --- streams --------------------------------------------------------------------------------
@app.get("/streams", responses=answers(models.StreamList, "all streams"))
def list_streams(after: AfterQuery = None):
    page = pages.listing(queue().list_streams(), _by_created, after)
    return {"streams": page.pop("items"), **page}


def _by_created(row: dict[str, Any]) -> list[Any]:
    return [row["created"] or 0, row["id"]]


@app.post(
    "/streams",
    responses=answers(
        models.CreatedStream,
        "the id existed, and the request carries its key",
        created="created: the answer holds the stream key, the only time it is sent",
    ),
)
def create_stream(body: Annotated[models.CreateStream, Body()]):
    q = queue()
    description, created, key = q.create_owned_stream(body.id, body.properties)
    if created:
        return json_response({**description, "stream_key": key}, HTTPStatus.CREATED)
    if not owners.holds_key(q, description["id"], app.current_event.headers or {}):
        raise StreamExists(
            f"stream {description['id']!r} exists and its key is not in this request "
            "(created by another client?)"
        )
    return json_response(description, HTTPStatus.OK)


@app.get("/streams/<stream_id>", responses=answers(models.Stream, "the stream"), security=OWNED)
def get_stream(stream_id: StreamIdPath):
    _own(stream_id)
    return queue().get_stream(stream_id)


@app.patch("/streams/<stream_id>", responses=answers(models.Stream, "the stream"), security=OWNED)
def update_stream(stream_id: StreamIdPath, body: Annotated[models.UpdateStream, Body()]):
    _own(stream_id)
    return queue().update_properties(stream_id, body.properties)


@app.delete("/streams/<stream_id>", responses=answers(models.Deleted, "deleted"), security=OWNED)
def delete_stream(stream_id: StreamIdPath):
    _own(stream_id)
    queue().delete_stream(stream_id)
    return {"deleted": stream_id}


# --- the collector lease: one client collects a stream --------------------------------------
@app.put(
    "/streams/<stream_id>/collector",
    responses=answers(models.CollectorHeld, "held"),
    security=OWNED,
)
def take_collector(stream_id: StreamIdPath, body: Annotated[models.CollectorLease, Body()]):
    _own(stream_id)
    expires = queue().take_collector(stream_id, body.holder, body.ttl)
    return {"holder": body.holder, "expires": expires}


@app.delete(
    "/streams/<stream_id>/collector/<holder>",
    responses=answers(models.Released, "released"),
    security=OWNED,
)
def release_collector(stream_id: StreamIdPath, holder: HolderPath):
    _own(stream_id)
    return {"released": queue().release_collector(stream_id, holder)}


# --- jobs and results -----------------------------------------------------------------------
@app.post(
    "/streams/<stream_id>/jobs", responses=answers(models.Enqueued, "enqueued"), security=OWNED
)
def enqueue(stream_id: StreamIdPath, body: Annotated[models.Enqueue, Body()]):
    _own(stream_id)
    jobs = [job.model_dump() for job in body.jobs]
    result = queue().enqueue(stream_id, jobs, body.functions, body.python, body.cloudpickle)
    if result.pop("idle_before") and result["accepted"]:
        nudge.nudge(stream_id)  # DFS scales from zero now, not at the next schedule
    return result


@app.get(
    "/streams/<stream_id>/jobs",
    responses=answers(models.JobSummaryList, "the jobs"),
    security=OWNED,
)
def list_jobs(
    stream_id: StreamIdPath,
    status: Annotated[
        models.ListStatus | None, Query(description="only jobs with this status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=joblist.MAX_LIMIT)] = joblist.DEFAULT_LIMIT,
    after: AfterQuery = None,
):
    _own(stream_id)
    rows, count = queue().list_jobs(stream_id, status, None)
    page = pages.listing(rows, _by_created, after, limit)
    return {"jobs": page.pop("items"), "count": count, **page}


@app.post(
    "/streams/<stream_id>/payloads",
    responses=answers(models.UploadList, "upload URLs"),
    security=OWNED,
)
def upload_urls(stream_id: StreamIdPath, body: Annotated[models.Uploads, Body()]):
    _own(stream_id)
    """Presigned PUT URLs for args too large to send inline (then: transport 's3')."""
    q = queue()
    q.get_stream(stream_id)
    refs = [payloads.new_args_key(stream_id) for _ in range(body.count)]
    return {
        "uploads": [{"ref": ref, "url": q.payloads.upload_url(ref)} for ref in refs],
        "content_type": payloads.CONTENT_TYPE,
        "expires_in": payloads.URL_SECONDS,
    }


def with_result_urls(job: dict[str, Any]) -> dict[str, Any]:
    """Results in S3 are fetched by the client itself, through a presigned GET."""
    if job.get("result_ref"):
        job["result_url"] = queue().payloads.download_url(job["result_ref"])
    return job


@app.get(
    "/streams/<stream_id>/jobs/<job_id>", responses=answers(models.Job, "the job"), security=OWNED
)
def get_job(stream_id: StreamIdPath, job_id: JobIdPath):
    _own(stream_id)
    return with_result_urls(queue().get_job(stream_id, job_id))


@app.get(
    "/streams/<stream_id>/results",
    responses=answers(models.ResultList, "finished jobs, and the ids of running ones"),
    security=OWNED,
)
def results(
    stream_id: StreamIdPath,
    stage: Annotated[str, Query(pattern=STAGE_PATTERN, description="stage name")],
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS_LIMIT)] = MAX_RESULTS_LIMIT,
):
    _own(stream_id)
    # Cut by size as well as by count: 1000 jobs of inline args, results and output are
    # far past Lambda's 6 MB answer (lambdas.api.pages); the client acknowledges this
    # page and asks again at once while ``more``.
    page = pages.Page()
    found = queue().results_page(
        stream_id, stage, limit, lambda job: page.add(with_result_urls(job))
    )
    started = pages.fitting(found.started, pages.STARTED_BUDGET)
    return {"jobs": page.items, "started": started, "more": found.more}


@app.post(
    "/streams/<stream_id>/results/ack",
    responses=answers(models.Acked, "acknowledged"),
    security=OWNED,
)
def ack(stream_id: StreamIdPath, body: Annotated[models.Ack, Body()]):
    _own(stream_id)
    return {"acked": queue().ack(stream_id, body.ids)}


@app.post(
    "/streams/<stream_id>/cancel",
    responses=answers(models.Cancelled, "what became of each job"),
    security=OWNED,
)
def cancel_jobs(stream_id: StreamIdPath, body: Annotated[models.CancelJobs, Body()]):
    # Not /jobs/cancel: that path is also GET /jobs/{job_id} with the id "cancel".
    _own(stream_id)
    if body.ids is None:  # every waiting or delayed job of the stream
        return queue().cancel_stream(stream_id)
    return queue().cancel_jobs(stream_id, body.ids)


# --- store ----------------------------------------------------------------------------------
@app.get(
    "/streams/<stream_id>/store",
    responses=answers(models.KeyList, "the store's keys"),
    security=OWNED,
)
def store_keys(stream_id: StreamIdPath, after: AfterQuery = None):
    _own(stream_id)
    page = pages.listing(queue().store_keys(stream_id), lambda key: [key], after)
    return {"keys": page.pop("items"), **page}


@app.get(
    "/streams/<stream_id>/store/<key>",
    responses=answers(models.StoreItem, "the value"),
    security=OWNED,
)
def store_get(stream_id: StreamIdPath, key: KeyPath):
    _own(stream_id)
    decoded = store_key(key)
    return {"key": decoded, "value": queue().store_get(stream_id, decoded)}


@app.put(
    "/streams/<stream_id>/store/<key>", responses=answers(models.StoreKey, "stored"), security=OWNED
)
def store_put(stream_id: StreamIdPath, key: KeyPath, body: Annotated[models.PutValue, Body()]):
    _own(stream_id)
    decoded = store_key(key)
    queue().store_put(stream_id, decoded, body.value)
    return {"key": decoded}


@app.delete(
    "/streams/<stream_id>/store/<key>", responses=answers(models.Deleted, "deleted"), security=OWNED
)
def store_delete(stream_id: StreamIdPath, key: KeyPath):
    _own(stream_id)
    decoded = store_key(key)
    queue().store_delete(stream_id, decoded)
    return {"deleted": decoded}


# --- nodes ----------------------------------------------------------------------------------
@app.get("/nodes", responses=answers(models.NodeList, "the live node agents"))
def list_nodes(after: AfterQuery = None):
    page = pages.listing(queue().list_nodes(), lambda node: [node["node"]], after)
    return {"nodes": page.pop("items"), **page}


# --- OpenAPI --------------------------------------------------------------------------------
@app.get("/openapi.json", include_in_schema=False)
def openapi():
    global _openapi_json
    if _openapi_json is None:
        _openapi_json = app.get_openapi_json_schema(**OPENAPI)
    return Response(
        status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=_openapi_json
    )


# --- errors: every one an {error, message} body (lambdas.api.handlers) ---------------------
handlers.install(app, logger)


# --- entry point ----------------------------------------------------------------------------
def _precheck(event: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(normalized event, None) when the request may proceed, else (None, refusal)."""
    try:
        auth.check(event.get("headers") or {})
        return guards.normalize_body(event), None
    except HttpError as exc:
        return None, raw_error_response(exc)
    except ImpetusError as exc:
        status, code = from_impetus(exc)
        logger.error("request refused before routing", extra={"code": code, "detail": str(exc)})
        return None, raw_response(status, code, "the API is misconfigured; see its logs")
    except Exception:
        logger.exception("unhandled error before routing")
        return None, raw_error_response(ServerError("internal error"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (API Gateway HTTP API, payload format 2.0)."""
    request = event.get("requestContext") or {}
    logger.set_correlation_id(request.get("requestId"))
    normalized, response = _precheck(event)
    if normalized is not None:
        # At most one eventually consistent read of a stream's item per request (owner
        # check, properties, state), and per container at most one a ITEM_COPY_TTL
        # (impetus.storage.itemcopies).
        with queue().streams.copies.scope(ITEM_COPY_TTL):
            response = app.resolve(normalized, context)
    logger.info(
        "request",
        extra={
            "method": guards.method_of(event),
            "path": event.get("rawPath"),
            "status": response["statusCode"],
        },
    )
    return response
