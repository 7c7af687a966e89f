/** Looks at the first bytes of a request body without consuming them. */
import { Readable } from "node:stream";

/**
 * Resolves with up to `n` leading bytes and a stream that still yields the whole body. When the
 * body is shorter than `n` and already ended, the returned stream is a fresh one over those bytes.
 */
export function peekHead(stream: Readable, n: number): Promise<{ head: Buffer; body: Readable }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const finish = (ended: boolean) => {
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      stream.off("error", onError);
      stream.off("close", onClose);
      const head = Buffer.concat(chunks);
      if (ended) {
        resolve({ head, body: Readable.from(head.length > 0 ? [head] : []) });
        return;
      }
      stream.unshift(head);
      resolve({ head, body: stream });
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (length < n && (chunk = stream.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        length += chunk.length;
      }
      if (length >= n) finish(false);
    };
    const onEnd = () => finish(true);
    const onError = (e: Error) => {
      stream.off("readable", onReadable);
      stream.off("end", onEnd);
      stream.off("close", onClose);
      reject(e);
    };
    // A request whose connection drops may close without an error; waiting for it would never end.
    const onClose = () => {
      if (!stream.readableEnded) onError(new Error("the request body closed before it ended"));
    };
    stream.on("readable", onReadable);
    stream.on("end", onEnd);
    stream.on("error", onError);
    stream.on("close", onClose);
  });
}
