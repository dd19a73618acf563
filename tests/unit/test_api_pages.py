"""Page cutting (lambdas.api.pages): sizes as Lambda counts them, budgets, cursors."""

from __future__ import annotations

import json

import pytest

from lambdas.api import pages
from lambdas.api.exceptions import BadRequest


@pytest.mark.parametrize(
    "value",
    [{"a": 'quo"te', "b": "back\\slash", "c": "é ☃ 😀", "d": "\x01\n"}, ["x" * 100], 12.5, None],
)
def test_encoded_size_is_the_bytes_in_lambdas_payload(value):
    """What the item adds to the runtime's JSON of {"body": <the resolver's JSON>}."""
    body = json.dumps(value, separators=(",", ":"))
    outer = json.dumps({"body": body}, ensure_ascii=False).encode()
    empty = json.dumps({"body": ""}).encode()
    assert pages.encoded_size(value) == len(outer) - len(empty)


def test_a_page_takes_items_while_they_fit_and_always_one():
    page = pages.Page(budget=100)
    assert page.add("x" * 500)  # the first always goes, however large
    assert not page.add("y") and page.more
    page = pages.Page(budget=100)
    taken = [page.add("z" * 10) for _ in range(20)]
    assert taken.count(True) == len(page.items) and 0 < len(page.items) < 20
    assert page.used <= 100 and page.more


def test_fitting_keeps_the_prefix_that_fits():
    ids = [f"{n:032x}" for n in range(100)]
    kept = pages.fitting(ids, 400)
    assert kept == ids[: len(kept)] and pages.encoded_size(kept) <= 400
    assert pages.encoded_size(ids[: len(kept) + 1]) > 400
    assert pages.fitting(ids, 10) == []


def test_listing_pages_through_every_item_once():
    items = [{"id": f"i{n:03d}", "pad": "p" * n} for n in range(200)]
    seen, after, answers = [], None, 0
    while True:
        page = pages.listing(reversed(items), lambda i: [i["id"]], after, budget=3000)
        answers += 1
        assert pages.encoded_size(page["items"]) <= 3000 or len(page["items"]) == 1
        seen += page["items"]
        if not page["more"]:
            assert "next" not in page
            break
        after = page["next"]
    assert seen == items and answers > 5


def test_listing_honours_limit_with_a_cursor():
    page = pages.listing(range(10), lambda i: [i], None, limit=3)
    assert page["items"] == [0, 1, 2] and page["more"]
    assert pages.listing(range(10), lambda i: [i], page["next"], limit=3)["items"] == [3, 4, 5]


@pytest.mark.parametrize("cursor", ["not base64!", "e30", "W3siYSI6MX1d", "x" * 5000, "Wzld"])
def test_a_foreign_cursor_is_a_400(cursor):
    """Not base64, not a list ({}), a list of objects, too long, a key of another shape."""
    with pytest.raises(BadRequest):
        pages.listing([["a", 1]], lambda i: ["s", "t"], cursor)


def test_one_job_at_its_limits_fits_a_page_with_room():
    """The largest job an answer can carry: inline args (256 KB of codec text), an inline
    result (350 KB), a spilled item's worth of output in its worst escaping (every byte
    a control character: 7 bytes each in the payload) and a presigned URL. Well under
    Lambda's 6 MB, so "at least one job per page" never breaks the limit."""
    from impetus.storage import payloads

    output_item = 400 * 1024  # DynamoDB's item limit bounds the output item
    job = {
        "id": "j" * 128,
        "args": "A" * payloads.INLINE_ARGS_LIMIT,
        "result": "B" * payloads.INLINE_RESULT_LIMIT,
        "output": {"stdout": "\x01" * output_item},
        "result_url": "https://example.com/" + "u" * 2048,
        "name": "n" * 200,
    }
    size = pages.encoded_size(job)
    assert size < pages.LAMBDA_PAYLOAD_LIMIT - pages.STARTED_BUDGET - 64 * 1024
