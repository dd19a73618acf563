"""Stream owners on the local stack (issue 15): real node agents seal the outcomes, the
client verifies them, another authkey holder can do nothing with the stream, and the
owner's program restarted with the same id resumes with its filed key."""

from __future__ import annotations

import os

import pytest
from conftest import impetus_cli

from impetus import Impetus
from impetus.api_client import ApiClient
from impetus.core.config import ClientSettings
from impetus.core.exceptions import ApiError
from impetus.session import StreamSession
from impetus.streamkeys import KeyStore, NoStreamKey

STREAM = "owned-e2e"


def as_set(i):
    return {i, -i}  # a set: kept pickled in the task files


class Owned(Impetus):
    @Impetus.startup
    def start(self):
        for i in range(6):
            self.fork(as_set, i, job_id=f"j{i}")

    @Impetus.process
    def stage1(self, ready, errors):
        pass

    @Impetus.shutdown
    def stop(self, ready, errors, progress):
        self.final = (ready["stage1"], errors["stage1"])


def _final_values(app):
    ready, errors = app.final
    assert errors == []
    return sorted((j["id"], j["args"], j["result"]) for j in ready)


def test_another_user_cannot_touch_a_stream_and_the_owner_resumes(
    local_stack, tmp_path, monkeypatch
):
    settings = local_stack["settings"]
    url, authkey = settings["api_url"], settings["authkey"]
    expected = [(f"j{i}", i, {i, -i}) for i in range(6)]
    first = Owned(taskdir=tmp_path, id=STREAM)
    first.run(keep=True)
    assert _final_values(first) == expected
    key_path = KeyStore(url).path(STREAM)
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"

    # Another user of the same deployment: the authkey, but not this stream's key.
    monkeypatch.setenv("IMPETUS_HOME", str(tmp_path / "mallory"))
    with pytest.raises(NoStreamKey, match=f"no key for stream {STREAM}"):
        StreamSession.open(url, authkey, STREAM)
    mallory = ApiClient(ClientSettings(url, authkey))
    assert STREAM in [s["id"] for s in mallory.list_streams()]  # the listing stays public
    with pytest.raises(NoStreamKey):
        mallory.results(STREAM, "stage1")
    mallory.use_stream_key(STREAM, "0" * 64)
    for attempt in (
        lambda: mallory.results(STREAM, "stage1"),
        lambda: mallory.ack(STREAM, ["j0"]),
        lambda: mallory.delete_stream(STREAM),
    ):
        with pytest.raises(ApiError) as info:
            attempt()
        assert info.value.status == 403 and info.value.code == "forbidden"
    env = dict(local_stack["env"], IMPETUS_HOME=str(tmp_path / "mallory"))
    env.update(IMPETUS_API_URL=url, IMPETUS_AUTHKEY=authkey)
    cli = impetus_cli("jobs", STREAM, env=env)
    assert cli.returncode == 1 and cli.stdout == ""
    missing = f"no key for stream {STREAM} (created by another client?)"
    assert cli.stderr == f"impetus: error: {missing}\n"

    # The owner again: the same program restarted with the id finds its key and resumes.
    monkeypatch.setenv("IMPETUS_HOME", str(local_stack["home"]))
    assert os.environ["IMPETUS_HOME"] == str(local_stack["home"])
    again = Owned(taskdir=tmp_path, id=STREAM)
    again.run()  # everything is in the task files already; then the stream is deleted
    assert _final_values(again) == expected
    assert not key_path.exists()  # deleted with its stream
