"""The node agent as a real process against a (serialised) moto server.

Jobs go in through ``Queue.enqueue``; ``impetus-node foreground`` runs them in worker
processes; results come back through ``Queue.results``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from impetus.core import aws, codec
from impetus.core.config import AwsSettings
from impetus.local.motoserver import MotoServer
from impetus.local.provision import provision
from impetus.storage.jobqueue import layout
from impetus.storage.jobqueue.layout import new_chunk
from impetus.storage.queue import Queue
from impetus.storage.tables import NODES, TABLES

ROOT = Path(__file__).resolve().parents[2]


# --- job functions (travel by value: this file is no installed module) ---------------------
def pid_of_square(i):
    return i * i, os.getpid()


def write_pid_then_sleep(path):
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


def die_once_then_answer(path):
    marker = Path(path)
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)  # killed here
    return "second run"


def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


def mul(pair):
    a, b = pair
    return a * b


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def settings(moto: MotoServer) -> AwsSettings:
    prefix = f"node{uuid.uuid4().hex[:8]}"
    s = AwsSettings(endpoint_url=moto.endpoint_url, table_prefix=prefix)
    provision(s)
    return s


@pytest.fixture
def queue(settings: AwsSettings) -> Queue:
    return Queue(settings)


class AgentProcess:
    def __init__(self, settings: AwsSettings, log: Path, *extra: str) -> None:
        env = dict(
            os.environ,
            AWS_ENDPOINT_URL=settings.endpoint_url or "",
            IMPETUS_TABLE_PREFIX=settings.table_prefix,
        )
        self.node_id = f"n-{uuid.uuid4().hex[:6]}"
        command = [
            sys.executable,
            "-m",
            "node_agent.cli",
            "foreground",
            "--node-id",
            self.node_id,
            "--poll-interval",
            "0.2",
            "--heartbeat-interval",
            "1",
            "--lease",
            "10",
            "--log-level",
            "DEBUG",
            *extra,
        ]
        self.log = log
        self._log_file = log.open("wb")
        # A session of its own: its process group holds the agent and every worker.
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def group(self) -> list[int]:
        """Live processes of the agent's process group (zombies excluded)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.group():
            os.kill(pid, signal.SIGKILL)
        self._log_file.close()


@pytest.fixture
def start_agent(settings: AwsSettings, tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    agents: list[AgentProcess] = []

    def start(*extra: str) -> AgentProcess:
        agent = AgentProcess(settings, tmp_path / f"agent{len(agents)}.log", *extra)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.cleanup()
        print(agent.log.read_text()[-4000:])  # shown when the test failed


# --- helpers --------------------------------------------------------------------------------
def enqueue(
    queue: Queue, stream: str, fn: Callable, args_list: list[Any], **job_properties: Any
) -> list[str]:
    code = codec.dump_function(fn)
    digest = codec.digest(code)
    specs = [
        {
            "id": f"job{i}",
            "name": fn.__name__,
            "code": digest,
            "args": codec.dumps(a),
            "stage": "stage1",
            "properties": job_properties,
        }
        for i, a in enumerate(args_list)
    ]
    return queue.enqueue(stream, specs, {digest: code}, codec.PYTHON_VERSION)["accepted"]


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def results_when(queue: Queue, stream: str, count: int, timeout: float = 60.0) -> dict:
    def collected():
        found = {job["id"]: job for job in queue.results(stream, "stage1")}
        return found if len(found) >= count else None

    return wait_for(collected, timeout, f"{count} results of {stream}")


def node_item(settings: AwsSettings, node_id: str) -> dict | None:
    client = aws.client("dynamodb", settings)
    table = TABLES[NODES].physical_name(settings.table_prefix)
    return client.get_item(TableName=table, Key={"node": {"S": node_id}}).get("Item")


# --- tests ----------------------------------------------------------------------------------
def test_runs_jobs_heartbeats_and_stops_cleanly(queue, settings, start_agent):
    queue.create_stream("s1", {"frequency": 0.0})
    assert len(enqueue(queue, "s1", pid_of_square, list(range(30)))) == 30
    agent = start_agent("--mpps", "2")

    found = results_when(queue, "s1", 30)
    values = {jid: codec.loads(job["result"]) for jid, job in found.items()}
    assert {jid: v[0] for jid, v in values.items()} == {f"job{i}": i * i for i in range(30)}
    assert all(job["status"] == "ready" for job in found.values())
    worker_pids = {v[1] for v in values.values()}
    assert 1 <= len(worker_pids) <= 2 and agent.proc.pid not in worker_pids

    item = wait_for(lambda: node_item(settings, agent.node_id), 10, "node item")
    assert item["state"]["S"] == "running"
    assert int(item["pid"]["N"]) == agent.proc.pid
    assert int(item["mpps"]["N"]) == 2
    assert float(item["expires"]["N"]) > time.time()

    before = agent.cpu_seconds()  # idle with live workers: no busy loop
    time.sleep(1.0)
    assert agent.cpu_seconds() - before < 0.3

    assert agent.terminate() == 0
    assert node_item(settings, agent.node_id) is None
    assert wait_for(lambda: not agent.group() or None, 5, "no leftover processes") is not None


def test_stream_filter_and_mpps_property(queue, start_agent):
    queue.create_stream("big", {"node_class": "big", "mpps": 1})
    queue.create_stream("small", {"node_class": "small"})
    enqueue(queue, "big", pid_of_square, list(range(6)))
    enqueue(queue, "small", pid_of_square, [1])
    agent = start_agent("--mpps", "3", "--properties", "node_class:big")

    found = results_when(queue, "big", 6)
    assert len({codec.loads(job["result"])[1] for job in found.values()}) == 1  # mpps 1
    time.sleep(1.0)
    assert queue.results("small", "stage1") == []
    assert queue.get_stream("small")["counts"]["waiting"] == 1
    assert agent.terminate() == 0


def test_killed_worker_runs_the_job_again(queue, start_agent, tmp_path):
    queue.create_stream("s1")
    marker = tmp_path / "first-run.pid"
    enqueue(queue, "s1", die_once_then_answer, [str(marker)])
    start_agent()

    worker = int(wait_for(lambda: marker.exists() and marker.read_text(), 60, "job start"))
    os.kill(worker, signal.SIGKILL)
    job = results_when(queue, "s1", 1)["job0"]
    assert job["status"] == "ready" and codec.loads(job["result"]) == "second run"
    assert job["attempt"] == 1


def test_jobs_queued_behind_a_killed_workers_job_run_without_losing_an_attempt(
    queue, start_agent, tmp_path
):
    """Short jobs are queued to a busy worker (its next batch waits in its pipe); when the
    worker dies, the job it was running is lost, the queued ones never started: they run
    in the replacement with their attempt intact."""
    queue.create_stream("s6", {"mpps": 1})
    enqueue(queue, "s6", pid_of_square, [0])  # teaches the agent that jobs here are short
    agent = start_agent()
    results_when(queue, "s6", 1)
    queue.ack("s6", ["job0"])
    marker = tmp_path / "first-run.pid"
    code = codec.dump_function(die_once_then_answer)
    digest = codec.digest(code)
    slow = {"id": "slow", "name": "die", "code": digest, "args": codec.dumps(str(marker))}
    queue.enqueue("s6", [{**slow, "stage": "stage1"}], {digest: code}, codec.PYTHON_VERSION)
    worker = int(wait_for(lambda: marker.exists() and marker.read_text(), 60, "slow start"))
    queued = [f"q{i}" for i in range(3)]
    code = codec.dump_function(pid_of_square)
    digest = codec.digest(code)
    specs = [
        {"id": q, "name": "sq", "code": digest, "args": codec.dumps(i), "stage": "stage1"}
        for i, q in enumerate(queued)
    ]
    queue.enqueue("s6", specs, {digest: code}, codec.PYTHON_VERSION)
    wait_for(lambda: "queued 3 jobs behind busy workers" in agent.log.read_text(), 30, "queued")
    os.kill(worker, signal.SIGKILL)

    found = results_when(queue, "s6", 4)
    assert found["slow"]["attempt"] == 1 and codec.loads(found["slow"]["result"]) == "second run"
    for i, q in enumerate(queued):
        assert found[q]["status"] == "ready" and found[q]["attempt"] == 0
        value, pid = codec.loads(found[q]["result"])
        assert value == i * i and pid != worker
    assert agent.terminate() == 0


def test_worker_killed_max_attempts_times_gives_lost_error(queue, start_agent, tmp_path):
    queue.create_stream("s2", {"max_attempts": 2})
    pidfile = tmp_path / "worker.pid"
    enqueue(queue, "s2", write_pid_then_sleep, [str(pidfile)])
    agent = start_agent()

    for run in range(2):
        worker = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, "job start"))
        pidfile.unlink()
        os.kill(worker, signal.SIGKILL)
        if run == 0:  # the job runs again in a new worker
            wait_for(lambda: pidfile.exists(), 60, "second run")
    job = results_when(queue, "s2", 1)["job0"]
    assert job["status"] == "error" and job["attempt"] == 1
    assert job["result"]["error"] == f"lost: worker exited with code {-signal.SIGKILL}"

    queue.ack("s2", ["job0"])
    code = codec.dump_function(sleep_for)
    digest = codec.digest(code)
    spec = {
        "id": "after",
        "name": "sleep_for",
        "code": digest,
        "args": codec.dumps(0.01),
        "stage": "stage1",
    }
    queue.enqueue("s2", [spec], {digest: code}, codec.PYTHON_VERSION)
    after = results_when(queue, "s2", 1)["after"]
    assert after["status"] == "ready" and codec.loads(after["result"]) == 0.01
    assert agent.proc.poll() is None
    assert agent.terminate() == 0


def test_a_running_node_accepts_jobs_signed_after_the_key_rotated(queue, settings, start_agent):
    queue.create_stream("s7")
    enqueue(queue, "s7", pid_of_square, [3])
    agent = start_agent()
    assert codec.loads(results_when(queue, "s7", 1)["job0"]["result"])[0] == 9
    queue.ack("s7", ["job0"])
    sm = aws.client("secretsmanager", settings)
    sm.put_secret_value(SecretId=settings.signing_secret, SecretString="rotated-key-0123456789")
    rotated = Queue(settings)  # an API instance that reads the new version
    code = codec.dump_function(pid_of_square)
    digest = codec.digest(code)
    spec = {"id": "after", "name": "sq", "code": digest, "args": codec.dumps(4), "stage": "stage1"}
    rotated.enqueue("s7", [spec], {digest: code}, codec.PYTHON_VERSION)
    job = results_when(queue, "s7", 1)["after"]
    assert job["status"] == "ready" and codec.loads(job["result"])[0] == 16
    assert agent.proc.poll() is None
    assert agent.terminate() == 0


def test_heartbeat_renews_the_lease_of_a_long_job(queue, start_agent):
    queue.create_stream("s5")
    enqueue(queue, "s5", sleep_for, [4])
    agent = start_agent("--lease", "2", "--heartbeat-interval", "0.5")
    wait_for(lambda: queue.get_stream("s5")["counts"]["running"] == 1, 60, "job running")

    reaped = 0
    while not queue.results("s5", "stage1"):  # a DFS reaping all along finds nothing expired
        reaped += queue.reap("s5")
        time.sleep(0.3)
    assert reaped == 0
    job = queue.get_job("s5", "job0")
    assert job["status"] == "ready"
    assert agent.terminate() == 0


def test_drain_finishes_running_jobs_within_grace(queue, start_agent):
    queue.create_stream("s3")
    enqueue(queue, "s3", sleep_for, [1.5])
    agent = start_agent("--grace", "20")
    wait_for(lambda: queue.get_stream("s3")["counts"]["running"] == 1, 60, "job running")

    assert agent.terminate() == 0
    job = queue.get_job("s3", "job0")
    assert job["status"] == "ready" and codec.loads(job["result"]) == 1.5


def test_drain_past_grace_sends_unfinished_jobs_back_as_lost_runs(queue, start_agent, tmp_path):
    queue.create_stream("s4")
    pidfile = tmp_path / "worker.pid"
    enqueue(queue, "s4", write_pid_then_sleep, [str(pidfile)])
    agent = start_agent("--grace", "0.5")
    wait_for(lambda: pidfile.exists(), 60, "job started")  # running, not only claimed

    started = time.monotonic()
    assert agent.terminate() == 0
    assert time.monotonic() - started < 10
    job = queue.get_job("s4", "job0")
    # It goes back, but as a lost run: a job that takes its node down cannot bounce
    # between nodes forever at the same attempt.
    assert job["status"] == "waiting" and job["attempt"] == 1
    assert queue.get_stream("s4")["counts"]["waiting"] == 1
    assert wait_for(lambda: not agent.group() or None, 5, "no leftover processes") is not None


def test_start_and_stop_as_a_daemon(queue, settings, tmp_path):
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=settings.endpoint_url or "",
        IMPETUS_TABLE_PREFIX=settings.table_prefix,
    )
    base = [sys.executable, "-m", "node_agent.cli"]
    opts = [
        "--piddir",
        str(tmp_path / "run"),
        "--logdir",
        str(tmp_path / "log"),
        "--node-id",
        "daemon1",
        "--heartbeat-interval",
        "1",
        "--poll-interval",
        "0.2",
    ]
    queue.create_stream("d1")
    enqueue(queue, "d1", pid_of_square, [3])

    started = subprocess.run(
        [*base, "start", *opts], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    pidfile = tmp_path / "run" / "impetus-node.pid"
    try:
        assert started.returncode == 0, started.stderr
        pid = int(pidfile.read_text())
        assert started.stdout.strip() == f"impetus-node: started (pid {pid})"
        again = subprocess.run(
            [*base, "start", *opts], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert again.returncode == 1 and f"already running (pid {pid}" in again.stderr
        assert codec.loads(results_when(queue, "d1", 1)["job0"]["result"])[0] == 9
        assert node_item(settings, "daemon1") is not None

        stopped = subprocess.run(
            [*base, "stop", *opts], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"impetus-node: stopped (pid {pid})"
        assert not pidfile.exists()
        assert node_item(settings, "daemon1") is None
        assert (
            "node daemon1 stopped after 1 jobs"
            in (tmp_path / "log" / "impetus-node.log").read_text()
        )
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def write_marker(path):
    Path(path).write_text("this code ran")


def test_forged_and_altered_jobs_are_refused_unrun(queue, settings, start_agent, tmp_path):
    """Someone with write access to the tables but not to the signing key cannot make a
    node run their code: neither by altering a signed job nor by writing a new one."""
    from impetus.core import keys
    from impetus.storage import dynamo
    from impetus.storage.tables import JOBS, QUEUE

    ddb = aws.client("dynamodb", settings)
    jobs_table = TABLES[JOBS].physical_name(settings.table_prefix)
    queue_table = TABLES[QUEUE].physical_name(settings.table_prefix)
    queue.create_stream("s6")
    marker = tmp_path / "pwned"
    evil = codec.dump_function(write_marker)
    evil_digest = codec.digest(evil)
    ddb.put_item(
        TableName=jobs_table,
        Item=dynamo.serialize({"stream": "s6", "job": layout.code_key(evil_digest), "code": evil}),
    )
    # 1. a signed job, then its code and args swapped in the table
    enqueue(queue, "s6", sleep_for, [0.01])
    ddb.update_item(
        TableName=jobs_table,
        Key=dynamo.serialize({"stream": "s6", "job": "job0"}),
        UpdateExpression="SET #code = :code, #args = :args",
        ExpressionAttributeNames={"#code": "code", "#args": "args"},
        ExpressionAttributeValues=dynamo.values(code=evil_digest, args=codec.dumps(str(marker))),
    )
    # 2. a job written straight into the tables, without a signature
    pk, sk = layout.ready_pk("s6", 0), layout.ready_sk(0, keys.now_ms(), keys.unique_suffix())
    forged = new_chunk("s6", pk, sk, ["forged"], "stage1", 0, keys.now_ms())
    record = {
        "stream": "s6",
        "job": "forged",
        "name": "write_marker",
        "code": evil_digest,
        "args": codec.dumps(str(marker)),
        "stage": "stage1",
        "python": codec.PYTHON_VERSION,
        "cloudpickle": codec.CLOUDPICKLE_VERSION,
        "retries": 0,
        "max_attempts": 1,
        "status": "waiting",
        "chunk_pk": pk,
        "chunk_sk": sk,
        "index": 0,
    }
    ddb.put_item(TableName=jobs_table, Item=dynamo.serialize(record))
    ddb.put_item(TableName=queue_table, Item=dynamo.serialize(forged))
    queue.streams.count("s6", waiting=1)
    start_agent()

    found = results_when(queue, "s6", 2)
    assert sorted(found) == ["forged", "job0"]
    for job in found.values():
        assert job["status"] == "error"
        assert job["result"]["error"].startswith("signature: ")
    assert not marker.exists()


def test_a_killed_node_agents_jobs_run_again_on_another_node(queue, start_agent, tmp_path):
    """kill -9 of a whole node (agent and workers): once the lease expires, a surviving
    node reaps it and runs the job again, as attempt 1."""
    queue.create_stream("s7")
    marker = tmp_path / "first-run.pid"
    enqueue(queue, "s7", die_once_then_answer, [str(marker)])
    doomed = start_agent("--lease", "2", "--heartbeat-interval", "0.5")
    wait_for(lambda: marker.exists(), 60, "job start")
    os.killpg(doomed.proc.pid, signal.SIGKILL)  # the agent and its workers, at once
    doomed.proc.wait(10)

    survivor = start_agent()
    job = results_when(queue, "s7", 1, timeout=90)["job0"]
    assert job["status"] == "ready" and codec.loads(job["result"]) == "second run"
    assert job["attempt"] == 1 and job["node"] == survivor.node_id
    assert survivor.terminate() == 0


def garbage_to_the_agent(_):
    from node_agent import worker

    os.write(worker.ACTIVE_CHANNEL._out.fileno(), b"\x05\x00\x00\x00\xff\xfe{[\x00")
    time.sleep(30)


def test_a_job_that_breaks_its_worker_fails_after_max_attempts_and_the_agent_lives_on(
    queue, start_agent
):
    """The review's fleet-stopper: garbage on the worker's pipe crashed the agent, which
    handed the claim back at the same attempt, so the job bounced forever."""
    queue.create_stream("h1", {"max_attempts": 2})
    enqueue(queue, "h1", garbage_to_the_agent, [None])
    agent = start_agent()
    job = results_when(queue, "h1", 1)["job0"]
    assert job["status"] == "error" and job["attempt"] == 1
    assert job["result"]["error"].startswith("worker: the worker broke protocol")
    assert agent.proc.poll() is None
    queue.create_stream("h2")  # (enqueue() names jobs job0, job1...: a fresh stream)
    enqueue(queue, "h2", pid_of_square, [5])
    assert codec.loads(results_when(queue, "h2", 1)["job0"]["result"])[0] == 25
    assert agent.terminate() == 0


def test_time_limit_kills_the_job_and_counts_its_attempts(queue, start_agent):
    queue.create_stream("t1", {"max_attempts": 2, "time_limit": 1})
    enqueue(queue, "t1", sleep_for, [60])
    agent = start_agent()
    job = results_when(queue, "t1", 1, timeout=30)["job0"]
    assert job["status"] == "error" and job["attempt"] == 1
    assert job["result"]["error"] == "timeout: the job ran longer than its time_limit of 1 s"
    assert agent.terminate() == 0


def test_a_worker_whose_lease_is_lost_is_killed(queue, start_agent, tmp_path):
    """Deleting the stream takes the lease away: the worker must not run on."""
    pidfile = tmp_path / "worker.pid"
    queue.create_stream("l1")
    enqueue(queue, "l1", write_pid_then_sleep, [str(pidfile)])
    agent = start_agent("--heartbeat-interval", "0.5", "--lease", "5")
    worker = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, "job start"))
    queue.delete_stream("l1")
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or None, 20, "the worker killed")
    assert agent.proc.poll() is None
    assert agent.terminate() == 0


def test_a_forks_own_time_limit_is_signed_and_wins_over_its_streams(queue, settings, start_agent):
    """A job property snapshotted into the record (signed: see test_signing.py); the node
    kills the job at its own limit, not its stream's."""
    queue.create_stream("t2", {"max_attempts": 1, "time_limit": 600})
    enqueue(queue, "t2", sleep_for, [60], time_limit=1)
    record = queue.jobs.items.records("t2", ["job0"])["job0"]
    assert record["time_limit"] == 1
    agent = start_agent()
    job = results_when(queue, "t2", 1, timeout=30)["job0"]
    assert job["result"]["error"] == "timeout: the job ran longer than its time_limit of 1 s"
    assert agent.terminate() == 0


def enqueue_calls(
    queue: Queue, stream: str, calls: list[tuple[Callable, Any]], prefix: str = "job"
) -> None:
    """Jobs of different functions in one fork (so in one chunk: claimable together)."""
    codes = {codec.digest(c): c for c in (codec.dump_function(fn) for fn, _ in calls)}
    specs = [
        {
            "id": f"{prefix}{i}",
            "name": fn.__name__,
            "code": codec.digest(codec.dump_function(fn)),
            "args": codec.dumps(args),
            "stage": "stage1",
        }
        for i, (fn, args) in enumerate(calls)
    ]
    assert len(queue.enqueue(stream, specs, codes, codec.PYTHON_VERSION)["accepted"]) == len(calls)


def claims_of(queue: Queue, stream: str) -> list[dict]:
    pk = layout.ready_pk(stream, 0)
    chunks = queue.jobs.items.chunks_in(pk, "#claims", consistent=True)
    return [c for chunk in chunks for c in (chunk.get("claims") or {}).values()]


def test_a_fast_job_is_not_held_back_by_a_slow_one_claimed_with_it(queue, start_agent):
    """Head-of-line blocking, gone: mul(6, 7) claimed beside sleep(6) is collectable as
    soon as it ends; the slow job shows as started meanwhile, and not once it ended."""
    queue.create_stream("hol", {"mpps": 2, "frequency": 0.0})
    start_agent("--mpps", "2")
    # Two workers up first (a worker's start is not what this measures).
    enqueue_calls(queue, "hol", [(sleep_for, 0.5), (sleep_for, 0.5)], prefix="warm")
    queue.ack("hol", list(results_when(queue, "hol", 2)))
    enqueue_calls(queue, "hol", [(sleep_for, 6), (mul, (6, 7))])
    [claim] = wait_for(lambda: claims_of(queue, "hol"), 60, "the claim")
    claimed = time.monotonic()
    assert (claim["start"], claim["end"]) == (0, 2)  # both jobs in one claim
    found = results_when(queue, "hol", 1, timeout=10)
    waited = time.monotonic() - claimed
    assert list(found) == ["job1"], found
    assert codec.loads(found["job1"]["result"]) == 42
    assert waited < 1.5, f"mul waited {waited:.2f} s for its claim"
    started = wait_for(lambda: queue.results_page("hol", "stage1").started, 3, "a start")
    assert started == ["job0"]  # the sleep runs; mul ended (not shown as started)
    assert len(claims_of(queue, "hol")) == 1  # still held for the sleep
    found = results_when(queue, "hol", 2, timeout=20)
    assert codec.loads(found["job0"]["result"]) == 6
    assert queue.results_page("hol", "stage1").started == []

    def settled():  # the agent sends its counts every 0.5 s
        counts = queue.get_stream("hol")["counts"]
        return (counts["running"], counts["finished"], counts["acked"]) == (0, 2, 2)

    wait_for(settled, 5, "the counts")
