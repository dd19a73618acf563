"""Signed envelopes and the node's gate: only what the API signed reaches a worker."""

from __future__ import annotations

import dataclasses

import pytest

from impetus.core import codec, streamauth
from impetus.core.claims import ClaimedJob
from impetus.core.exceptions import ConfigError
from impetus.core.signing import (
    MAX_FETCHES_PER_MINUTE,
    Envelope,
    KeyLoader,
    Keyring,
    KeyUnavailable,
    Signer,
    UnknownVersion,
    sha256_hex,
)
from node_agent.gate import JobGate

KEY = b"k" * 32


def envelope(**changes):
    base = Envelope(
        stream="s",
        job="j1",
        name="fn",
        stage="stage1",
        code_digest="c" * 64,
        args_digest="a" * 64,
        args_ref="",
        python="3.11",
        cloudpickle="3.1.3",
        retries=0,
        max_attempts=3,
    )
    return dataclasses.replace(base, **changes)


def test_a_signature_verifies_and_any_change_breaks_it():
    signer = Signer(KEY)
    signature = signer.sign(envelope())
    assert signer.verify(envelope(), signature)
    for field, value in [
        ("stream", "t"),
        ("job", "j2"),
        ("name", "evil"),
        ("stage", "stage2"),
        ("code_digest", "d" * 64),
        ("args_digest", "b" * 64),
        ("args_ref", "payloads/s/x"),
        ("python", "3.12"),
        ("retries", 1),
        ("max_attempts", 100),
        ("time_limit", 5.0),
    ]:
        assert not signer.verify(envelope(**{field: value}), signature), field
    assert not Signer(b"other-key-0123456789").verify(envelope(), signature)
    assert not signer.verify(envelope(), None)


def test_a_time_limit_is_signed_and_jobs_signed_before_it_existed_still_verify():
    signer = Signer(KEY)
    limited = signer.sign(envelope(time_limit=5.0))
    assert signer.verify(envelope(time_limit=5), limited)  # an int from DynamoDB: same
    assert not signer.verify(envelope(time_limit=50.0), limited)
    assert not signer.verify(envelope(), limited)
    assert b"time_limit" not in envelope().canonical()  # the canonical form older jobs had


def test_short_keys_are_refused_and_the_key_never_shows():
    with pytest.raises(ConfigError):
        Signer(b"short")
    assert "k" * 16 not in repr(Signer(KEY))


def test_key_loader_reads_the_secret_once(aws):
    import boto3

    from impetus.core.config import AwsSettings

    settings = AwsSettings()
    sm = boto3.client("secretsmanager", region_name=settings.region)
    sm.create_secret(Name=settings.signing_secret, SecretString="from-secrets-manager-0123")
    loader = KeyLoader(settings)
    signer = loader.signer()
    sm.put_secret_value(SecretId=settings.signing_secret, SecretString="rotated-later-0123456")
    assert loader.signer() is signer
    assert signer.verify(envelope(), Signer(b"from-secrets-manager-0123").sign(envelope()))


def test_key_loader_without_secret_is_a_config_error(aws):
    from impetus.core.config import AwsSettings

    with pytest.raises(ConfigError, match="signing key"):
        KeyLoader(AwsSettings()).signer()


# --- rotation ---------------------------------------------------------------------------------
V1, V2 = "a" * 32, "b" * 32


class Secret:
    """A versioned secret, as Secrets Manager keeps one; counts fetches."""

    def __init__(self) -> None:
        self.versions = {V1: b"first-key-0123456789"}
        self.current = V1
        self.fetched: list[str | None] = []

    def rotate(self, version: str, key: bytes) -> None:
        self.versions[version], self.current = key, version

    def fetch(self, version: str | None) -> tuple[str, bytes]:
        self.fetched.append(version)
        version = version or self.current
        if version not in self.versions:
            raise UnknownVersion(version)
        return version, self.versions[version]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_signatures_name_their_key_version_and_survive_a_rotation():
    secret, clock = Secret(), Clock()
    api = Keyring(secret.fetch, refresh=300, clock=clock)
    node = Keyring(secret.fetch, refresh=300, clock=clock)
    before = api.sign(envelope())
    assert before.startswith(f"v2:{V1}:")
    secret.rotate(V2, b"second-key-0123456789")
    assert api.sign(envelope()).startswith(f"v2:{V1}:")  # until the API looks again
    clock.now = 301
    after = api.sign(envelope())
    assert after.startswith(f"v2:{V2}:")
    assert node.verify(envelope(), after)  # the node fetched V2 by its id...
    assert node.verify(envelope(), before)  # ...and still knows V1
    assert secret.fetched.count(V2) == 1
    assert node.verify(envelope(), after) and secret.fetched.count(V2) == 1  # kept
    assert not node.verify(envelope(job="j2"), after)


def test_legacy_unnamed_signatures_verify_with_the_current_key():
    secret = Secret()
    keyring = Keyring(secret.fetch)
    assert keyring.verify(envelope(), Signer(secret.versions[V1]).sign(envelope()))
    assert not keyring.verify(envelope(), Signer(b"other-key-0123456789").sign(envelope()))


def test_made_up_versions_cannot_flood_the_secret_store():
    secret, clock = Secret(), Clock()
    node = Keyring(secret.fetch, clock=clock)
    mac = Signer(b"forged-key-0123456789").sign(envelope())
    for bad in ("x", "../../etc", "a" * 65, "", "a" * 31):  # not a version id: no fetch
        assert not node.verify(envelope(), f"v2:{bad}:{mac}")
    assert secret.fetched == [None]
    forged = "f" * 32
    assert not node.verify(envelope(), f"v2:{forged}:{mac}")
    assert not node.verify(envelope(), f"v2:{forged}:{mac}")  # remembered as missing
    assert secret.fetched.count(forged) == 1
    for i in range(MAX_FETCHES_PER_MINUTE - 1):
        assert not node.verify(envelope(), f"v2:{i:032d}:{mac}")
    with pytest.raises(KeyUnavailable):  # budget spent: no verdict (the job waits)
        node.verify(envelope(), f"v2:{'9' * 32}:{mac}")
    assert len(secret.fetched) == 1 + MAX_FETCHES_PER_MINUTE  # the last was not asked
    clock.now = 61
    secret.rotate(V2, b"second-key-0123456789")
    good = Keyring(secret.fetch, clock=clock).sign(envelope())
    assert node.verify(envelope(), good)  # a new minute: a real new version gets through


def test_an_unreachable_secret_store_gives_no_verdict_rather_than_a_refusal():
    secret, clock = Secret(), Clock()
    node = Keyring(secret.fetch, clock=clock)
    secret.rotate(V2, b"second-key-0123456789")
    signed = Keyring(secret.fetch, clock=clock).sign(envelope())

    def outage(version):
        raise ConnectionError("secrets manager unreachable")

    node._fetch = outage
    with pytest.raises(KeyUnavailable):
        node.verify(envelope(), signed)
    node._fetch = secret.fetch  # back: the same job verifies
    assert node.verify(envelope(), signed)


def test_rotation_through_secrets_manager(aws):
    import boto3

    from impetus.core.config import AwsSettings

    settings = AwsSettings()
    sm = boto3.client("secretsmanager", region_name=settings.region)
    sm.create_secret(Name=settings.signing_secret, SecretString="from-secrets-manager-0123")
    api, node = KeyLoader(settings).signer(), KeyLoader(settings).signer()
    old = api.sign(envelope())
    sm.put_secret_value(SecretId=settings.signing_secret, SecretString="rotated-later-0123456")
    new = KeyLoader(settings).signer().sign(envelope())  # an API instance started since
    assert old.split(":")[1] != new.split(":")[1]
    assert node.verify(envelope(), old) and node.verify(envelope(), new)
    assert not node.verify(envelope(), f"v2:{'0' * 36}:{new.split(':')[2]}")  # no such version


# --- the gate ---------------------------------------------------------------------------------
def _double(x):
    return 2 * x


CODE = codec.dump_function(_double)


def signed_job(**changes) -> ClaimedJob:
    job = ClaimedJob(
        id="j1",
        index=0,
        name="_double",
        code=CODE,
        code_digest=codec.digest(CODE),
        args=codec.dumps(21),
        python=codec.PYTHON_VERSION,
        cloudpickle=codec.CLOUDPICKLE_VERSION,
        stage="stage1",
        attempt=0,
        stream="s",
        retries=1,
        max_attempts=3,
    )
    job.signature = Signer(KEY).sign(
        Envelope(
            stream="s",
            job="j1",
            name="_double",
            stage="stage1",
            code_digest=job.code_digest,
            args_digest=sha256_hex(job.args),
            args_ref="",
            python=job.python,
            cloudpickle=job.cloudpickle,
            retries=1,
            max_attempts=3,
        )
    )
    return dataclasses.replace(job, **changes)


GATE = JobGate(lambda: Signer(KEY))


def test_python_mismatch_is_an_error_naming_both_and_nothing_is_unpickled():
    # code and args that would raise if anything tried to decode them
    job = signed_job(python="2.7", code="not a pickle at all", args="not a pickle either")
    refused = GATE.check(job)
    assert refused is not None and refused.status == "error"
    assert (
        refused.error["error"] == f"python: job from Python 2.7, node runs {codec.PYTHON_VERSION}"
    )
    assert refused.error["type"] == "python"


def test_cloudpickle_mismatch_is_an_error_and_nothing_is_unpickled():
    # Signed as written by a client with another cloudpickle: a true record, refused
    # before anything is loaded (pickles of one cloudpickle need not load in another).
    job = signed_job(code="not a pickle at all", args="not a pickle either")
    job = dataclasses.replace(job, cloudpickle="2.2.1")
    refused = GATE.check(job)
    assert refused is not None and refused.error["type"] == "cloudpickle"
    assert "cloudpickle 2.2.1" in refused.error["error"]
    assert codec.CLOUDPICKLE_VERSION in refused.error["error"]


def test_the_cloudpickle_version_is_signed():
    # Signed for a client with cloudpickle 2.2.1, then the record's field rewritten to the
    # node's version to slip past the version check: the signature no longer matches.
    job = signed_job()
    fields = dict(
        stream="s", job="j1", name="_double", stage="stage1", code_digest=job.code_digest,
        args_digest=sha256_hex(job.args), args_ref="", python=job.python, retries=1,
        max_attempts=3,
    )  # fmt: skip
    old_signature = Signer(KEY).sign(Envelope(**fields, cloudpickle="2.2.1"))
    refused = GATE.check(dataclasses.replace(job, signature=old_signature))
    assert refused is not None and refused.error["type"] == "signature"


def test_gate_admits_a_signed_job():
    assert GATE.check(signed_job()) is None


@pytest.mark.parametrize(
    "changes, kind",
    [
        ({"args": codec.dumps(666)}, "signature"),
        ({"code": codec.dump_function(print)}, "signature"),
        ({"retries": 50}, "signature"),
        ({"signature": ""}, "signature"),
        ({"python": "2.7"}, "python"),
    ],
)
def test_gate_refuses_altered_jobs_with_an_error_record(changes, kind):
    refused = GATE.check(signed_job(**changes))
    assert refused is not None and refused.status == "error"
    assert refused.error["type"] == kind and refused.error["error"].startswith(f"{kind}: ")
    assert refused.failure == ""  # final: never retried


def test_stream_keys_name_their_version_and_survive_a_rotation():
    """A stream key is drawn under the current version and recomputed with the version
    its stream item names, so rotating the signing key does not lock owners out."""
    secret, clock = Secret(), Clock()
    api = Keyring(secret.fetch, refresh=300, clock=clock)
    version, key = streamauth.derive_stream_key(api, "s", "nonce-1", None)
    assert version == V1
    secret.rotate(V2, b"second-key-0123456789")
    clock.now = 301
    assert streamauth.derive_stream_key(api, "s", "nonce-1", V1) == (V1, key)
    assert streamauth.derive_stream_key(api, "s", "nonce-1", None)[1] != key  # V2's
    assert streamauth.derive_stream_key(api, "s", "nonce-2", V1)[1] != key  # a new nonce
    assert streamauth.derive_stream_key(api, "t", "nonce-1", V1)[1] != key  # another id
    with pytest.raises(UnknownVersion):
        streamauth.derive_stream_key(api, "s", "nonce-1", "f" * 36)


def test_the_api_token_and_outcome_mac_are_not_the_key():
    key = streamauth.derive_stream_key(Signer(b"k" * 16), "s", "n", None)[1]
    token = streamauth.api_token(key)
    assert token != key and streamauth.token_matches(key, token)
    assert not streamauth.token_matches(key, key) and not streamauth.token_matches(key, None)
    facts = streamauth.OutcomeFacts("s", "j", 0, "ready", "c", "a", "r", "", "")
    mac = streamauth.outcome_mac(key, facts)
    assert streamauth.outcome_verifies(key, facts, mac)
    moved = streamauth.OutcomeFacts("s", "j2", 0, "ready", "c", "a", "r", "", "")
    assert not streamauth.outcome_verifies(key, moved, mac)
    assert not streamauth.outcome_verifies(streamauth.api_token(key), facts, mac)


def test_only_a_job_whose_signature_verified_is_marked_verified():
    """The outcome's MAC vouches for the args only of jobs the gate verified (a job
    refused for its Python, as in the reported attack, is not)."""
    admitted, refused = signed_job(), signed_job(python="2.7")
    assert GATE.check(admitted) is None and admitted.verified
    assert GATE.check(refused) is not None and not refused.verified
