/** One broker connection, many requests in flight, replies by direct reply-to. */
import * as amqp from "amqplib";
import { decode, encode } from "./cbor";
import { BadReply, fromReply, MidnitError, NoReply } from "./errors";
import { checkReply, Key, publicKeyBytes } from "./receipt";
import {
  Directory,
  DirectoryError,
  EPOCH_HEADER,
  isSealedReply,
  openReply,
  ReplyKeys,
  SEALED_CONTENT_TYPE,
  SealError,
  sealRequest,
  verifyDirectory,
} from "./sealed";
import {
  Attested,
  CONTENT_TYPE,
  DEADLINE_HEADER,
  DIRECT_REPLY_TO,
  Output,
  OutputSpec,
  Receipt,
  Reply,
  SENT_HEADER,
  VERSION,
} from "./wire";

/** A rendered job: its images (in request order), its receipt, and the verified facts. */
export interface Rendered {
  outputs: Output[];
  receipt: Receipt;
  attested?: Attested;
}

/** What a render call may be given besides its inputs and outputs. */
export interface RenderOptions {
  recipe?: Record<string, unknown>;
  preset?: string;
  /** Seconds from now after which a worker answers `job.expired` unrendered (default: timeout). */
  deadline?: number;
  /** Seconds each attempt waits for its reply (default 60). */
  timeout?: number;
  /** How often no reply or a retryable error is tried again (default 1). */
  retries?: number;
}

/** Options of a client. */
export interface ClientOptions {
  /** The job queue (default `midnit.render`). */
  queue?: string;
  /** The worker fleet's receipt key: every reply's attestation is checked against it. */
  publicKey?: Key;
  /** Publish jobs persistent and wait for the broker's confirm (durable topology). */
  persistent?: boolean;
  /** The connection's name in the broker's management UI. */
  connectionName?: string;
  /**
   * The signed key directory (a worker's `GET /keys`, or relayed by the backend): with it every
   * request is sealed (contract v2) to its current epoch key and the sealed reply opened, so
   * the broker carries only ciphertext. Needs `directoryKey`.
   */
  directory?: Uint8Array;
  /** The fleet's pinned directory public key (64 hex digits or 32 bytes). */
  directoryKey?: Key;
}

/** A request on its way. */
export interface Pending {
  correlationId: string;
  body: Buffer;
  timeout: number;
  reply: Promise<Buffer>;
  /** The sealed request and what opens its reply, when sealed. */
  sealed?: { request: Buffer; keys: ReplyKeys };
}

/** The CBOR body of a v1 request. */
export function requestBody(
  inputs: Record<string, Uint8Array>,
  outputs: OutputSpec[] = [],
  recipe?: Record<string, unknown>,
  preset?: string,
): Buffer {
  const request: Record<string, unknown> = {
    v: VERSION,
    inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, Buffer.from(v)])),
  };
  if (recipe !== undefined) request.recipe = recipe;
  if (preset !== undefined) request.preset = preset;
  if (outputs.length || preset === undefined) request.outputs = outputs;
  return encode(request);
}

/**
 * A connection to the broker that sends render jobs and awaits their replies. Any number of
 * calls may be in flight at once on one client (Node is single-threaded; replies are routed
 * to their callers by correlation id).
 */
export class Client {
  private readonly waiting = new Map<string, (body: Buffer) => void>();
  private readonly prefix = `${process.pid.toString(16)}-${Date.now().toString(16)}`;
  private next = 0;
  private directory: Directory | undefined;
  private directoryKey: Buffer | undefined;

  private constructor(
    private readonly connection: amqp.ChannelModel,
    private readonly channel: amqp.Channel | amqp.ConfirmChannel,
    private readonly queue: string,
    private readonly key: Buffer | undefined,
    private readonly persistent: boolean,
  ) {}

  /** Connects to `url` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`). */
  static async connect(url: string, options: ClientOptions = {}): Promise<Client> {
    const name = options.connectionName ?? "midnit-client-typescript";
    const connection = await amqp.connect(url, { clientProperties: { connection_name: name } });
    const persistent = options.persistent ?? false;
    const channel = persistent
      ? await connection.createConfirmChannel()
      : await connection.createChannel();
    const key = options.publicKey === undefined ? undefined : publicKeyBytes(options.publicKey);
    const client = new Client(connection, channel, options.queue ?? "midnit.render", key, persistent);
    if (options.directoryKey !== undefined) client.directoryKey = publicKeyBytes(options.directoryKey);
    if (options.directory !== undefined) client.useDirectory(options.directory);
    // Consume the pseudo-queue before publishing, on the publishing channel, no-ack.
    await channel.consume(
      DIRECT_REPLY_TO,
      (message) => {
        const id = message?.properties.correlationId;
        const deliver = id === undefined ? undefined : client.waiting.get(id);
        if (message && deliver) deliver(message.content);
      },
      { noAck: true },
    );
    return client;
  }

  /** Seals every request from now on to `directory`, verified against the pinned directory key. */
  useDirectory(directory: Uint8Array): void {
    if (this.directoryKey === undefined) throw new DirectoryError("a directory needs the pinned directoryKey");
    this.directory = verifyDirectory(directory, this.directoryKey, Date.now());
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.connection.close();
  }

  /** Publishes a request body as it is; `deadline` in seconds from now (negative: past). */
  async sendBody(body: Buffer, timeout = 60, deadline?: number): Promise<Pending> {
    const correlationId = `${this.prefix}-${this.next++}`;
    const now = Date.now();
    const reply = new Promise<Buffer>((resolve) => this.waiting.set(correlationId, resolve));
    const headers: Record<string, number> = {
      [SENT_HEADER]: now,
      [DEADLINE_HEADER]: Math.max(0, Math.round(now + (deadline ?? timeout) * 1000)),
    };
    let sealed: Pending["sealed"];
    if (this.directory !== undefined) {
      const key = this.directory.keyFor(now);
      const [request, keys] = sealRequest(key.epoch, key.publicKey, body);
      sealed = { request, keys };
      headers[EPOCH_HEADER] = key.epoch;
    }
    const properties: amqp.Options.Publish = {
      contentType: sealed ? SEALED_CONTENT_TYPE : CONTENT_TYPE,
      correlationId,
      replyTo: DIRECT_REPLY_TO,
      persistent: this.persistent,
      headers,
    };
    const wire = sealed ? sealed.request : body;
    if (this.persistent) {
      const confirm = this.channel as amqp.ConfirmChannel;
      await new Promise<void>((resolve, reject) =>
        confirm.sendToQueue(this.queue, wire, properties, (err) =>
          err ? reject(new MidnitError("the broker refused the job", undefined, true)) : resolve(),
        ),
      );
    } else {
      this.channel.sendToQueue(this.queue, wire, properties);
    }
    return { correlationId, body, timeout, reply, sealed };
  }

  /** Publishes a request without waiting for its reply (see `wait`). */
  send(
    inputs: Record<string, Uint8Array>,
    outputs: OutputSpec[] = [],
    options: RenderOptions = {},
  ): Promise<Pending> {
    const body = requestBody(inputs, outputs, options.recipe, options.preset);
    return this.sendBody(body, options.timeout ?? 60, options.deadline);
  }

  /** Waits for `pending`'s reply, decoded and verified when a key is pinned, whatever its status. */
  async waitReply(pending: Pending): Promise<Reply & { attested?: Attested }> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new NoReply(`no reply within ${pending.timeout}s`)),
        pending.timeout * 1000,
      );
    });
    let body: Buffer;
    try {
      body = await Promise.race([pending.reply, timedOut]);
    } finally {
      clearTimeout(timer);
      this.waiting.delete(pending.correlationId);
    }
    // A sealed reply attests the opened request; a plaintext reply to a sealed request (an
    // error: the worker could not open it) attests the sealed bytes, and may carry no image.
    let attestedBody = pending.body;
    let plaintextToSealed = false;
    if (pending.sealed) {
      if (isSealedReply(body)) {
        try {
          body = openReply(pending.sealed.keys, pending.sealed.request, body);
        } catch (e) {
          if (e instanceof SealError) throw new BadReply("the sealed reply does not open with this request's key");
          throw e;
        }
      } else {
        attestedBody = pending.sealed.request;
        plaintextToSealed = true;
      }
    }
    let reply: Reply;
    try {
      reply = decode(body) as Reply;
    } catch {
      throw new BadReply("the reply is not CBOR");
    }
    if (typeof reply !== "object" || reply === null || reply.v !== VERSION) {
      throw new BadReply("the reply is not a v1 reply");
    }
    if (plaintextToSealed && (reply.status !== "error" || (reply.outputs ?? []).length)) {
      throw new BadReply("a plaintext reply with outputs answered a sealed request");
    }
    const attested =
      this.key === undefined ? undefined : checkReply(reply, this.key, pending.correlationId, attestedBody);
    return { ...reply, attested };
  }

  /** Waits for `pending`'s reply: its outputs, or its typed error thrown. */
  async wait(pending: Pending): Promise<Rendered> {
    const reply = await this.waitReply(pending);
    if (reply.status === "ok") {
      const outputs = reply.outputs ?? [];
      if (!outputs.every((o) => typeof o.name === "string" && o.data instanceof Uint8Array)) {
        throw new BadReply("an output lacks a field");
      }
      return { outputs, receipt: reply.receipt, attested: reply.attested };
    }
    if (reply.status !== "error" || typeof reply.error !== "object") {
      throw new BadReply("the reply has neither outputs nor an error");
    }
    throw fromReply(reply.error);
  }

  /**
   * Renders `outputs` (or a preset's) of `inputs` and resolves to the images, or rejects with
   * the typed error of the reply's code. No reply, or a retryable error, is tried again up to
   * `retries` times with a fresh correlation id: a job is a pure function of its request, so a
   * second copy costs work, never a wrong result. A worker that dies mid-job needs no retry:
   * the broker gives the job to another worker, whose reply reaches the same waiting call.
   */
  async render(
    inputs: Record<string, Uint8Array>,
    outputs: OutputSpec[] = [],
    options: RenderOptions = {},
  ): Promise<Rendered> {
    const body = requestBody(inputs, outputs, options.recipe, options.preset);
    const retries = options.retries ?? 1;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.wait(await this.sendBody(body, options.timeout ?? 60, options.deadline));
      } catch (e) {
        if (!(e instanceof MidnitError) || !e.retryable || attempt >= retries) throw e;
      }
    }
  }
}
