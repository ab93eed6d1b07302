#!/usr/bin/env python3
"""A backend's side of midnit-worker's v1 contract, in Python (pika + cbor2).

Sends one request for an image file — thumbnails, or with --card-name a showcase card drawn
by a recipe (docs/RECIPES.md) — and waits for the reply by direct reply-to (the reply is never
stored on the broker), then writes the outputs and prints a summary.

    pip install pika cbor2
    python3 docs/examples/client.py --input docs/examples/figure.jpg --out out/
    python3 docs/examples/client.py --input docs/examples/figure.jpg --card-name "Aurora"
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


def showcase_card(name, series):
    """A recipe: the photo on a midnight gradient with stars, rounded, shadowed, with its name."""
    return {
        "canvas": {
            "width": 1080, "height": 1350,
            "background": {"linear": {"angle": 165, "stops": [
                {"at": 0, "color": "#0b1026"}, {"at": 1, "color": "#3a2f6b"}]}},
        },
        "layers": [
            {"rect": {"fill": {"stars": {"colors": ["#ffffff", "#cfd8ff"], "count": 200}}}},
            {"photo": {"input": "photo", "box": {"x": 90, "y": 90, "width": 900, "height": 900},
                       "radius": 36, "shadow": {"dy": 18, "blur": 28}}},
            {"text": {"text": name, "box": {"x": 90, "y": 1030, "width": 900, "height": 110},
                      "weight": "bold", "size": 88}},
            {"text": {"text": series, "box": {"x": 90, "y": 1150, "width": 900, "height": 60},
                      "size": 40, "color": "#c9d3ff"}},
        ],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    parser.add_argument("--queue", default="midnit.render")
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", default="out")
    parser.add_argument("--card-name", help="draw a showcase card with this name instead")
    parser.add_argument("--card-series", default="")
    args = parser.parse_args()

    request = {
        "v": 1,
        "inputs": {"photo": pathlib.Path(args.input).read_bytes()},
        "outputs": [
            {"name": "thumb", "format": "jpeg", "width": 512, "height": 512, "quality": 85},
            {"name": "square", "format": "webp", "width": 256, "height": 256, "fit": "cover"},
        ],
    }
    if args.card_name:
        request["recipe"] = showcase_card(args.card_name, args.card_series or " ")
        request["outputs"] = [{"name": "card", "format": "jpeg", "width": 540, "quality": 85}]
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
