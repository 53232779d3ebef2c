import type { Command } from 'commander';
import type { StoreConfig } from '../../core/config.js';
import { CLI_DEFAULTS } from '../../core/defaults.js';
import { badInput } from '../../core/errors.js';
import { action } from '../context.js';

interface LifecycleFlags {
  apply?: boolean;
  expireDays?: string;
  transitionDays?: string;
  transitionClass?: string;
  store?: string;
}

/**
 * Archive classes a plain GET cannot read until the object is restored: latest.json and the
 * snapshots would become unreadable there, so transitions to them are refused.
 */
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

function parseDays(text: string, flag: string): number {
  if (!/^[1-9][0-9]{0,4}$/.test(text)) throw badInput(`invalid ${flag} ${JSON.stringify(text)}: expected a whole number of days, 1-99999`);
  return Number(text);
}

interface StoreReport {
  store: string;
  bucket: string;
  prefix: string;
  /** As PutBucketLifecycleConfiguration takes them: Cairn's rules for this store. */
  rules: { Rules: unknown[] };
  applied: boolean;
  /** With --apply: rules of the bucket that are not Cairn's and were kept. */
  kept?: string[];
}

export function registerLifecycle(program: Command): void {
  program
    .command('lifecycle')
    .description('the S3 bucket lifecycle rules that expire retired snapshot objects (snapshots.retire "tag"); printed, or merged into each bucket with --apply')
    .option('--apply', "merge the rules into each bucket's lifecycle configuration: rules whose ID does not start with cairn- are kept, Cairn's are replaced")
    .option('--expire-days <n>', 'retired objects expire this many days after they were created', String(CLI_DEFAULTS.lifecycleExpireDays))
    .option('--transition-days <n>', 'also move every object under the prefix to --transition-class this many days after it was created')
    .option('--transition-class <class>', 'the S3 storage class of --transition-days, e.g. STANDARD_IA or GLACIER_IR')
    .option('--store <name>', 'only this store of the config (default: every S3 store)')
    .addHelpText(
      'after',
      [
        '',
        'With snapshots.retire set to "tag", the sweeper does not delete the objects of evicted',
        'snapshots: it deletes their metadata.json (the folder is then plainly incomplete) and',
        'tags the other objects cairn-retired=true (and cairn-retired-at=<time>). Those are the',
        '"retired" snapshot objects; the rule cairn-expire-retired expires exactly them. Tags mark',
        'what may expire, never what to keep (lifecycle filters can only AND tags): latest.json',
        'and the objects of retained snapshots carry no tag, so no rule printed here reaches them.',
        '',
        'S3 counts the days from when an object was created, not from when it was tagged. The',
        'window in which an evicted snapshot stays restorable is snapshots.evictionGraceMs.',
        '',
        'Without --apply nothing is sent: the rules are printed for review. --apply reads the',
        "bucket's configuration, keeps every rule whose ID does not start with cairn-, replaces",
        "Cairn's and writes it back (s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration).",
        'Filesystem stores have no lifecycle and are skipped (retired objects are deleted there).',
        '',
        'Examples:',
        '  cairn lifecycle                                   # the rules, for every S3 store',
        '  cairn lifecycle --expire-days 14 --apply          # put them into the buckets',
        '  cairn lifecycle --transition-days 30 --transition-class STANDARD_IA --json',
      ].join('\n'),
    )
    .action(
      action(async (ctx, flags: LifecycleFlags) => {
        const expireDays = parseDays(flags.expireDays ?? String(CLI_DEFAULTS.lifecycleExpireDays), '--expire-days');
        if ((flags.transitionDays === undefined) !== (flags.transitionClass === undefined)) throw badInput('give --transition-days and --transition-class together');
        let transition: { days: number; storageClass: string } | undefined;
        if (flags.transitionDays !== undefined && flags.transitionClass !== undefined) {
          const storageClass = flags.transitionClass;
          if (!/^[A-Z][A-Z0-9_-]{0,63}$/.test(storageClass)) throw badInput(`invalid --transition-class ${JSON.stringify(storageClass)}: expected an S3 storage class such as STANDARD_IA`);
          if (ARCHIVE_CLASSES.has(storageClass)) {
            throw badInput(`--transition-class ${storageClass} is an archive class: latest.json and snapshots there cannot be read without a restore request; use an instant-access class (STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR)`);
          }
          transition = { days: parseDays(flags.transitionDays, '--transition-days'), storageClass };
        }

        const stores = ctx.cairn.config.placement.stores;
        let selected: Array<[string, StoreConfig]> = Object.entries(stores);
        if (flags.store !== undefined) {
          const one = stores[flags.store];
          if (!one) throw badInput(`unknown store ${JSON.stringify(flags.store)} (stores: ${Object.keys(stores).join(', ')})`);
          selected = [[flags.store, one]];
        }
        const s3 = selected.filter(([, s]) => s.kind === 's3' && s.bucket);
        const skipped = selected.filter(([, s]) => !(s.kind === 's3' && s.bucket)).map(([store, s]) => ({ store, url: s.url }));
        if (s3.length === 0) {
          throw badInput(`no S3 store ${flags.store !== undefined ? `named ${flags.store}` : 'in the config'}: bucket lifecycle rules apply to S3 stores only (filesystem stores delete retired snapshots)`);
        }

        // The SDK loads only once there is an S3 store to write rules for.
        const lifecycle = await import('../../store/s3/lifecycle.js');
        const plan = { expireDays, ...(transition ? { transition } : {}) };
        const reports: StoreReport[] = [];
        for (const [store, config] of s3) {
          const prefix = config.prefix ?? '';
          const rules = lifecycle.lifecycleRules(prefix, plan);
          const report: StoreReport = { store, bucket: config.bucket!, prefix, rules: { Rules: rules }, applied: false };
          if (flags.apply) {
            const result = await lifecycle.applyLifecycle(config, rules);
            Object.assign(report, { applied: true, kept: result.kept });
          }
          reports.push(report);
        }

        ctx.output({ stores: reports, ...(skipped.length ? { skipped } : {}) }, () =>
          [
            ...skipped.map((s) => `store ${s.store} (${s.url}): skipped; the filesystem store has no lifecycle (retired snapshots are deleted there)`),
            ...reports.map((r) =>
              [
                `store ${r.store}: bucket ${r.bucket}, prefix ${r.prefix ? `${r.prefix}/` : '(none)'}`,
                JSON.stringify(r.rules, null, 2),
                r.applied
                  ? `applied to bucket ${r.bucket}${r.kept?.length ? `; kept its other rules: ${r.kept.join(', ')}` : ''}`
                  : `not applied (add --apply to merge it into the bucket's configuration; putting this document as it is would replace the bucket's other rules)`,
              ].join('\n'),
            ),
            ...(ctx.cairn.config.snapshots.retire === 'tag' ? [] : ['note: snapshots.retire is "delete" in this config: nothing is tagged, so the expire rule has nothing to match until it is "tag"']),
          ].join('\n'),
        );
      }),
    );
}
