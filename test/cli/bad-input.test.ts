import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';

/** Every bad input: exit 2, exactly one line on stderr, and nothing written anywhere. */
async function expectRejected(args: string[], cwd: string, input?: string) {
  const r = await runCli(args, { cwd, ...(input !== undefined ? { input } : {}) });
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^cairn: error: /);
  expect(readdirSync(cwd).filter((f) => f !== 'events.jsonl' && f !== 'cairn.config.json')).toEqual([]);
  return r;
}

describe('bad input exits 2 with one line and writes nothing', () => {
  const good = '{"key":"a","value":1}\n';

  it.each([['../x'], [''], ['P0'], ['a/b'], ['.hidden'], ['x'.repeat(64)]])('partition %j', async (name) => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'events.jsonl'), good);
    const r = await expectRejected(['log', 'append', '--partition', name, '--jsonl', 'events.jsonl'], cwd);
    expect(r.stderr).toMatch(/partition/);
  });

  it('a malformed JSONL line names its line and appends nothing', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'events.jsonl'), `${good}{"key":"b","value":2}\n{"key": oops}\n`);
    const r = await expectRejected(['log', 'append', '--partition', 'p0', '--jsonl', 'events.jsonl'], cwd);
    expect(r.stderr).toMatch(/events\.jsonl:3/);
  });

  it.each([
    ['{"key":"a"}', /value/],
    ['[1,2]', /object/],
    ['{"key":5,"value":1}', /key/],
    ['{"key":"a","value":1,"headers":{"h":7}}', /headers/],
  ])('a JSONL record %s is rejected', async (line, reason) => {
    const cwd = tempDir();
    const r = await expectRejected(['log', 'append', '--partition', 'p0', '--jsonl', '-'], cwd, `${good}${line}\n`);
    expect(r.stderr).toMatch(reason);
  });

  it('an invalid config field names the field', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'cairn.config.json'), JSON.stringify({ snapshots: { retain: 0 } }));
    const r = await expectRejected(['log', 'info', '--partition', 'p0'], cwd);
    expect(r.stderr).toMatch(/snapshots\.retain/);
    expect(r.stderr).toMatch(/INVALID_CONFIG/);
  });

  it.each([
    [{ compression: 'brotli' }, /log\.compression/],
    [{ ssl: { ca: 'certs/missing-ca.pem' } }, /log\.ssl\.ca: file .*certs\/missing-ca\.pem does not exist/],
    [{ sasl: { mechanism: 'scram-sha-512', username: 'u', passwordEnv: 'CAIRN_TEST_UNSET_PASSWORD' } }, /log\.sasl\.passwordEnv: environment variable CAIRN_TEST_UNSET_PASSWORD is not set/],
    [{ sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'in-the-file' } }, /log\.sasl/],
    [{ sasl: { mechanism: 'gssapi', username: 'u', passwordEnv: 'X' } }, /log\.sasl\.mechanism/],
  ])('a Kafka security or codec setting %j is refused before connecting', async (extra, reason) => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'cairn.config.json'), JSON.stringify({ log: { type: 'kafka', brokers: ['127.0.0.1:1'], topic: 't', ...extra } }));
    const r = await expectRejected(['log', 'info', '--partition', 'p0'], cwd);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toMatch(/INVALID_CONFIG/);
  });

  it('an unknown store scheme in --config is rejected', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'cairn.config.json'), JSON.stringify({ store: { url: 'ftp://x' } }));
    const r = await expectRejected(['--config', 'cairn.config.json', 'snapshots', 'list', '--partition', 'p0'], cwd);
    expect(r.stderr).toMatch(/store\.url/);
  });

  it.each([
    [['restore', '--partition', 'p0', '--snapshot', 'not-an-id', '--to', 'x']],
    [['log', 'trim', '--partition', 'p0', '--before', '-1']],
    [['log', 'trim', '--partition', 'p0', '--before', '1.5']],
    [['run', '--partition', 'p0', '--processor', 'nope.ts']],
    [['run', '--group', 'workers', '--processor', 'nope.ts']],
    [['run', '--group', 'workers', '--partition', 'p0', '--processor', 'nope.ts']],
    [['run', '--group', 'bad/name', '--processor', 'nope.ts']],
    [['run', '--partition', 'p0', '--processor', 'x.ts', '--until-lsn', 'ten']],
    [['no-such-command']],
    [['log', 'append', '--partition', 'p0']],
    [['state', 'dump']],
    [['fork', 'create', '--from', 'p0', '--name', '../etc']],
    [['fork', 'create', '--from', 'p0@lsn:1.5', '--name', 'f']],
    [['fork', 'create', '--from', 'p0@../../x', '--name', 'f']],
    [['fork', 'create', '--from', '..@lsn:3', '--name', 'f']],
    [['fork', 'drop', 'F/../x']],
    [['replay', '--fork', '..', '--processor', 'x.ts']],
    [['replay', '--fork', 'f', '--processor', 'x.ts', '--to-lsn', '-3']],
    [['diff', 'p0@nope', 'p1']],
    [['diff', '../p0', 'p1']],
    [['prune', '--partition', 'p0', '--keep', '0']],
    [['prune', '--partition', 'p0', '--keep', 'all']],
  ])('%j', async (args) => {
    await expectRejected(args, tempDir());
  });

  it('--json errors also print {error: {code, kind, message, retryable}} on stdout', async () => {
    const r = await runCli(['--json', 'log', 'info', '--partition', 'BAD'], { cwd: tempDir() });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'BAD_INPUT', kind: 'bad-input', retryable: false } });
  });
});

describe('--help', () => {
  it.each([[[]], [['log']], [['log', 'append']], [['run']], [['checkpoint']], [['snapshots', 'list']], [['restore']], [['verify']], [['state', 'dump']], [['demo']], [['coordinator']], [['fork', 'create']], [['fork', 'list']], [['fork', 'drop']], [['replay']], [['diff']], [['prune']]])(
    'cairn %j --help exits 0 with usage',
    async (args) => {
      const cwd = tempDir();
      const r = await runCli([...args, '--help'], { cwd });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: cairn/);
      expect(existsSync(join(cwd, '.cairn'))).toBe(false);
    },
  );
});
