/** Small request bodies (narinfos, JSON preambles), read with a hard limit. */
import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { ServerError } from "../errors.ts";

/** A 413 before reading a byte when the request's Content-Length already exceeds `limit`. */
export function refuseDeclaredLength(req: IncomingMessage, limit: number, what: string): void {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    throw new ServerError("PayloadTooLarge", `The ${what} (Content-Length ${declared}) is larger than the limit of ${limit} bytes.`);
  }
}

/**
 * Reads the whole body if it fits in `limit` bytes. Uses events rather than `for await`: leaving
 * an async iterator early destroys the request, and with it the connection the error answer
 * still has to travel on.
 */
export function readSmallBody(stream: Readable, limit: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Keep reading (and discarding) so the client can finish sending and read our answer.
        stream.resume();
        reject(new ServerError("PayloadTooLarge", `The ${what} is larger than the limit of ${limit} bytes.`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
  });
}
