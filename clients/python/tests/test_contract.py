"""The Python client against a real worker on the real broker.

Run by the worker's test suite (tests/it/clients.rs), which starts the workers and sets:
CONTRACT_URL, CONTRACT_QUEUE (a worker with docs/contract/worker.toml),
CONTRACT_QUEUE_PRESETS_ONLY (the same with presets_only), CONTRACT_PUBLIC_KEY (their receipt
key), CONTRACT_VECTORS (docs/contract/vectors.json), CONTRACT_WORKER (the worker binary),
CONTRACT_KEY_FILE (the receipt key's seed file), CONTRACT_SLOW_BODY (a request that takes
seconds to render), so this suite can start and kill workers of its own, and
CONTRACT_QUEUE_SEALED, CONTRACT_KEYS_URL and CONTRACT_DIRECTORY_KEY (a worker that takes only
sealed requests, its `GET /keys` and its pinned directory key).
"""
import base64
import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import midnit_client
from midnit_client import Client

ENV = os.environ


def need(name):
    value = ENV.get(name)
    if not value:
        raise unittest.SkipTest(f"{name} is not set (run by the worker's test suite)")
    return value


def vectors():
    return json.loads(pathlib.Path(need("CONTRACT_VECTORS")).read_text())


class Worker:
    """The real worker binary on a queue of its own, its log in a file."""

    def __init__(self, queue, concurrency=1):
        self.dir = tempfile.TemporaryDirectory()
        self.log = pathlib.Path(self.dir.name) / "worker.log"
        env = {k: v for k, v in ENV.items() if not k.startswith("MIDNIT_")}
        env.update({
            "MIDNIT_AMQP_URL": need("CONTRACT_URL"),
            "MIDNIT_QUEUE": queue,
            "MIDNIT_CONCURRENCY": str(concurrency),
            "MIDNIT_RECEIPT_KEY_FILE": need("CONTRACT_KEY_FILE"),
            "MIDNIT_SPILL_DIR": str(pathlib.Path(self.dir.name) / "spill"),
            "MIDNIT_HTTP_ADDR": "127.0.0.1:0",
            "MIDNIT_LOG": "info",
            "NO_COLOR": "1",
        })
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [need("CONTRACT_WORKER"), "serve"], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log)
        self.wait_for("consuming")

    def wait_for(self, needle, within=60):
        give_up = time.monotonic() + within
        while needle not in self.log.read_text(errors="replace"):
            if time.monotonic() > give_up or self.process.poll() is not None:
                raise AssertionError(f"the worker never logged {needle!r}")
            time.sleep(0.05)

    def kill(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.dir.cleanup()


def delete_queue(queue):
    """Removes a queue this suite's workers declared, and its dead-letter queue."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(need("CONTRACT_URL")))
    try:
        channel = connection.channel()
        channel.queue_delete(queue)
        channel.queue_delete(f"{queue}.dead")
    finally:
        connection.close()


def check_expectation(test, name, expect, call):
    """Runs ``call`` and checks the outcome against a vector's ``expect``."""
    if expect["status"] == "ok":
        done = call()
        shapes = [{"name": o.name, "format": o.format, "width": o.width, "height": o.height}
                  for o in done.outputs]
        test.assertEqual(shapes, expect["outputs"], name)
        test.assertIsNotNone(done.attested, name)
        test.assertGreater(done.receipt["wiped_bytes"], 0, name)
        return
    with test.assertRaises(midnit_client.JobError, msg=name) as caught:
        call()
    error = caught.exception
    test.assertEqual(error.code, expect["code"], name)
    test.assertIs(type(error), midnit_client.BY_CODE[expect["code"]], name)
    test.assertEqual(error.retryable, expect["retryable"], name)
    test.assertTrue(error.message.startswith(expect["message_prefix"]), f"{name}: {error.message}")


class Contract(unittest.TestCase):
    def setUp(self):
        self.key = need("CONTRACT_PUBLIC_KEY")
        self.client = Client(need("CONTRACT_URL"), need("CONTRACT_QUEUE"), public_key=self.key)
        self.addCleanup(self.client.close)

    def test_the_offline_attestation_vector_verifies_with_the_exact_signed_bytes(self):
        v = vectors()["attestation"]
        message = bytes.fromhex(v["attestation"])
        facts = midnit_client.verify(message, v["public_key"])
        self.assertEqual(facts["correlation_id"], v["correlation_id"])
        self.assertEqual(facts["receipt"], v["facts"]["receipt"])
        self.assertEqual(facts["outputs"][0]["sha256"].hex(), v["facts"]["outputs"][0]["sha256"])
        protected, _, payload, signature = __import__("cbor2").loads(message).value
        self.assertEqual(midnit_client.sig_structure(protected, payload).hex(), v["sig_structure"])
        self.assertEqual(signature.hex(), v["signature"])
        edited = bytearray(message)
        edited[-80] ^= 1
        with self.assertRaises(midnit_client.AttestationError):
            midnit_client.verify(bytes(edited), v["public_key"])
        with self.assertRaises(midnit_client.AttestationError):
            midnit_client.verify(message, "00" * 32)

    def test_every_conformance_vector_gets_its_reply_from_the_real_worker(self):
        queues = {"default": self.client}
        only = Client(need("CONTRACT_URL"), need("CONTRACT_QUEUE_PRESETS_ONLY"), public_key=self.key)
        self.addCleanup(only.close)
        queues["presets_only"] = only
        for job in vectors()["jobs"]:
            client = queues[job["queue"]]
            body = base64.b64decode(job["body"])
            deadline = -60.0 if job["deadline"] == "past" else None
            check_expectation(
                self, job["name"], job["expect"],
                lambda: client.wait(client.send_body(body, timeout=60, deadline=deadline)))

    def test_the_typed_call_renders_a_thumbnail_a_recipe_and_a_preset(self):
        jobs = {j["name"]: j for j in vectors()["jobs"]}
        photo = __import__("cbor2").loads(base64.b64decode(jobs["thumbnail"]["body"]))["inputs"]["photo"]
        done = self.client.render({"photo": photo}, [{"name": "thumb", "format": "jpeg", "width": 32}])
        self.assertEqual((done.output("thumb").width, done.output("thumb").height), (32, 24))
        self.assertEqual(done.output("thumb").data[:2], b"\xff\xd8")
        recipe = {"canvas": {"width": 96, "height": 64},
                  "layers": [{"photo": {"input": "photo"}}, {"text": {"text": "Aurora", "size": 20, "box": {"x": 4, "y": 40, "width": 88, "height": 20}}}]}
        card = self.client.render({"photo": photo}, [{"name": "card", "format": "png"}], recipe=recipe)
        self.assertEqual(card.output("card").data[:4], b"\x89PNG")
        avatar = self.client.render({"photo": photo}, preset="avatar")
        self.assertEqual([o.name for o in avatar.outputs], ["avatar"])
        with self.assertRaises(midnit_client.RecipeInvalid) as caught:
            self.client.render({"photo": photo}, [{"name": "c", "format": "png"}],
                               recipe={"canvas": {"width": 96, "height": 64},
                                       "layers": [{"text": {"text": "x", "size": 900, "box": {"x": 4, "y": 40, "width": 88, "height": 20}}}]})
        self.assertFalse(caught.exception.retryable)
        self.assertIsInstance(caught.exception, midnit_client.RecipeError)

    def test_a_sealed_job_renders_and_plaintext_or_a_forged_directory_is_refused(self):
        import urllib.request

        jobs = {j["name"]: j for j in vectors()["jobs"]}
        photo = __import__("cbor2").loads(base64.b64decode(jobs["thumbnail"]["body"]))["inputs"]["photo"]
        directory = urllib.request.urlopen(need("CONTRACT_KEYS_URL"), timeout=10).read()
        queue, pinned = need("CONTRACT_QUEUE_SEALED"), need("CONTRACT_DIRECTORY_KEY")
        sealed = Client(need("CONTRACT_URL"), queue, public_key=self.key,
                        directory=directory, directory_key=pinned)
        self.addCleanup(sealed.close)
        done = sealed.render({"photo": photo}, [{"name": "thumb", "format": "jpeg", "width": 32}])
        self.assertEqual(done.output("thumb").data[:2], b"\xff\xd8")
        self.assertIsNotNone(done.attested)
        facts = done.receipt["sealed"]
        epochs = [k[0] for k in midnit_client.verify_directory(
            directory, bytes.fromhex(pinned), time.time_ns() // 1_000_000).keys]
        self.assertIn(facts["epoch"], epochs)
        self.assertEqual(len(facts["request_sha256"]), 32)
        # Plaintext to a worker that takes only sealed requests.
        plain = Client(need("CONTRACT_URL"), queue, public_key=self.key)
        self.addCleanup(plain.close)
        with self.assertRaises(midnit_client.RequestSealedRequired):
            plain.render({"photo": photo}, [{"name": "thumb", "format": "jpeg", "width": 32}])
        # A directory signed by another key, an edited one, a stale one: refused.
        with self.assertRaises(midnit_client.DirectoryError):
            Client(need("CONTRACT_URL"), queue, directory=directory, directory_key="11" * 32).close()
        edited = bytearray(directory)
        edited[-70] ^= 1
        with self.assertRaises(midnit_client.DirectoryError):
            midnit_client.verify_directory(bytes(edited), bytes.fromhex(pinned), time.time_ns() // 1_000_000)
        with self.assertRaises(midnit_client.DirectoryError):
            midnit_client.verify_directory(directory, bytes.fromhex(pinned), 2**62)

    def test_fifty_jobs_in_flight_on_one_client_and_from_four_threads(self):
        jobs = {j["name"]: j for j in vectors()["jobs"]}
        body = base64.b64decode(jobs["thumbnail"]["body"])
        pending = [self.client.send_body(body, timeout=120) for _ in range(50)]
        for p in pending:
            done = self.client.wait(p)
            self.assertEqual(done.outputs[0].width, 32)
        photo = __import__("cbor2").loads(body)["inputs"]["photo"]
        results, errors = [], []

        def work():
            try:
                for _ in range(5):
                    results.append(self.client.render(
                        {"photo": photo}, [{"name": "t", "format": "png", "width": 16}], timeout=120))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 20)
        self.assertTrue(all(r.outputs[0].width == 16 for r in results))

    def test_no_reply_is_retried_then_raised_as_retryable(self):
        nobody = Client(need("CONTRACT_URL"), f"contract.nobody.{uuid.uuid4()}", public_key=self.key)
        self.addCleanup(nobody.close)
        started = time.monotonic()
        with self.assertRaises(midnit_client.NoReply) as caught:
            nobody.render({"photo": b"x"}, [{"name": "t", "format": "png"}], timeout=0.5, retries=2)
        self.assertTrue(caught.exception.retryable)
        self.assertGreaterEqual(time.monotonic() - started, 1.5, "three attempts of 0.5 s")

    def test_a_worker_killed_mid_job_loses_nothing_another_worker_answers(self):
        queue = f"contract.python.kill.{uuid.uuid4()}"
        self.addCleanup(delete_queue, queue)
        victim = Worker(queue)
        client = Client(need("CONTRACT_URL"), queue, public_key=self.key)
        self.addCleanup(client.close)
        pending = client.send_body(pathlib.Path(need("CONTRACT_SLOW_BODY")).read_bytes(), timeout=300)
        victim.wait_for("job received")
        victim.kill()
        self.assertNotIn("job done", victim.log.read_text(errors="replace"))
        victim.stop()
        rescuer = Worker(queue)
        self.addCleanup(rescuer.stop)
        done = client.wait(pending)
        self.assertEqual((done.outputs[0].width, done.outputs[0].height), (4000, 3000))
        self.assertIsNotNone(done.attested)


if __name__ == "__main__":
    unittest.main()
