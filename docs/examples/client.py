#!/usr/bin/env python3
"""A backend's side of midnit-worker's v1 contract, in Python (pika + cbor2).

Sends one thumbnail request for an image file and waits for the reply by direct reply-to
(the reply is never stored on the broker), then writes the outputs and prints a summary.

    pip install pika cbor2
    python3 docs/examples/client.py --input docs/examples/figure.jpg --out out/
"""
import argparse
import json
import pathlib
import uuid

import cbor2
import pika

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def render(url, queue, request, timeout=60):
    """Publishes `request` (a dict) and returns the decoded reply (a dict)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    correlation_id = str(uuid.uuid4())
    reply = {}

    def on_reply(_ch, _method, props, body):
        if props.correlation_id == correlation_id:  # deduplicate by correlation id
            reply.update(cbor2.loads(body))
            channel.stop_consuming()

    # Consume from the pseudo-queue *before* publishing, on the same channel, with auto-ack.
    channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=cbor2.dumps(request),
        properties=pika.BasicProperties(
            content_type="application/cbor",
            correlation_id=correlation_id,
            reply_to=DIRECT_REPLY_TO,
            delivery_mode=1,  # transient: never written to the broker's disk
        ),
    )
    connection.call_later(timeout, channel.stop_consuming)
    channel.start_consuming()
    connection.close()
    if not reply:
        raise TimeoutError(f"no reply within {timeout}s")
    return reply


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    parser.add_argument("--queue", default="midnit.render")
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", default="out")
    args = parser.parse_args()

    request = {
        "v": 1,
        "inputs": {"photo": pathlib.Path(args.input).read_bytes()},
        "outputs": [
            {"name": "thumb", "format": "jpeg", "width": 512, "height": 512, "quality": 85},
            {"name": "square", "format": "webp", "width": 256, "height": 256, "fit": "cover"},
        ],
    }
    reply = render(args.url, args.queue, request)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for o in reply.get("outputs", []):
        path = out / f"{o['name']}.{o['format']}"
        path.write_bytes(o["data"])
        written.append({"name": o["name"], "width": o["width"], "height": o["height"], "path": str(path)})
    print(json.dumps({
        "status": reply["status"],
        "error": reply.get("error"),
        "outputs": written,
        "wiped_bytes": reply["receipt"]["wiped_bytes"],
        "wiped_artifacts": [e["artifact"] for e in reply["receipt"]["wiped"]],
    }))


if __name__ == "__main__":
    main()
