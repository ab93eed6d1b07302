// The TypeScript client (as built into dist/) against a real worker on the real broker.
// Run by the worker's test suite (tests/it/clients.rs), which starts the workers and sets the
// CONTRACT_* variables (see clients/python/tests/test_contract.py for the list).
const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { randomUUID } = require("node:crypto");
const cborx = require("cbor-x");
const midnit = require("../dist");

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run by the worker's test suite)`);
  return value;
}

const vectors = () => JSON.parse(fs.readFileSync(need("CONTRACT_VECTORS"), "utf8"));
const connect = (queue) =>
  midnit.Client.connect(need("CONTRACT_URL"), { queue, publicKey: need("CONTRACT_PUBLIC_KEY") });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Worker {
  constructor(queue) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "midnit-ts-"));
    this.log = path.join(this.dir, "worker.log");
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MIDNIT_")));
    Object.assign(env, {
      MIDNIT_AMQP_URL: need("CONTRACT_URL"),
      MIDNIT_QUEUE: queue,
      MIDNIT_CONCURRENCY: "1",
      MIDNIT_RECEIPT_KEY_FILE: need("CONTRACT_KEY_FILE"),
      MIDNIT_SPILL_DIR: path.join(this.dir, "spill"),
      MIDNIT_HTTP_ADDR: "127.0.0.1:0",
      MIDNIT_LOG: "info",
      NO_COLOR: "1",
    });
    const log = fs.openSync(this.log, "w");
    this.process = spawn(need("CONTRACT_WORKER"), ["serve"], { env, stdio: ["ignore", "ignore", log] });
    this.exited = new Promise((r) => this.process.on("exit", r));
  }
  text() {
    return fs.readFileSync(this.log, "utf8");
  }
  async waitFor(needle, within = 60000) {
    const giveUp = Date.now() + within;
    while (!this.text().includes(needle)) {
      if (Date.now() > giveUp || this.process.exitCode !== null) {
        throw new Error(`the worker never logged ${needle}`);
      }
      await sleep(50);
    }
  }
  async kill(signal) {
    this.process.kill(signal);
    await this.exited;
  }
}

async function expectOutcome(name, expect, call) {
  if (expect.status === "ok") {
    const done = await call();
    const shapes = done.outputs.map(({ name, format, width, height }) => ({ name, format, width, height }));
    assert.deepEqual(shapes, expect.outputs, name);
    assert.ok(done.attested, name);
    assert.ok(done.receipt.wiped_bytes > 0, name);
    return;
  }
  await assert.rejects(call, (error) => {
    assert.ok(error instanceof midnit.JobError, `${name}: ${error}`);
    assert.equal(error.code, expect.code, name);
    assert.ok(error instanceof midnit.BY_CODE[expect.code], name);
    assert.equal(error.retryable, expect.retryable, name);
    assert.ok(error.detail.startsWith(expect.message_prefix), `${name}: ${error.detail}`);
    return true;
  });
}

const photoOf = (v) => cborx.decode(Buffer.from(v.jobs[0].body, "base64")).inputs.photo;

test("the offline attestation vector verifies with the exact signed bytes", () => {
  const v = vectors().attestation;
  const message = Buffer.from(v.attestation, "hex");
  const facts = midnit.verify(message, v.public_key);
  assert.equal(facts.correlation_id, v.correlation_id);
  assert.deepEqual(JSON.parse(JSON.stringify(facts.receipt)), v.facts.receipt);
  assert.equal(Buffer.from(facts.outputs[0].sha256).toString("hex"), v.facts.outputs[0].sha256);
  const [protectedHeader, , payload, signature] = cborx.decode(message).value;
  assert.equal(midnit.sigStructure(protectedHeader, payload).toString("hex"), v.sig_structure);
  assert.equal(Buffer.from(signature).toString("hex"), v.signature);
  const edited = Buffer.from(message);
  edited[edited.length - 80] ^= 1;
  assert.throws(() => midnit.verify(edited, v.public_key), midnit.AttestationError);
  assert.throws(() => midnit.verify(message, "00".repeat(32)), midnit.AttestationError);
});

test("every conformance vector gets its reply from the real worker", async () => {
  const clients = {
    default: await connect(need("CONTRACT_QUEUE")),
    presets_only: await connect(need("CONTRACT_QUEUE_PRESETS_ONLY")),
  };
  try {
    for (const job of vectors().jobs) {
      const client = clients[job.queue];
      const body = Buffer.from(job.body, "base64");
      const deadline = job.deadline === "past" ? -60 : undefined;
      await expectOutcome(job.name, job.expect, async () => client.wait(await client.sendBody(body, 60, deadline)));
    }
  } finally {
    await clients.default.close();
    await clients.presets_only.close();
  }
});

test("the typed call renders a thumbnail, a recipe and a preset, and types its errors", async () => {
  const client = await connect(need("CONTRACT_QUEUE"));
  try {
    const photo = photoOf(vectors());
    const done = await client.render({ photo }, [{ name: "thumb", format: "jpeg", width: 32 }]);
    assert.deepEqual([done.outputs[0].width, done.outputs[0].height], [32, 24]);
    assert.deepEqual([...done.outputs[0].data.subarray(0, 2)], [0xff, 0xd8]);
    const recipe = {
      canvas: { width: 96, height: 64 },
      layers: [{ photo: { input: "photo" } }, { text: { text: "Aurora", size: 20, box: { x: 4, y: 40, width: 88, height: 20 } } }],
    };
    const card = await client.render({ photo }, [{ name: "card", format: "png" }], { recipe });
    assert.equal(card.outputs[0].data.subarray(1, 4).toString(), "PNG");
    const avatar = await client.render({ photo }, [], { preset: "avatar" });
    assert.deepEqual(avatar.outputs.map((o) => o.name), ["avatar"]);
    await assert.rejects(
      client.render({ photo }, [{ name: "t", format: "jpeg", width: 9000 }]),
      (e) => e instanceof midnit.LimitsOutput && e instanceof midnit.LimitsError && !e.retryable,
    );
  } finally {
    await client.close();
  }
});

test("a sealed job renders; plaintext and forged directories are refused", async () => {
  const directory = Buffer.from(await (await fetch(need("CONTRACT_KEYS_URL"))).arrayBuffer());
  const queue = need("CONTRACT_QUEUE_SEALED");
  const pinned = need("CONTRACT_DIRECTORY_KEY");
  const sealed = await midnit.Client.connect(need("CONTRACT_URL"), {
    queue,
    publicKey: need("CONTRACT_PUBLIC_KEY"),
    directory,
    directoryKey: pinned,
  });
  const plain = await connect(queue);
  try {
    const photo = photoOf(vectors());
    const done = await sealed.render({ photo }, [{ name: "thumb", format: "jpeg", width: 32 }]);
    assert.deepEqual([...done.outputs[0].data.subarray(0, 2)], [0xff, 0xd8]);
    assert.ok(done.attested);
    const epochs = midnit.sealed.verifyDirectory(directory, Buffer.from(pinned, "hex")).keys.map((k) => k.epoch);
    assert.ok(epochs.includes(Number(done.receipt.sealed.epoch)));
    assert.equal(done.receipt.sealed.request_sha256.length, 32);
    await assert.rejects(
      plain.render({ photo }, [{ name: "t", format: "jpeg", width: 32 }]),
      (e) => e instanceof midnit.RequestSealedRequired && !e.retryable,
    );
    assert.throws(
      () => midnit.sealed.verifyDirectory(directory, Buffer.alloc(32, 0x11)),
      midnit.sealed.DirectoryError,
    );
    const edited = Buffer.from(directory);
    edited[edited.length - 70] ^= 1;
    assert.throws(() => midnit.sealed.verifyDirectory(edited, Buffer.from(pinned, "hex")), midnit.sealed.DirectoryError);
    assert.throws(
      () => midnit.sealed.verifyDirectory(directory, Buffer.from(pinned, "hex"), 2 ** 52),
      midnit.sealed.DirectoryError,
    );
  } finally {
    await sealed.close();
    await plain.close();
  }
});

test("fifty jobs in flight on one client", async () => {
  const client = await connect(need("CONTRACT_QUEUE"));
  try {
    const photo = photoOf(vectors());
    const calls = Array.from({ length: 50 }, () =>
      client.render({ photo }, [{ name: "t", format: "png", width: 16 }], { timeout: 120 }),
    );
    const done = await Promise.all(calls);
    assert.ok(done.every((d) => d.outputs[0].width === 16 && d.attested));
  } finally {
    await client.close();
  }
});

test("no reply is retried, then rejected as retryable", async () => {
  const client = await connect(`contract.nobody.${randomUUID()}`);
  try {
    const started = Date.now();
    await assert.rejects(
      client.render({ photo: Buffer.from("x") }, [{ name: "t", format: "png" }], { timeout: 0.5, retries: 2 }),
      (e) => e instanceof midnit.NoReply && e.retryable,
    );
    assert.ok(Date.now() - started >= 1500, "three attempts of 0.5 s");
  } finally {
    await client.close();
  }
});

test("a worker killed mid-job loses nothing: another worker answers", async () => {
  const queue = `contract.typescript.kill.${randomUUID()}`;
  const victim = new Worker(queue);
  await victim.waitFor("consuming");
  const client = await connect(queue);
  let rescuer;
  try {
    const pending = await client.sendBody(fs.readFileSync(need("CONTRACT_SLOW_BODY")), 300);
    await victim.waitFor("job received");
    await victim.kill("SIGKILL");
    assert.ok(!victim.text().includes("job done"), "the job finished before the kill");
    rescuer = new Worker(queue);
    const done = await client.wait(pending);
    assert.deepEqual([done.outputs[0].width, done.outputs[0].height], [4000, 3000]);
    assert.ok(done.attested);
  } finally {
    await client.close();
    if (rescuer) await rescuer.kill("SIGTERM");
    const amqp = require("amqplib");
    const connection = await amqp.connect(need("CONTRACT_URL"));
    const channel = await connection.createChannel();
    await channel.deleteQueue(queue);
    await channel.deleteQueue(`${queue}.dead`);
    await connection.close();
  }
});
