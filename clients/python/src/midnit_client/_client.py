"""One broker connection, many requests in flight, replies by direct reply-to."""
from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

import cbor2
import pika

from . import receipt as _receipt
from . import sealed as _sealed
from .errors import BadReply, MidnitError, NoReply, from_reply

VERSION = 1
CONTENT_TYPE = "application/cbor"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
DEADLINE_HEADER = "x-midnit-deadline-ms"
SENT_HEADER = "x-midnit-sent-ms"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
DEFAULT_QUEUE = "midnit.render"


@dataclass(frozen=True)
class Output:
    """One rendered image."""

    name: str
    format: str
    width: int
    height: int
    data: bytes = field(repr=False)
    #: The quality the encoder used (lossy formats; ``max_bytes`` may have lowered it).
    quality: Optional[int] = None


@dataclass(frozen=True)
class Rendered:
    """A rendered job: its images (in request order), its receipt, and the verified
    attestation's facts when the client pins a key."""

    outputs: List[Output]
    receipt: Dict[str, Any]
    attested: Optional[Dict[str, Any]] = None

    def output(self, name: str) -> Output:
        """The output named ``name``."""
        return next(o for o in self.outputs if o.name == name)


@dataclass(frozen=True)
class Pending:
    """A request on its way: what :meth:`Client.wait` needs to collect its reply."""

    correlation_id: str
    body: bytes = field(repr=False)
    timeout: float
    sealed: Optional[bytes] = field(default=None, repr=False)
    reply_keys: Optional[_sealed.ReplyKeys] = field(default=None, repr=False)


def request_body(
    inputs: Mapping[str, bytes],
    outputs: Sequence[Mapping[str, Any]] = (),
    recipe: Optional[Mapping[str, Any]] = None,
    preset: Optional[str] = None,
) -> bytes:
    """The CBOR body of a v1 request."""
    request: Dict[str, Any] = {"v": VERSION, "inputs": {k: bytes(v) for k, v in inputs.items()}}
    if recipe is not None:
        request["recipe"] = dict(recipe)
    if preset is not None:
        request["preset"] = preset
    if outputs or preset is None:
        request["outputs"] = [dict(o) for o in outputs]
    return cbor2.dumps(request)


class Client:
    """A connection to the broker that sends render jobs and awaits their replies.

    Thread-safe: one client may be shared by many threads; every use of the underlying pika
    connection is serialised by a lock, and each waiting thread takes only its own reply (by
    correlation id). Many requests may be in flight at once from one thread too:
    :meth:`send` each, then :meth:`wait` each. The connection is pika's blocking one, so a
    client belongs to one process (do not share it across ``fork``).

    With ``public_key`` (the worker fleet's receipt key, 64 hex digits or 32 bytes) every
    reply's attestation is verified before it is returned or raised, error replies included.
    ``persistent=True`` publishes jobs persistent and waits for the broker's confirm (the
    durable topology); the default is transient messages, never written to the broker's disk.

    With ``directory`` (the signed key directory, from the worker's ``GET /keys`` or relayed
    by the backend) and ``directory_key`` (the fleet's pinned directory public key), every
    request is sealed (contract v2) to the directory's current epoch key and its sealed reply
    opened: the broker carries only ciphertext. :meth:`use_directory` replaces it (e.g. after
    ``request.reseal``).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        queue: str = DEFAULT_QUEUE,
        *,
        public_key: Optional[_receipt.Key] = None,
        persistent: bool = False,
        connection_name: str = "midnit-client-python",
        directory: Optional[bytes] = None,
        directory_key: Optional[_receipt.Key] = None,
    ) -> None:
        params = pika.URLParameters(url)
        params.client_properties = {"connection_name": connection_name}
        self._queue = queue
        self._persistent = persistent
        self._key = _receipt.public_key_bytes(public_key) if public_key is not None else None
        self._directory_key = (
            _receipt.public_key_bytes(directory_key) if directory_key is not None else None
        )
        self._directory: Optional[_sealed.Directory] = None
        if directory is not None:
            self.use_directory(directory)
        self._lock = threading.RLock()
        self._replies: Dict[str, bytes] = {}
        self._waiting: Set[str] = set()
        self._ids = itertools.count()
        self._prefix = f"{os.getpid():x}-{time.time_ns():x}"
        self._connection = pika.BlockingConnection(params)
        self._channel = self._connection.channel()
        if persistent:
            self._channel.confirm_delivery()
        # Consume the pseudo-queue before publishing, on the publishing channel, no-ack.
        self._channel.basic_consume(DIRECT_REPLY_TO, self._on_reply, auto_ack=True)

    def use_directory(self, directory: bytes) -> None:
        """Seals every request from now on to ``directory``, verified against the pinned
        ``directory_key`` (raises :class:`midnit_client.sealed.DirectoryError` if it does not
        verify)."""
        if self._directory_key is None:
            raise _sealed.DirectoryError("a directory needs the pinned directory_key")
        self._directory = _sealed.verify_directory(
            directory, self._directory_key, time.time_ns() // 1_000_000
        )

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection; requests still waiting get :class:`NoReply`."""
        with self._lock:
            if self._connection.is_open:
                self._connection.close()

    def _on_reply(self, _channel: Any, _method: Any, props: Any, body: bytes) -> None:
        # A reply nobody waits for (a late duplicate, a timed-out request) is dropped.
        if props.correlation_id in self._waiting:
            self._replies[props.correlation_id] = body

    def send_body(
        self, body: bytes, *, timeout: float = 60.0, deadline: Optional[float] = None
    ) -> Pending:
        """Publishes a request body as it is (e.g. a conformance vector's). ``deadline`` is
        seconds from now (default: ``timeout``); a worker that picks the job up later answers
        ``job.expired`` without rendering it; a negative one is already past."""
        now_ms = time.time_ns() // 1_000_000
        deadline_ms = now_ms + int((timeout if deadline is None else deadline) * 1000)
        headers: Dict[str, Any] = {SENT_HEADER: now_ms, DEADLINE_HEADER: max(deadline_ms, 0)}
        sealed: Optional[bytes] = None
        reply_keys: Optional[_sealed.ReplyKeys] = None
        content_type = CONTENT_TYPE
        if self._directory is not None:
            epoch, key = self._directory.key_for(now_ms)
            sealed, reply_keys = _sealed.seal_request(epoch, key, body)
            headers[_sealed.EPOCH_HEADER] = epoch
            content_type = _sealed.SEALED_CONTENT_TYPE
        with self._lock:
            correlation_id = f"{self._prefix}-{next(self._ids)}"
            self._waiting.add(correlation_id)
            self._channel.basic_publish(
                exchange="",
                routing_key=self._queue,
                body=body if sealed is None else sealed,
                properties=pika.BasicProperties(
                    content_type=content_type,
                    correlation_id=correlation_id,
                    reply_to=DIRECT_REPLY_TO,
                    delivery_mode=2 if self._persistent else 1,
                    headers=headers,
                ),
            )
        return Pending(correlation_id, body, timeout, sealed, reply_keys)

    def send(
        self,
        inputs: Mapping[str, bytes],
        outputs: Sequence[Mapping[str, Any]] = (),
        recipe: Optional[Mapping[str, Any]] = None,
        preset: Optional[str] = None,
        *,
        timeout: float = 60.0,
        deadline: Optional[float] = None,
    ) -> Pending:
        """Publishes a request without waiting for its reply (see :meth:`wait`)."""
        body = request_body(inputs, outputs, recipe, preset)
        return self.send_body(body, timeout=timeout, deadline=deadline)

    def wait_reply(self, pending: Pending) -> Dict[str, Any]:
        """Waits for the reply to ``pending`` and returns it decoded, verified when a key is
        pinned, whatever its status."""
        give_up = time.monotonic() + pending.timeout
        cid = pending.correlation_id
        try:
            while True:
                with self._lock:
                    body = self._replies.pop(cid, None)
                    if body is None and time.monotonic() < give_up:
                        if not self._connection.is_open:
                            raise NoReply("the connection is closed")
                        # pika takes a float; its stubs say int.
                        self._connection.process_data_events(time_limit=0.02)  # type: ignore[arg-type]
                        body = self._replies.pop(cid, None)
                if body is not None:
                    break
                if time.monotonic() >= give_up:
                    raise NoReply(f"no reply within {pending.timeout}s")
                time.sleep(0)  # let another waiting thread take the lock
        finally:
            with self._lock:
                self._waiting.discard(cid)
                self._replies.pop(cid, None)
        # A sealed reply attests the opened request; a plaintext reply to a sealed request (an
        # error: the worker could not open it) attests the sealed bytes, and may carry no image.
        attested_body = pending.body
        if pending.sealed is not None and pending.reply_keys is not None:
            if _sealed.is_sealed_reply(body):
                try:
                    body = _sealed.open_reply(pending.reply_keys, pending.sealed, body)
                except _sealed.SealError as e:
                    raise BadReply("the sealed reply does not open with this request's key") from e
            else:
                attested_body = pending.sealed
        try:
            reply = cbor2.loads(body)
        except Exception as e:  # noqa: BLE001 - any decoding failure is a bad reply
            raise BadReply("the reply is not CBOR") from e
        if not isinstance(reply, dict) or reply.get("v") != VERSION:
            raise BadReply("the reply is not a v1 reply")
        if attested_body is not pending.body and (reply.get("status") != "error" or reply.get("outputs")):
            raise BadReply("a plaintext reply with outputs answered a sealed request")
        if self._key is not None:
            reply["_attested"] = _receipt.check_reply(reply, self._key, cid, attested_body)
        return reply

    def wait(self, pending: Pending) -> Rendered:
        """Waits for ``pending``'s reply: its outputs, or its typed error raised."""
        reply = self.wait_reply(pending)
        if reply.get("status") == "ok":
            try:
                outputs = [
                    Output(o["name"], o["format"], o["width"], o["height"], o["data"], o.get("quality"))
                    for o in reply.get("outputs", [])
                ]
            except (KeyError, TypeError) as e:
                raise BadReply("an output lacks a field") from e
            return Rendered(outputs, reply.get("receipt", {}), reply.get("_attested"))
        error = reply.get("error")
        if reply.get("status") != "error" or not isinstance(error, dict):
            raise BadReply("the reply has neither outputs nor an error")
        raise from_reply(error)

    def render(
        self,
        inputs: Mapping[str, bytes],
        outputs: Sequence[Mapping[str, Any]] = (),
        recipe: Optional[Mapping[str, Any]] = None,
        preset: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
        timeout: float = 60.0,
        retries: int = 1,
    ) -> Rendered:
        """Renders ``outputs`` (or a preset's) of ``inputs`` and returns the images, or raises
        the typed error of the reply's code.

        Each attempt waits up to ``timeout`` seconds. No reply, or a retryable error, is tried
        again up to ``retries`` times with a fresh correlation id: a job is a pure function of
        its request, so a second copy costs work, never a wrong result. A worker that dies
        mid-job does not need this: the broker gives the job to another worker, whose reply
        reaches the same waiting call.
        """
        body = request_body(inputs, outputs, recipe, preset)
        attempt = 0
        while True:
            try:
                return self.wait(self.send_body(body, timeout=timeout, deadline=deadline))
            except MidnitError as e:
                if not e.retryable or attempt >= retries:
                    raise
                attempt += 1
