import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small HTTP proxy in front of the real S3 server (MinIO) that forwards every request
 * unchanged — headers included, so SigV4 signatures still verify — unless the test's
 * `decide` says otherwise for that request, and counts requests by S3 operation. A fault
 * injector on the wire: the store under test speaks real S3 to a real server throughout.
 */
export type S3Operation =
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'PutObject'
  | 'CopyObject'
  | 'GetObject'
  | 'HeadObject'
  | 'ListObjectsV2'
  | 'DeleteObjects'
  | 'Other';

/**
 * What to do with one request:
 * - 'forward': pass it on and relay the answer;
 * - 'slow-down': answer 503 SlowDown (S3's throttling error) without forwarding;
 * - 'lose-response': forward it (it takes effect), then drop the connection instead of
 *   relaying the answer, as a timeout or a reset after the server acted would.
 */
export type Verdict = 'forward' | 'slow-down' | 'lose-response';

export interface S3FaultProxy {
  /** http://127.0.0.1:PORT, for store.endpoint. */
  endpoint: string;
  /** Requests seen, by operation (forwarded or not). */
  counts: Partial<Record<S3Operation, number>>;
  total(): number;
  reset(): void;
  close(): Promise<void>;
}

export function classify(req: IncomingMessage): S3Operation {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const q = url.searchParams;
  const copy = req.headers['x-amz-copy-source'] !== undefined;
  switch (req.method) {
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      if (q.has('uploadId')) return 'CompleteMultipartUpload';
      if (q.has('delete')) return 'DeleteObjects';
      return 'Other';
    case 'PUT':
      if (q.has('partNumber')) return copy ? 'UploadPartCopy' : 'UploadPart';
      return copy ? 'CopyObject' : 'PutObject';
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'Other';
    case 'GET':
      return q.get('list-type') === '2' ? 'ListObjectsV2' : 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    default:
      return 'Other';
  }
}

const SLOW_DOWN = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>cairn-test-proxy</RequestId></Error>`;

export async function startS3FaultProxy(upstream: string, decide: (op: S3Operation, req: IncomingMessage) => Verdict = () => 'forward'): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  const counts: Partial<Record<S3Operation, number>> = {};

  const forward = (req: IncomingMessage, res: ServerResponse, loseResponse: boolean) => {
    const out = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (loseResponse) {
          // The server has acted; the client never hears about it.
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => req.socket.destroy());
    req.pipe(out);
  };

  const server: Server = createServer((req, res) => {
    const op = classify(req);
    counts[op] = (counts[op] ?? 0) + 1;
    const verdict = decide(op, req);
    if (verdict === 'slow-down') {
      // Read the body first, so the client sees the 503 and not a reset mid-upload.
      req.resume();
      req.on('end', () => {
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN) });
        res.end(SLOW_DOWN);
      });
      return;
    }
    forward(req, res, verdict === 'lose-response');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    total: () => Object.values(counts).reduce((a, b) => a + (b ?? 0), 0),
    reset: () => {
      for (const k of Object.keys(counts)) delete counts[k as S3Operation];
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
