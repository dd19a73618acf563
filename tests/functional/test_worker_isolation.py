"""Jobs are untrusted to the node: real workers through the agent's real pool.

A job's environment holds no secret or credential; a worker may run as another user; a
worker that breaks the protocol, dies or overruns its time limit fails its job only
(the pool replaces it); nothing a job started outlives it.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

from impetus.core import codec
from tests.nodeharness import make_job, run_jobs, stream_run, support

SECRET_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIASECRET",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t",
    "AWS_SESSION_TOKEN": "token",
    "IMPETUS_SIGNING_SECRET": "impetus/signing-key",
    "IMPETUS_AUTHKEY": "the-authkey",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
}


def environment(_):
    return dict(os.environ)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_jobs_environment_carries_no_secret_or_credential(monkeypatch):
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MY_SETTING", "kept on request")
    plain = run_jobs([make_job(environment, None)], worker_support=support())["j1"]
    env = codec.loads(plain.result)
    assert not {k for k in env if k.startswith(("AWS_", "IMPETUS_"))}, env
    assert not set(env.values()) & set(SECRET_ENV.values())
    assert "PATH" in env and "MY_SETTING" not in env

    identity = support().identity
    chosen = type(identity)(env=identity.env | {"MY_SETTING": "kept on request"})
    extra = support()
    extra.identity = chosen
    env = codec.loads(run_jobs([make_job(environment, None)], worker_support=extra)["j1"].result)
    assert env["MY_SETTING"] == "kept on request"


def test_a_job_cannot_call_aws_with_the_nodes_credentials(monkeypatch):
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)

    def credentials(_):
        import boto3

        found = boto3.Session().get_credentials()
        return None if found is None else found.access_key

    outcome = run_jobs([make_job(credentials, None)])["j1"]
    assert codec.loads(outcome.result) != "AKIASECRET"


def others_can_run(path: str) -> bool:
    """Whether a user with no special rights can reach ``path`` (every directory on its
    real path searchable by others, the file itself readable or runnable by others)."""
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & 0o001 for p in real.parents) and bool(real.stat().st_mode & 0o005)


def _linked_copy(source: Path, target: Path) -> None:
    """A copy of ``source`` whose files are hard links (fast, no extra space) where the
    file system allows, plain copies elsewhere; directories readable by others."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, symlinks=True)


@pytest.fixture
def interpreter_for_others(tmp_path_factory) -> tuple[str, str]:
    """(interpreter, PYTHONPATH) that user nobody can run with this suite's packages.

    This interpreter and checkout are used when others can reach them. Otherwise (a pyenv
    Python under /root, a clone under ``mktemp -d``: mode 0700) the system Python of the
    same version runs a copy of the packages and of the repository's code made in a
    directory others can read."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    root = Path(__file__).resolve().parents[2]
    if all(others_can_run(str(p)) for p in (sys.executable, site, root)):
        return sys.executable, f"{site}:{root}"
    python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if not Path(python).exists():
        pytest.fail(f"no interpreter user nobody can run: {sys.executable} is closed and "
                    f"{python} does not exist")  # fmt: skip
    shared = Path(tempfile.mkdtemp(prefix="impetus-worker-user-", dir="/tmp"))
    _linked_copy(site, shared / "site-packages")
    for package in ("impetus", "node_agent"):
        _linked_copy(root / package, shared / "repo" / package)
    for directory in [shared, *shared.rglob("*")]:
        if directory.is_dir():
            directory.chmod(0o755)
    yield python, f"{shared / 'site-packages'}:{shared / 'repo'}"
    shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="running workers as another user needs root")
def test_a_worker_user_cannot_read_the_agents_files(tmp_path, interpreter_for_others):
    secret = tmp_path / "credentials"
    secret.write_text("agent-only")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)

    def who(path):
        try:
            text = Path(path).read_text()
        except PermissionError:
            text = "denied"
        return os.getuid(), text, sorted(k for k in os.environ if k.startswith("AWS_"))

    python, path = interpreter_for_others
    chosen = support(user="nobody")
    chosen.identity = dataclasses.replace(
        chosen.identity, python=python, env=chosen.identity.env | {"PYTHONPATH": path}
    )
    outcome = run_jobs([make_job(who, str(secret))], worker_support=chosen)["j1"]
    assert outcome.status == "ready", outcome.error
    assert codec.loads(outcome.result) == (pwd.getpwnam("nobody").pw_uid, "denied", [])


def garbage(_):
    from node_agent import worker

    os.write(worker.ACTIVE_CHANNEL._out.fileno(), b"\x05\x00\x00\x00\xff\xfe{[\x00")
    time.sleep(30)


def forged(_):
    from node_agent import frames, worker

    outcome = {"status": "ready", "result": "eA=="}
    frames.send(worker.ACTIVE_CHANNEL._out, {"type": "outcome", "job": "j2", "outcome": outcome})
    time.sleep(30)


def flood(_):
    from node_agent import worker

    worker.ACTIVE_CHANNEL._out.send_bytes(b"x" * (5 * 1024 * 1024))
    time.sleep(30)


def suicide(_):
    os.kill(os.getpid(), signal.SIGKILL)


def square(i):
    return i * i


@pytest.mark.parametrize(
    ("hostile", "kind"),
    [(garbage, "worker"), (forged, "worker"), (flood, "worker"), (suicide, "lost")],
)
def test_a_hostile_worker_fails_its_own_job_only(hostile, kind):
    """The job's error counts as a lost run; the other jobs of the claim, queued behind
    it on the same worker, run on a replacement and succeed."""
    jobs = [make_job(hostile, None, job_id="j1"), make_job(square, 3, job_id="j2")]
    started = time.monotonic()
    outcomes = run_jobs(jobs, batch=2)
    assert time.monotonic() - started < 20
    assert outcomes["j1"].status == "error" and outcomes["j1"].failure == "crash"
    assert outcomes["j1"].error["type"] == kind, outcomes["j1"].error
    assert outcomes["j2"].status == "ready" and codec.loads(outcomes["j2"].result) == 9


def spawn_and_hang(path):
    import subprocess

    child = subprocess.Popen(["sleep", "300"], start_new_session=True)  # leaves the group
    Path(path).write_text(str(child.pid))
    time.sleep(300)


def test_a_job_past_its_time_limit_is_killed_with_everything_it_started(tmp_path):
    pidfile = tmp_path / "child"
    run = stream_run(time_limit=1.0)
    started = time.monotonic()
    outcome = run_jobs([make_job(spawn_and_hang, str(pidfile))], run=run)["j1"]
    assert 1.0 <= time.monotonic() - started < 10
    assert outcome.status == "error" and outcome.failure == "crash"
    assert outcome.error["type"] == "timeout"
    assert outcome.error["error"] == "timeout: the job ran longer than its time_limit of 1 s"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


def test_a_jobs_own_time_limit_wins_over_its_streams():
    run = stream_run(time_limit=60.0)
    job = make_job(time.sleep, 30, time_limit=0.5)
    outcome = run_jobs([job], run=run)["j1"]
    assert outcome.error["error"] == "timeout: the job ran longer than its time_limit of 0.5 s"


def leave_a_daemon(path):
    import subprocess

    # Double fork: the grandchild is orphaned at once (re-parented to the worker).
    subprocess.Popen(["sh", "-c", f"sleep 300 & echo $! > {path}"]).wait()
    return "done"


def test_what_a_job_started_does_not_outlive_it(tmp_path):
    pidfile = tmp_path / "daemon"
    outcome = run_jobs([make_job(leave_a_daemon, str(pidfile))])["j1"]
    assert codec.loads(outcome.result) == "done"
    daemon = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(daemon) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(daemon)
