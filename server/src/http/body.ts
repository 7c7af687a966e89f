/** Small request bodies (narinfos, JSON preambles), read with a hard limit. */
import type { Readable } from "node:stream";
import { ServerError } from "../errors.ts";

export async function readSmallBody(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      // Drain the rest so the connection stays usable for the 413.
      stream.resume();
      throw new ServerError("PayloadTooLarge", `The ${what} is larger than the limit of ${limit} bytes.`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
