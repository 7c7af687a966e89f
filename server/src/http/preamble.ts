/**
 * Reads exactly `size` bytes off the front of a request body and leaves the rest in the stream
 * (attic's `X-Attic-Nar-Info-Preamble-Size` framing: JSON, then the NAR, in one body).
 */
import type { Readable } from "node:stream";
import { badRequest } from "../errors.ts";

export function readPreamble(stream: Readable, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const cleanup = () => {
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (got < size && (chunk = stream.read() as Buffer | null) !== null) {
        const need = size - got;
        if (chunk.length > need) {
          stream.unshift(chunk.subarray(need));
          chunk = chunk.subarray(0, need);
        }
        parts.push(chunk);
        got += chunk.length;
      }
      if (got === size) {
        cleanup();
        resolve(Buffer.concat(parts, size));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(badRequest(`the body ended after ${got} bytes, inside the ${size}-byte X-Attic-Nar-Info-Preamble-Size preamble`));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    stream.on("readable", onReadable);
    stream.on("end", onEnd);
    stream.on("error", onError);
    onReadable();
  });
}
