// Leader election on a coordination.k8s.io/v1 Lease, following client-go's leaderelection:
// - a candidate takes the Lease when it does not exist, has no holder, or its holder has not renewed
//   it for leaseDuration as measured on OUR clock since we last saw the record change (no trust in
//   the other replica's clock);
// - every write carries the observed resourceVersion, so two candidates cannot both win (409);
// - the leader renews every retryPeriod; if it cannot renew within renewDeadline it steps down
//   (its term signal aborts) before anybody else can take over (renewDeadline < leaseDuration);
// - on a graceful stop the leader releases the Lease (empty holder) so a standby takes over at once.
import { KubeClient, Resources } from './client.ts';
import { isConflict, isAlreadyExists, type KubeObject } from './rest.ts';
import { jitter } from './backoff.ts';
import { realClock, sleep, type Clock } from './clock.ts';
import { errMessage } from './informer.ts';
import type { OperatorMetrics } from './metrics.ts';
import { logger, type Logger } from '../util/log.ts';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Release the Lease when run()'s signal aborts while leading. Default true. */
  releaseOnCancel?: boolean;
  /** Called when we become leader; `signal` aborts when this term ends (lost, or stopped). */
  onStartedLeading(signal: AbortSignal): void;
  onStoppedLeading?(): void;
  onNewLeader?(identity: string): void;
  metrics?: OperatorMetrics;
  clock?: Clock;
  log?: Logger;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  readonly identity: string;
  private readonly o: Required<Pick<LeaderElectionOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs' | 'releaseOnCancel'>> & LeaderElectionOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private observedRecord = '';
  private observedTime = 0;
  private leaderId = '';
  /** The Lease as our last successful write left it: a leader renews from it without a GET
   *  (client-go's fast path). A conflict means someone else wrote it: the next attempt reads. */
  private held: Lease | undefined;
  private leading = false;

  constructor(opts: LeaderElectionOptions) {
    this.o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, releaseOnCancel: true, ...opts };
    if (this.o.renewDeadlineMs >= this.o.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration');
    if (this.o.retryPeriodMs >= this.o.renewDeadlineMs) throw new Error('retryPeriod must be shorter than renewDeadline');
    this.identity = opts.identity;
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? logger('leader-election', { lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.o.metrics?.setLeader(opts.name, false);
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The last holder we observed ('' if none). */
  getLeader(): string {
    return this.leaderId;
  }

  /** Campaigns, leads, and campaigns again after losing, until `signal` aborts; then releases. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!(await this.acquire(signal))) break;
      await this.lead(signal);
    }
    this.log.info('leader election stopped');
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    this.log.info('attempting to acquire leader lease');
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew(signal)) return true;
      await sleep(jitter(this.o.retryPeriodMs, 1.2), signal, this.clock);
    }
    return false;
  }

  private async lead(signal: AbortSignal): Promise<void> {
    const term = new AbortController();
    this.setLeading(true);
    this.log.info('became leader');
    try {
      this.o.onStartedLeading(term.signal);
    } catch (err) {
      this.log.error('onStartedLeading threw', { err: errMessage(err) });
    }
    let lastRenew = this.clock.now();
    let lost = false;
    while (!signal.aborted) {
      await sleep(this.o.retryPeriodMs, signal, this.clock);
      if (signal.aborted) break;
      const renewed = await this.tryAcquireOrRenew(signal, this.o.renewDeadlineMs - (this.clock.now() - lastRenew));
      if (renewed) {
        lastRenew = this.clock.now();
        continue;
      }
      // Someone else holds it (we were too slow once) or we ran out of time to renew.
      if ((this.leaderId && this.leaderId !== this.identity) || this.clock.now() - lastRenew >= this.o.renewDeadlineMs) {
        lost = true;
        break;
      }
    }
    term.abort();
    this.setLeading(false);
    if (lost) this.log.warn('leader lease lost', { newLeader: this.leaderId });
    else if (this.o.releaseOnCancel) await this.release();
    try {
      this.o.onStoppedLeading?.();
    } catch (err) {
      this.log.error('onStoppedLeading threw', { err: errMessage(err) });
    }
  }

  private setLeading(v: boolean): void {
    this.leading = v;
    this.o.metrics?.setLeader(this.o.name, v);
  }

  /** One attempt; returns true if we hold the Lease afterwards. Never throws. */
  private async tryAcquireOrRenew(outer: AbortSignal, budgetMs = this.o.renewDeadlineMs): Promise<boolean> {
    const signal = AbortSignal.any([outer, AbortSignal.timeout(Math.max(100, budgetMs))]);
    const { client, namespace, name } = this.o;
    const durationS = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    const nowMs = this.clock.now();
    const now = microTime(Date.now());
    const held = this.held;
    this.held = undefined;
    try {
      const lease = held ?? await client.tryGet<Lease>(Resources.lease, namespace, name, signal);
      if (!lease) {
        this.held = await client.create<Lease>(Resources.lease, {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: durationS, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        }, { signal });
        this.observe(this.identity, nowMs, 'created');
        return true;
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      this.observe(holder, nowMs, `${holder}|${spec.renewTime}|${lease.metadata?.resourceVersion}`);
      const heldMs = (spec.leaseDurationSeconds ?? durationS) * 1000;
      if (holder && holder !== this.identity && this.observedTime + heldMs > nowMs) return false;
      const ours = holder === this.identity;
      this.held = await client.update<Lease>(Resources.lease, {
        ...lease,
        spec: {
          holderIdentity: this.identity,
          leaseDurationSeconds: durationS,
          acquireTime: ours ? spec.acquireTime ?? now : now,
          renewTime: now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (ours ? 0 : 1),
        },
      }, signal);
      this.observe(this.identity, nowMs, 'renewed');
      return true;
    } catch (err) {
      if (!isConflict(err) && !isAlreadyExists(err) && !outer.aborted) {
        this.log.warn('lease acquire/renew failed', { err: errMessage(err) });
      }
      return false;
    }
  }

  private observe(holder: string, nowMs: number, record: string): void {
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedTime = nowMs;
    }
    if (holder !== this.leaderId) {
      this.leaderId = holder;
      if (holder) this.log.info('new leader observed', { leader: holder });
      try {
        if (holder) this.o.onNewLeader?.(holder);
      } catch (err) {
        this.log.error('onNewLeader threw', { err: errMessage(err) });
      }
    }
  }

  private async release(): Promise<void> {
    const { client, namespace, name } = this.o;
    this.held = undefined;
    const signal = AbortSignal.timeout(this.o.renewDeadlineMs);
    try {
      const lease = await client.tryGet<Lease>(Resources.lease, namespace, name, signal);
      if (!lease || lease.spec?.holderIdentity !== this.identity) {
        this.log.info('leader lease not held by us any more; nothing to release', { holder: lease?.spec?.holderIdentity ?? '' });
        return;
      }
      const now = microTime(Date.now());
      await client.update<Lease>(Resources.lease, {
        ...lease,
        spec: { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: lease.spec.leaseTransitions ?? 0 },
      }, signal);
      this.log.info('released leader lease');
    } catch (err) {
      this.log.warn('failed to release leader lease', { err: errMessage(err) });
    }
  }
}
