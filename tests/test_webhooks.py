"""Webhooks: signatures, where they may go, each attempt recorded, retries through a real Celery worker.

Receivers are real HTTP servers on 127.0.0.1 (permitted through the allow-list, as loopback is refused otherwise).
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from conftest import TEST_PREFIX

import worker.delivery as worker_delivery
from ttsq.config import load_config
from ttsq.credentials import secret_key, webhook_secret
from ttsq.jobs.store import JobStore
from ttsq.metrics import record as metrics
from ttsq.models import Job, JobError, JobResult, JobStatus, new_job_id
from ttsq.queue import enqueue_webhook
from ttsq.webhooks import SIGNATURE_HEADER, verify
from ttsq.webhooks.delivery import WebhookSettings, backoff_s, deliver
from ttsq.webhooks.events import build_event, sign, signature_header
from ttsq.webhooks.policy import WebhookRefused, check_destination, parse_allow
from ttsq.webhooks.transport import Timeouts, post_once
from worker.delivery import build_webhook_runtime

SECRET = b"webhook-secret-0123456789"
WAIT_S = 10.0


# --- a real receiver on 127.0.0.1 ------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers the n-th POST with ``statuses[n]`` (the last one repeats); ``hold`` keeps each answer back."""

    def __init__(self, statuses: Sequence[int], tls: ssl.SSLContext | None = None) -> None:
        self.statuses = list(statuses)
        self.received: list[Received] = []
        self.hold: threading.Event | None = None
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._changed:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses[min(len(receiver.received), len(receiver.statuses)) - 1]
                    receiver._changed.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait(WAIT_S)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # A sender that gave up (timeout) or refused our certificate: kept, not printed.
                receiver.errors.append(sys.exc_info()[1])

        self.errors: list[BaseException | None] = []
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks/tts?source=ttsq"

    def wait_for(self, count: int, timeout_s: float = WAIT_S) -> list[Received]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout_s):
                raise AssertionError(f"the receiver got {len(self.received)} requests, expected {count}")
            return list(self.received)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(*statuses: int, tls: ssl.SSLContext | None = None) -> Receiver:
        started.append(Receiver(statuses or (200,), tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture()
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client, TEST_PREFIX)


def settings(**changes: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "secret": SECRET,
        "allow": ("127.0.0.1",),
        "max_attempts": 5,
        "backoff_s": 0.01,
        "timeout_s": 2.0,
    }
    return WebhookSettings(**{**values, **changes})


def ended_job(store: JobStore, url: str, status: JobStatus = JobStatus.succeeded) -> Job:
    now = time.time()
    job_id = new_job_id()
    job = Job(
        id=job_id,
        status=status,
        speaker="joe",
        text_chars=12,
        queue=f"{TEST_PREFIX}speaker.joe",
        created_at=now - 3,
        started_at=now - 2,
        finished_at=now - 1,
        webhook_url=url,
        metadata={"book": "Moby-Dick", "chapter": 3, "tags": ["sea"]},
        result=JobResult(key=f"{job_id}.wav", format="wav", duration_s=1.5, sample_rate=22050, size_bytes=66_244)
        if status == JobStatus.succeeded
        else None,
        error=JobError(code="engine_error", message="boom") if status == JobStatus.failed else None,
    )
    store.create(job, "Hello there.")
    return job


def link(job: Job) -> tuple[str, float]:
    return f"https://tts.example.com/v1/files/{job.id}.wav?expires=1&signature=abc", 1_900_000_000.0


def wait_for_job(store: JobStore, job_id: str, done: Callable[[Job], bool], timeout_s: float = WAIT_S) -> Job:
    """The job once ``done`` holds, woken by the store's change events rather than polling."""
    deadline = time.monotonic() + timeout_s
    with store.redis.pubsub(ignore_subscribe_messages=True) as events:
        events.subscribe(f"{store.prefix}job:{job_id}:events")
        while True:
            job = store.get(job_id)
            if job is not None and done(job):
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"job {job_id} did not get there; it stands at {job!r}")
            events.get_message(timeout=remaining)


def counted(store: JobStore) -> dict[str, int]:
    """Webhook attempts by outcome, as the metrics hold them."""
    raw = store.redis.hgetall(metrics.counters_key(store.prefix))
    fields = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    prefix = f"{metrics.WEBHOOK_DELIVERIES}|"
    return {name.removeprefix(prefix): count for name, count in fields.items() if name.startswith(prefix)}


def readme_snippet() -> Callable[..., bool]:
    """The receiver's ``verify`` as the README shows it, executed from the README itself so it cannot drift."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (snippet,) = [block for block in blocks if "def verify(" in block]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


# --- signatures ------------------------------------------------------------------------------------------------


def test_signature_verifies_and_rejects_tampering_other_secrets_and_replays() -> None:
    body, now = b'{"type":"job.succeeded"}', 1_800_000_000
    header = signature_header(SECRET, now, body)
    assert header == f"t={now},v1={sign(SECRET, now, body)}"
    assert verify(SECRET, header, body, now=now + 299)
    assert verify(SECRET.decode(), header, body, now=now)
    assert not verify(SECRET, header, body + b" ", now=now)
    assert not verify(b"another-secret-0123456789", header, body, now=now)
    assert not verify(SECRET, header, body, now=now + 301), "an old timestamp is a replay"
    assert not verify(SECRET, header, body, now=now - 301), "a timestamp from the future too"
    forged = signature_header(SECRET, now + 1000, body).replace(f"t={now + 1000}", f"t={now}")
    assert not verify(SECRET, forged, body, now=now), "the timestamp is signed"
    for malformed in ("", "v1=" + sign(SECRET, now, body), f"t=abc,v1={sign(SECRET, now, body)}", f"t={now}"):
        assert not verify(SECRET, malformed, body, now=now), malformed
    rotating = f"t={now},v1={'0' * 64},v1={sign(SECRET, now, body)}"
    assert verify(SECRET, rotating, body, now=now), "any v1 may match while secrets rotate"


def test_readme_snippet_agrees_with_the_signer() -> None:
    readme_verify = readme_snippet()
    body = b'{"id":"x"}'
    header = signature_header(SECRET, int(time.time()), body)
    assert readme_verify(SECRET, header, body)
    assert not readme_verify(SECRET, header, body + b"x")
    assert not readme_verify(SECRET, signature_header(SECRET, int(time.time()) - 600, body), body)


def test_backoff_doubles_under_a_cap_with_full_jitter() -> None:
    assert [backoff_s(n, 2.0, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff_s(30, 2.0, cap_s=600, rand=lambda: 1.0) == 600
    assert backoff_s(3, 2.0, rand=lambda: 0.0) == 0.0
    assert all(0 <= backoff_s(5, 1.0) <= 16 for _ in range(100))


# --- events ----------------------------------------------------------------------------------------------------


def test_event_carries_result_or_error_timestamps_and_metadata(store: JobStore) -> None:
    done = ended_job(store, "https://hooks.example.com/x")
    event = build_event(done, *link(done))
    assert event["id"] == f"{done.id}.succeeded" and event["type"] == "job.succeeded"
    assert event["job_id"] == done.id and event["status"] == "succeeded" and event["error"] is None
    assert event["metadata"] == {"book": "Moby-Dick", "chapter": 3, "tags": ["sea"]}
    assert event["result"] == {
        "url": link(done)[0],
        "url_expires_at": "2030-03-17T17:46:40.000Z",
        "duration_s": 1.5,
        "size_bytes": 66_244,
        "format": "wav",
        "sample_rate": 22050,
        "chapters": [],
    }
    assert all(event[k].endswith("Z") for k in ("created_at", "started_at", "finished_at"))
    # A book's chapters travel with the event, as in the job's result (issue 14).
    chapters = [{"title": "One", "start_s": 0.0, "end_s": 0.9}, {"title": "Two", "start_s": 0.9, "end_s": 1.5}]
    assert done.result is not None
    book = done.model_copy(update={"result": done.result.model_copy(update={"chapters": chapters})})
    assert build_event(book, *link(book))["result"]["chapters"] == chapters

    failed = build_event(ended_job(store, "https://hooks.example.com/x", JobStatus.failed))
    assert failed["type"] == "job.failed" and failed["result"] is None
    assert failed["error"] == {"code": "engine_error", "message": "boom"}
    canceled = build_event(ended_job(store, "https://hooks.example.com/x", JobStatus.canceled))
    assert canceled["type"] == "job.canceled" and canceled["result"] is None and canceled["error"] is None

    running = done.model_copy(update={"status": JobStatus.running})
    with pytest.raises(ValueError, match="has not ended"):
        build_event(running)


# --- where a webhook may go ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/hook",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:127.0.0.1]/",
        # IPv6 forms that carry an IPv4 address a gateway would deliver to: NAT64, 6to4, compatible, SIIT.
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[::a00:1]/",
        "http://[::ffff:0:a00:1]/",
        "http://[fec0::1]/",
    ],
)
def test_refuses_addresses_that_are_not_public(url: str) -> None:
    with pytest.raises(WebhookRefused, match="TTSQ_WEBHOOK_ALLOW"):
        check_destination(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http:///no-host",
        "http://user:pass@example.com/",
        "http://example.com:0/",
        "http://example.com/a b",
        "http://example.com/\r\nX-Injected: 1",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_refuses_urls_that_are_not_plain_http(url: str) -> None:
    with pytest.raises(WebhookRefused):
        check_destination(url, allow=["0.0.0.0/0", "::/0"])


def test_allow_list_permits_only_what_it_names() -> None:
    assert check_destination("http://127.0.0.1:9/x", ["127.0.0.1"]).address == "127.0.0.1"
    assert check_destination("http://127.0.0.1:9/x", ["127.0.0.0/8"]).address == "127.0.0.1"
    assert check_destination("http://[::ffff:127.0.0.1]:9/", ["127.0.0.1"]).port == 9
    assert check_destination("http://localhost:9/", ["LOCALHOST"]).host == "localhost"
    with pytest.raises(WebhookRefused, match="cloud metadata"):
        check_destination("http://169.254.169.254/", ["10.0.0.0/8", "127.0.0.1"])
    with pytest.raises(ValueError, match="'not a host!'"):
        parse_allow(["not a host!"])


def fake_dns(monkeypatch: pytest.MonkeyPatch, host: str, answers: list[list[str]]) -> list[int]:
    """``host`` resolves to the next of ``answers`` at each lookup (the last one repeats); others as usual."""
    real = socket.getaddrinfo
    calls = [0]

    def getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if name != host:
            return real(name, port, *args, **kwargs)
        calls[0] += 1
        addresses = answers[min(calls[0], len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_a_host_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, "mixed.example", [["93.184.216.34", "10.0.0.5"]])
    with pytest.raises(WebhookRefused, match=r"10\.0\.0\.5, a private address"):
        check_destination("https://mixed.example/hook")


def test_request_goes_to_the_checked_address_with_the_urls_host(
    receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards against DNS rebinding: a second lookup would answer 10.9.9.9, but there is none."""
    server = receiver(204)
    calls = fake_dns(monkeypatch, "hooks.example", [["127.0.0.1"], ["10.9.9.9"]])
    destination = check_destination(server.url("hooks.example"), ["127.0.0.1"])
    outcome = post_once(destination, b"{}", {"Content-Type": "application/json"}, settings().timeouts)
    assert outcome.delivered and outcome.status_code == 204
    (request,) = server.wait_for(1)
    assert request.headers["host"] == f"hooks.example:{server.port}"
    assert request.path == "/hooks/tts?source=ttsq"
    assert calls == [1]


# --- one attempt: what is retried ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry"), [(400, False), (404, False), (410, False), (408, True), (429, True), (500, True), (503, True)]
)
def test_5xx_408_and_429_are_retried_other_errors_are_not(
    status: int, retry: bool, receiver: Callable[..., Receiver]
) -> None:
    server = receiver(status)
    outcome = post_once(check_destination(server.url(), ["127.0.0.1"]), b"{}", {}, settings().timeouts)
    assert (outcome.status_code, outcome.retry, outcome.delivered) == (status, retry, False)


def test_redirect_is_a_failed_attempt_and_is_not_followed(receiver: Callable[..., Receiver], store: JobStore) -> None:
    server = receiver(302)
    job = ended_job(store, server.url())
    outcome = deliver(store, job.id, settings(), link)
    assert (outcome.status_code, outcome.retry) == (302, False)
    assert "redirects are not followed" in (outcome.error or "")
    assert len(server.wait_for(1)) == 1
    state = (store.get(job.id) or job).webhook
    assert state is not None and state.failed and state.last_status == 302 and state.delivered_at is None


def test_timeout_and_refused_connection_are_retried(receiver: Callable[..., Receiver]) -> None:
    server = receiver(200)
    server.hold = threading.Event()
    started = time.monotonic()
    outcome = post_once(check_destination(server.url(), ["127.0.0.1"]), b"{}", {}, settings(timeout_s=0.3).timeouts)
    assert (outcome.status_code, outcome.error, outcome.retry) == (None, "timed out", True)
    assert time.monotonic() - started < 2
    server.hold.set()

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = post_once(check_destination(f"http://127.0.0.1:{port}/", ["127.0.0.1"]), b"{}", {}, settings().timeouts)
    assert outcome.retry and outcome.status_code is None and "ConnectionRefusedError" in (outcome.error or "")


def test_a_receiver_dripping_its_answer_is_cut_off_at_the_total_deadline() -> None:
    """Guards the delivery threads: each byte arrives within the read timeout, the whole answer never does."""
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def drip() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.wait(0.02):
                    try:
                        conn.sendall(b"X")
                    except OSError:
                        return

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        port = listener.getsockname()[1]
        started = time.monotonic()
        destination = check_destination(f"http://127.0.0.1:{port}/", ["127.0.0.1"])
        outcome = post_once(destination, b"{}", {}, Timeouts(connect_s=1.0, read_s=1.0, total_s=0.3))
        elapsed = time.monotonic() - started
        stop.set()
        dripper.join(WAIT_S)
    assert (outcome.retry, outcome.error) == (True, "no complete answer within 0.3 s")
    assert 0.3 <= elapsed < 1.0


# --- deliver(): each attempt recorded in the job ---------------------------------------------------------------


def test_each_attempt_is_recorded_until_delivered(receiver: Callable[..., Receiver], store: JobStore) -> None:
    server = receiver(500, 502, 204)
    job = ended_job(store, server.url())
    seen = []
    for _ in range(3):
        outcome = deliver(store, job.id, settings(), link)
        state = (store.get(job.id) or job).webhook
        assert state is not None
        seen.append((outcome.attempt, outcome.retry, state.attempts, state.last_status, state.delivered_at is not None))
    assert seen == [(1, True, 1, 500, False), (2, True, 2, 502, False), (3, False, 3, 204, True)]
    again = deliver(store, job.id, settings(), link)
    assert again.attempt == 0 and len(server.received) == 3, "a delivered event is not sent again"
    assert counted(store) == {"retry": 2, "delivered": 1}


def test_gives_up_after_max_attempts(receiver: Callable[..., Receiver], store: JobStore) -> None:
    server = receiver(503)
    job = ended_job(store, server.url(), JobStatus.failed)
    assert deliver(store, job.id, settings(max_attempts=2), link).retry
    last = deliver(store, job.id, settings(max_attempts=2), link)
    assert (last.attempt, last.retry, last.status_code) == (2, False, 503)
    state = (store.get(job.id) or job).webhook
    assert state is not None and state.failed and state.attempts == 2 and state.last_error == "HTTP 503"
    assert deliver(store, job.id, settings(max_attempts=2), link).attempt == 0
    assert len(server.received) == 2
    assert counted(store) == {"retry": 1, "failed": 1}


def test_refused_destination_is_recorded_and_never_called(receiver: Callable[..., Receiver], store: JobStore) -> None:
    server = receiver(200)
    job = ended_job(store, server.url(), JobStatus.canceled)
    outcome = deliver(store, job.id, settings(allow=()), link)
    assert not outcome.retry and outcome.attempt == 1
    state = (store.get(job.id) or job).webhook
    assert state is not None and state.failed and state.last_status is None and "loopback" in (state.last_error or "")
    assert server.received == []
    assert counted(store) == {"refused": 1}


def test_job_removed_during_delivery_is_not_recreated(receiver: Callable[..., Receiver], store: JobStore) -> None:
    """Guards the record: a fragment holding only ``webhook`` would break every later read of the job."""
    server = receiver(200)
    job = ended_job(store, server.url())

    def link_then_remove(job: Job) -> tuple[str, float]:
        store.delete(job.id)  # retention removes the job while the attempt is under way
        return link(job)

    assert deliver(store, job.id, settings(), link_then_remove).delivered
    assert store.get(job.id) is None
    assert store.redis.exists(f"{TEST_PREFIX}job:{job.id}") == 0


# --- the Celery task, on a real worker consuming the webhook queue ---------------------------------------------


def test_webhook_task_retries_with_backoff_until_the_third_attempt_arrives(
    receiver: Callable[..., Receiver], config_env: dict[str, str], store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(
        {
            **config_env,
            "TTSQ_WEBHOOK_ALLOW": "127.0.0.1",
            "TTSQ_WEBHOOK_BACKOFF_S": "0.05",
            "TTSQ_WEBHOOK_TIMEOUT_S": "2",
        }
    )
    runtime = build_webhook_runtime(config)
    monkeypatch.setattr(worker_delivery.held, "_value", runtime)
    server = receiver(503, 503, 200)
    job = ended_job(store, server.url())
    queue = config.keys.webhooks_queue
    assert queue == f"{TEST_PREFIX}webhooks"

    with start_worker(runtime.celery, pool="threads", concurrency=2, perform_ping_check=False, queues=[queue]):
        enqueue_webhook(runtime.celery, config, job.id)
        received = server.wait_for(3)
        final = wait_for_job(store, job.id, lambda j: j.webhook is not None and j.webhook.delivered_at is not None)

    secret = webhook_secret(config, secret_key(config))
    for request in received:
        assert verify(secret, request.headers[SIGNATURE_HEADER.lower()], request.body)
        assert request.headers["content-type"] == "application/json"
        assert request.headers["ttsq-event"] == "job.succeeded"
    event = json.loads(received[-1].body)
    assert event["id"] == f"{job.id}.succeeded" and event["job_id"] == job.id and event["status"] == "succeeded"
    assert event["metadata"] == job.metadata
    assert event["result"]["url"].startswith(f"/v1/files/{job.id}.wav?expires=")
    assert event["result"]["size_bytes"] == 66_244 and event["result"]["format"] == "wav"
    assert final.webhook is not None
    assert (final.webhook.attempts, final.webhook.last_status, final.webhook.failed) == (3, 200, False)
    assert final.webhook.delivered_at is not None and final.webhook.delivered_at >= (final.finished_at or 0)
    assert len(server.received) == 3


# --- TLS to a pinned address -----------------------------------------------------------------------------------


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (its own CA), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize(("cert_name", "delivered"), [("hooks.example", True), ("other.example", False)])
def test_https_sends_the_urls_host_as_sni_and_checks_the_certificate_against_it(
    cert_name: str,
    delivered: bool,
    receiver: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    cert, key = self_signed(tmp_path, cert_name)
    names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    tls.sni_callback = lambda sock, name, context: names.append(name)
    server = receiver(200, tls=tls)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted by ssl.create_default_context(), as a real CA is
    fake_dns(monkeypatch, "hooks.example", [["127.0.0.1"]])

    destination = check_destination(f"https://hooks.example:{server.port}/hook", ["127.0.0.1"])
    outcome = post_once(destination, b"{}", {}, settings().timeouts)
    assert names == ["hooks.example"], "SNI names the URL's host, not the address connected to"
    if delivered:
        assert outcome.delivered and server.wait_for(1)[0].headers["host"] == f"hooks.example:{server.port}"
    else:
        assert not outcome.retry and "TLS certificate not accepted" in (outcome.error or "")
        assert server.received == []
