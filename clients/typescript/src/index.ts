/**
 * @midnit/client: the backend's side of midnit-worker.
 *
 * ```ts
 * const client = await Client.connect("amqp://guest:guest@127.0.0.1:5672/%2f", { publicKey });
 * const done = await client.render({ photo }, [{ name: "thumb", format: "jpeg", width: 512 }]);
 * ```
 */
export * from "./client";
export * from "./errors";
export * from "./receipt";
export * as sealed from "./sealed";
export * from "./wire";
