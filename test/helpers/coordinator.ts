import { spawnCli } from './cli.js';
import { watch, type Watched } from './runtime-harness.js';

/** A `cairn coordinator` child process on a free port. */
export interface CoordinatorProcess {
  url: string;
  proc: Watched;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | null>;
  get<T = unknown>(path: string): Promise<T>;
  post(path: string, body: unknown, token?: string): Promise<{ status: number; body: any }>;
}

/** `globals` go before the command (e.g. --config), `flags` after it. */
export async function startCoordinator(cwd: string, o: { globals?: string[]; flags?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<CoordinatorProcess> {
  const proc = watch(spawnCli([...(o.globals ?? []), 'coordinator', '--port', '0', ...(o.flags ?? [])], { cwd, env: o.env ?? {} }));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(proc.stdout());
      if (m) finish(undefined, m[1]!);
      else if (!proc.isRunning()) finish(new Error(`coordinator exited:\n${proc.stderr().slice(-2000)}`));
    }, 50);
    const deadline = setTimeout(() => finish(new Error(`coordinator did not start:\n${proc.stderr().slice(-2000)}`)), 60_000);
    const finish = (err?: Error, value?: string) => {
      clearInterval(timer);
      clearTimeout(deadline);
      if (err) reject(err);
      else resolve(value!);
    };
  });
  return {
    url,
    proc,
    async stop() {
      if (proc.isRunning()) proc.child.kill('SIGTERM');
      return (await proc.exited).code;
    },
    async get<T>(path: string): Promise<T> {
      const res = await fetch(url + path);
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
    async post(path: string, body: unknown, token?: string) {
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
  };
}

/** Polls `probe` until it returns a value. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
