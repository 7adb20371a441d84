// The sender's registered flows: one local listener per registered destination (the gateway
// redirects that flow to it, so the port names the flow), kept in step with the interceptor's
// redirects. Registering is idempotent (PUT semantics); changes are serialized, and a call returns
// only once the redirects are in place, so the operator knows the flow will be intercepted.
import net from 'node:net';
import { logger } from '../../util/log.ts';
import { flowKey, RegistrationError } from './flows.ts';
import type { FlowInterceptor, FlowOwner, FlowSettings, InterceptFlow, Registration } from './flows.ts';
import type { HostPort } from './net-util.ts';

const log = logger('relay-registry');

/** A registered flow as the sender's sessions see it. */
export interface RegisteredFlow {
  destination: HostPort;
  owner: FlowOwner;
  settings: FlowSettings;
  /** The cache window the migration gets: its cacheSizeMiB, at most the relay's cache. */
  cacheMiB: number;
}

export interface RegistrationState {
  owner: FlowOwner;
  settings: FlowSettings;
  /** What the relay applies where it differs from the request (a cache larger than the relay's). */
  effective: { cacheSizeMiB: number };
  /** localPort 0: not redirected (bypass). */
  flows: { destination: string; localPort: number }[];
  /**
   * Why the flows bypass the relay, when they do: the sender decided at the first registration
   * (RegistryOptions.bypass) that the relay would only slow them down. The gateway then programs
   * no redirect for them and they cross the site link as a plain migration would.
   */
  bypass?: string;
  registeredAt: string;
}

export interface RegistryOptions {
  /** Address the per-flow listeners bind to (redirected flows arrive there). */
  listenHost: string;
  /** The relay's shared cache, MiB (the largest cache window a migration can get). */
  cacheMiB: number;
  interceptor?: FlowInterceptor;
  /** A redirected connection of `flow` was accepted. */
  onAccept(socket: net.Socket, flow: RegisteredFlow): void;
  maxRegistrations?: number;
  /**
   * Asked once per migration, at its first registration: a reason to let its flows bypass the
   * relay (the link outruns it), or undefined. Kept for the migration's lifetime, so that the
   * operator's re-registrations never move a migration's flows on or off the relay mid-way.
   */
  bypass?(): string | undefined;
}

interface Entry {
  reg: Registration;
  registeredAt: string;
  bypass?: string;
  listeners: Map<string, { server: net.Server; port: number; flow: RegisteredFlow }>;
}

export class FlowRegistry {
  private readonly o: RegistryOptions;
  private readonly entries = new Map<string, Entry>();
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(o: RegistryOptions) {
    this.o = o;
  }

  /** Runs changes one at a time (each awaits listeners and the interceptor). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  put(reg: Registration): Promise<RegistrationState> {
    return this.serial(async () => {
      if (this.closed) throw new RegistrationError(503, 'relay stopping');
      const id = reg.owner.migrationID;
      for (const [other, e] of this.entries) {
        if (other === id) continue;
        const theirs = new Set(e.reg.destinations.map(flowKey));
        const clash = reg.destinations.find((d) => theirs.has(flowKey(d)));
        if (clash) throw new RegistrationError(409, `flow ${flowKey(clash)} is registered by migration ${e.reg.owner.namespace}/${e.reg.owner.name}`);
      }
      const prev = this.entries.get(id);
      if (!prev && this.entries.size >= (this.o.maxRegistrations ?? 256)) throw new RegistrationError(429, 'too many registered migrations');
      if (prev && (prev.reg.owner.namespace !== reg.owner.namespace || prev.reg.owner.name !== reg.owner.name)) {
        throw new RegistrationError(409, `migration ID ${id} is registered by ${prev.reg.owner.namespace}/${prev.reg.owner.name}`);
      }
      const entry: Entry = prev ?? { reg, registeredAt: new Date().toISOString(), listeners: new Map(), bypass: this.o.bypass?.() };
      // The operator re-registers on every reconcile: only a change is worth a log line.
      const changed = !prev || JSON.stringify([prev.reg.destinations, prev.reg.settings]) !== JSON.stringify([reg.destinations, reg.settings]);
      entry.reg = reg;
      const cacheMiB = Math.min(reg.settings.cacheSizeMiB, this.o.cacheMiB);
      const wanted = new Set(reg.destinations.map(flowKey));
      const removed: net.Server[] = [];
      for (const [k, l] of entry.listeners) {
        if (!wanted.has(k)) { removed.push(l.server); entry.listeners.delete(k); }
      }
      for (const d of entry.bypass ? [] : reg.destinations) {
        const k = flowKey(d);
        const flow: RegisteredFlow = { destination: d, owner: reg.owner, settings: reg.settings, cacheMiB };
        const have = entry.listeners.get(k);
        if (have) { have.flow = flow; continue; } // new settings apply to sessions opened from now on
        entry.listeners.set(k, await this.listen(entry, k, flow));
      }
      this.entries.set(id, entry);
      try {
        await this.applyRedirects();
      } catch (err) {
        // Never leave a registration the gateway does not redirect: drop it, and say why.
        this.entries.delete(id);
        for (const l of entry.listeners.values()) l.server.close();
        await this.applyRedirects().catch(() => undefined);
        throw new RegistrationError(500, `programming the interception failed: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        for (const s of removed) s.close();
      }
      if (changed) {
        log.info(entry.bypass ? 'flows registered to bypass the relay' : 'flows registered', {
          migration: `${reg.owner.namespace}/${reg.owner.name}`, migrationID: id, flows: [...wanted].join(','), settings: JSON.stringify(reg.settings), ...(entry.bypass ? { bypass: entry.bypass } : {}),
        });
      }
      return this.state(entry);
    });
  }

  delete(migrationID: string): Promise<boolean> {
    return this.serial(async () => {
      const e = this.entries.get(migrationID);
      if (!e) return false;
      this.entries.delete(migrationID);
      await this.applyRedirects();
      // Sessions already accepted keep running; only new connections of the flow pass through now.
      for (const l of e.listeners.values()) l.server.close();
      log.info('flows released', { migration: `${e.reg.owner.namespace}/${e.reg.owner.name}`, migrationID });
      return true;
    });
  }

  get(migrationID: string): RegistrationState | undefined {
    const e = this.entries.get(migrationID);
    return e ? this.state(e) : undefined;
  }

  list(): RegistrationState[] {
    return [...this.entries.values()].map((e) => this.state(e));
  }

  /** Removes every redirect and listener. */
  close(): Promise<void> {
    return this.serial(async () => {
      this.closed = true;
      for (const e of this.entries.values()) for (const l of e.listeners.values()) l.server.close();
      this.entries.clear();
      await this.o.interceptor?.close();
    });
  }

  private state(e: Entry): RegistrationState {
    return {
      owner: e.reg.owner,
      settings: e.reg.settings,
      effective: { cacheSizeMiB: Math.min(e.reg.settings.cacheSizeMiB, this.o.cacheMiB) },
      flows: e.bypass ? e.reg.destinations.map((d) => ({ destination: flowKey(d), localPort: 0 })) : [...e.listeners].map(([destination, l]) => ({ destination, localPort: l.port })),
      ...(e.bypass ? { bypass: e.bypass } : {}),
      registeredAt: e.registeredAt,
    };
  }

  private async listen(entry: Entry, key: string, flow: RegisteredFlow): Promise<{ server: net.Server; port: number; flow: RegisteredFlow }> {
    const holder = { server: undefined as unknown as net.Server, port: 0, flow };
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
      // The listener's current flow (settings may have been updated since it opened).
      const cur = entry.listeners.get(key);
      this.o.onAccept(s, cur?.server === server ? cur.flow : holder.flow);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.o.listenHost, () => { server.off('error', reject); resolve(); });
    });
    holder.server = server;
    holder.port = (server.address() as net.AddressInfo).port;
    return holder;
  }

  private async applyRedirects(): Promise<void> {
    const flows: InterceptFlow[] = [];
    for (const e of this.entries.values()) for (const l of e.listeners.values()) flows.push({ destination: l.flow.destination, localPort: l.port });
    await this.o.interceptor?.apply(flows);
  }
}
