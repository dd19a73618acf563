"""The local API server's authorizer step caches like API Gateway: per identity value, for
the TTL, grants and denials alike, never a failure; and the cache stays bounded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from impetus.local.apiserver import build_event
from impetus.local.edge import EdgeAuthorizer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Authorizer:
    """Grants exactly the tokens in ``keys``; records each identity it is asked about."""

    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)
        self.asked: list[list[str]] = []
        self.answer: Any = None  # when set, returned (or raised) instead of a verdict

    def __call__(self, event: dict[str, Any]) -> Any:
        self.asked.append(event["identitySource"])
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer is not None:
            return self.answer
        return {"isAuthorized": event["headers"]["authorization"] in self.keys}


def request(header: str | None) -> dict[str, Any]:
    return build_event("GET", "/streams", [] if header is None else [("Authorization", header)])


def status(answer: Any) -> tuple[int, dict[str, Any]] | None:
    return None if answer is None else (answer[0], json.loads(answer[2]))


def test_verdicts_are_cached_per_identity_for_the_ttl() -> None:
    clock, auth = Clock(), Authorizer("good")
    edge = EdgeAuthorizer(auth, ttl=300, clock=clock)
    assert edge.refusal(request("good")) is None
    assert status(edge.refusal(request("bad"))) == (403, {"message": "Forbidden"})
    clock.now += 299
    assert edge.refusal(request("good")) is None
    assert edge.refusal(request("bad")) is not None
    assert auth.asked == [["good"], ["bad"]]  # both verdicts came from the cache

    auth.keys = {"bad"}  # the key rotates: the edge follows once the TTL runs out
    clock.now += 1
    assert status(edge.refusal(request("good"))) == (403, {"message": "Forbidden"})
    assert edge.refusal(request("bad")) is None
    assert auth.asked == [["good"], ["bad"], ["good"], ["bad"]]


def test_a_missing_or_empty_identity_is_401_without_asking() -> None:
    auth = Authorizer("good")
    edge = EdgeAuthorizer(auth)
    for header in (None, "", "   "):
        assert status(edge.refusal(request(header))) == (401, {"message": "Unauthorized"})
    assert auth.asked == []


@pytest.mark.parametrize(
    "answer",
    [
        RuntimeError("authorizer bug"),
        {"isAuthorized": "true"},  # not a boolean
        {"authorized": True},
        [True],
        True,
    ],
)
def test_a_failure_or_an_invalid_answer_is_500_and_not_cached(answer: Any) -> None:
    auth = Authorizer("good")
    auth.answer = answer
    edge = EdgeAuthorizer(auth)
    internal = (500, {"message": "Internal Server Error"})
    assert status(edge.refusal(request("good"))) == internal
    assert status(edge.refusal(request("good"))) == internal
    auth.answer = None
    assert edge.refusal(request("good")) is None
    assert len(auth.asked) == 3


def test_ttl_zero_asks_every_time() -> None:
    auth = Authorizer("good")
    edge = EdgeAuthorizer(auth, ttl=0)
    for _ in range(3):
        assert edge.refusal(request("good")) is None
    assert len(auth.asked) == 3


def test_the_cache_is_bounded_and_keeps_the_newest() -> None:
    clock, auth = Clock(), Authorizer("good")
    edge = EdgeAuthorizer(auth, ttl=300, clock=clock, max_cached=3)
    assert edge.refusal(request("good")) is None
    for junk in ("j1", "j2", "j3", "j4"):  # a flood of junk tokens
        clock.now += 1
        edge.refusal(request(junk))
    assert len(edge._cache) == 3
    asked = len(auth.asked)
    assert edge.refusal(request("j4")) is not None  # the newest is still cached
    assert len(auth.asked) == asked
    assert edge.refusal(request("good")) is None  # the oldest was dropped: asked again
    assert len(auth.asked) == asked + 1
