// The informer caches behind the WanMigration reconciler, and the watches that map their changes
// back to WanMigrations (controller-runtime's Watches with a mapping function):
//  - local cluster: VMs, VMIs, VMIMs (all namespaces, stripped: shapes.ts), the KubeVirt CR and
//    the two CA ConfigMaps (KubeVirt's namespace, each by name: RBAC grants them by resourceNames),
//    next to the WanMigration and Site informers;
//  - each Site's cluster, from the first reconcile whose target API answered: VMs, VMIs, VMIMs and
//    DataVolumes (in the Site's allowedNamespaces when it lists them, else in the target namespace
//    of each of its migrations: never across all namespaces), and
//    the KubeVirt CR and CA ConfigMaps in the Site's KubeVirt namespace.
// A VM or VMI change enqueues the migrations of that VM (an index on the WanMigration informer:
// source namespace/name, or Site/target namespace/name); a VMIM or DataVolume we created carries
// labels naming its migration; a KubeVirt CR or CA bundle change enqueues the unfinished
// migrations of that cluster; a Site spec change, those of the Site.
// Local caches start at the first reconcile, not with the manager, so that a cache the operator
// may not be allowed to watch (RBAC) never holds back readiness; reads then go to the API.
import type { Controller, MappedKey } from '../../kube/controller.ts';
import type { Manager } from '../../kube/manager.ts';
import type { KubeClient } from '../../kube/client.ts';
import type { Informer } from '../../kube/informer.ts';
import type { KubeObject } from '../../kube/rest.ts';
import type { ObjectKey } from '../../kube/types.ts';
import { CachedReader, liveReader, routedReader, type ObjectReader } from '../../kube/cached-reader.ts';
import type { Ref } from '../../kube/client.ts';
import { Res } from '../../api/resources.ts';
import { DEFAULT_KUBEVIRT_NAMESPACE, type Site } from '../../api/site.ts';
import { TERMINAL_PHASES, Phases, type Phase, type WanMigration } from '../../api/wanmigration.ts';
import type { MigrationCachesPort, MigrationReads } from '../deps.ts';
import { MIGRATION_NAME_ANNOTATION, MIGRATION_NAME_LABEL, MIGRATION_NAMESPACE_LABEL } from '../target-objects.ts';
import { KUBEVIRT_CA, KUBEVIRT_EXTERNAL_CA } from '../resources.ts';
import { Shapes } from './shapes.ts';
import { SingleFlight, TtlMemo } from './memo.ts';

const BY_SOURCE_VM = 'wanmigration/source-vm';
const BY_TARGET_VM = 'wanmigration/target-vm';
const BY_SITE = 'wanmigration/site';

/** Phases in which a change of the CA bundles matters (preflight and target preparation). */
const CA_PHASES: readonly Phase[] = [Phases.Pending, Phases.PreparingTarget];

/** The informers of one target namespace and the watches on them. */
interface NamespaceCaches {
  informers: Informer[];
  unwatch: Array<() => void>;
}

interface TargetCaches {
  client: KubeClient;
  reader: CachedReader;
  /** Namespaces with informers of VMs, VMIs, VMIMs and DataVolumes. */
  namespaces: Map<string, NamespaceCaches>;
  kubevirtNamespaces: Set<string>;
  unwatch: Array<() => void>;
  /** When namespaces no migration needs were last looked for (see sweep()). */
  sweptAtMs: number;
}

/** How often a Site's per-migration namespace caches are checked for ones no migration needs. */
const SWEEP_INTERVAL_MS = 60_000;

/**
 * Where the informers of a Site's migrations look: its allowed namespaces, or, when it lists none,
 * the target namespace of the migration asking (its own namespace, the only one such a Site
 * accepts). Never all namespaces: the peer's chart grants reads only where VMs may arrive, and
 * VM specs there can carry inline cloud-init data that is not ours to read.
 */
function targetNamespaces(site: Site, namespace: string | undefined): string[] {
  const allowed = site.spec.allowedNamespaces ?? [];
  if (allowed.length) return [...new Set(allowed)];
  return namespace ? [namespace] : [];
}

export interface MigrationCachesOptions {
  /** KubeVirt's namespace in the local cluster. Default `kubevirt`. */
  localKubevirtNamespace?: string;
  /** Bound on a read's wait for a cache doing its first list. Default 5 s. */
  syncWaitMs?: number;
  /**
   * How long a change of a watched object waits before its migration is reconciled, so that
   * changes close together (sender and receiver VMIM moving one step) make one status write.
   * Default 500 ms.
   */
  coalesceMs?: number;
  /** How often unused per-migration namespace caches of a peer are released. Default 60 s. */
  sweepIntervalMs?: number;
}

export class MigrationCaches implements MigrationCachesPort {
  private readonly manager: Manager;
  private readonly migrations: Informer;
  private readonly sites: Informer;
  private readonly localKubevirtNs: string;
  private readonly syncWaitMs: number | undefined;
  private readonly coalesceMs: number;
  private readonly sweepIntervalMs: number;
  private readonly local: CachedReader;
  private localStarted = false;
  private readonly targets = new Map<string, TargetCaches>();
  private controller: Controller | undefined;
  private readonly pendingWatches: Array<(c: Controller) => () => void> = [];
  private readonly memo = new TtlMemo();
  private readonly flights = new SingleFlight();

  constructor(manager: Manager, opts: MigrationCachesOptions = {}) {
    this.manager = manager;
    this.localKubevirtNs = opts.localKubevirtNamespace ?? DEFAULT_KUBEVIRT_NAMESPACE;
    this.syncWaitMs = opts.syncWaitMs;
    this.coalesceMs = opts.coalesceMs ?? 500;
    this.sweepIntervalMs = opts.sweepIntervalMs ?? SWEEP_INTERVAL_MS;
    this.migrations = manager.informer(Res.wanMigration);
    this.sites = manager.informer(Res.site);
    this.migrations.addIndexer(BY_SOURCE_VM, (o) => {
      const wm = o as unknown as WanMigration;
      return wm.spec?.vmName ? [`${wm.metadata.namespace}/${wm.spec.vmName}`] : [];
    });
    this.migrations.addIndexer(BY_TARGET_VM, (o) => {
      const wm = o as unknown as WanMigration;
      return wm.spec?.vmName ? [`${wm.spec.targetSite}/${wm.spec.targetNamespace}/${wm.spec.vmName}`] : [];
    });
    this.migrations.addIndexer(BY_SITE, (o) => {
      const site = (o as unknown as WanMigration).spec?.targetSite;
      return site ? [site] : [];
    });
    this.local = new CachedReader(manager.client, { syncWaitMs: opts.syncWaitMs });
    this.local.register(Res.wanMigration, this.migrations);
    this.local.register(Res.site, this.sites);
    // A Site's spec (kubeconfig, KubeVirt namespace) or its existence changed: its migrations look again.
    this.sites.addEventHandler({
      onAdd: (s) => this.enqueueSite(s.metadata?.name ?? ''),
      onDelete: (s) => { this.enqueueSite(s.metadata?.name ?? ''); void this.dropTarget(s.metadata?.name ?? ''); },
      onUpdate: (o, n) => {
        if (o !== n && (o.metadata?.generation !== n.metadata?.generation || o.metadata?.deletionTimestamp !== n.metadata?.deletionTimestamp)) this.enqueueSite(n.metadata?.name ?? '');
      },
    });
  }

  /** Connects the watches to the controller that reconciles WanMigrations (once it exists). */
  bind(controller: Controller): void {
    this.controller = controller;
    for (const w of this.pendingWatches.splice(0)) w(controller);
  }

  /** The unfinished migrations of `site` look again (e.g. its kubeconfig Secret rotated). */
  enqueueSite(site: string): void {
    for (const k of this.unfinished(this.migrations.byIndex(BY_SITE, site))) this.controller?.enqueue(k);
  }

  reads(opts: { fresh?: boolean } = {}): MigrationReads {
    this.startLocal();
    if (!opts.fresh) {
      return {
        live: false,
        local: this.local,
        target: (site, client, ns) => this.target(site, client, ns),
        remember: (key, ttlMs, ok, fn) => this.memo.get(key, ttlMs, ok, fn),
      };
    }
    const fresh = (cached: ObjectReader, client: KubeClient, kubevirtNs: string) => routedReader(cached, liveReader(client), (ref, ns) => isConfiguration(ref, ns, kubevirtNs));
    return {
      live: true,
      local: fresh(this.local, this.manager.client, this.localKubevirtNs),
      target: (site, client, ns) => fresh(this.target(site, client, ns), client, site.spec.kubevirtNamespace ?? DEFAULT_KUBEVIRT_NAMESPACE),
      remember: (key, ttlMs, ok, fn) => this.memo.get(key, ttlMs, ok, fn),
    };
  }

  once(key: string, version: string, fn: () => Promise<void>): Promise<void> {
    return this.flights.once(key, version, fn);
  }

  /** Informers of this kind and shape on the local cluster, for tests and metrics. */
  get readerStats(): { local: CachedReader['stats']; targets: Record<string, CachedReader['stats']> } {
    return { local: this.local.stats, targets: Object.fromEntries([...this.targets].map(([k, t]) => [k, t.reader.stats])) };
  }

  private startLocal(): void {
    if (this.localStarted) return;
    this.localStarted = true;
    const m = this.manager;
    const vms = m.informer(Res.vm, {}, m.client, Shapes.vm);
    const vmis = m.informer(Res.vmi, {}, m.client, Shapes.vmi);
    const vmims = m.informer(Res.vmim, {}, m.client, Shapes.vmim);
    const kv = m.informer(Res.kubevirt, { namespace: this.localKubevirtNs }, m.client, Shapes.kubevirt);
    const cas = this.caInformers(m.client, this.localKubevirtNs);
    this.local.register(Res.vm, vms);
    this.local.register(Res.vmi, vmis);
    this.local.register(Res.vmim, vmims);
    this.local.register(Res.kubevirt, kv, this.localKubevirtNs);
    for (const [name, inf] of cas) this.local.register(Res.configMap, inf, this.localKubevirtNs, name);
    const bySourceVM = (o: KubeObject) => this.unfinished(this.migrations.byIndex(BY_SOURCE_VM, `${o.metadata?.namespace}/${o.metadata?.name}`));
    this.watch(vms, bySourceVM);
    this.watch(vmis, bySourceVM);
    this.watch(vmims, byMigrationLabels);
    this.watch(kv, () => this.unfinished(this.migrations.list()));
    for (const inf of cas.values()) this.watch(inf, () => this.unfinished(this.migrations.list(), CA_PHASES));
  }

  /** One informer per CA ConfigMap (a metadata.name field selector), as RBAC grants them by name. */
  private caInformers(client: KubeClient, ns: string): Map<string, Informer> {
    return new Map([KUBEVIRT_CA, KUBEVIRT_EXTERNAL_CA].map((name) => [name,
      this.manager.informer(Res.configMap, { namespace: ns, fieldSelector: `metadata.name=${name}` }, client, Shapes.caConfigMap)]));
  }

  private target(site: Site, client: KubeClient, namespace: string | undefined): CachedReader {
    const name = site.metadata.name ?? '';
    let t = this.targets.get(name);
    if (t && t.client !== client) {
      // The kubeconfig Secret rotated: the old client is closed, and its caches with it.
      void this.dropTarget(name);
      t = undefined;
    }
    if (!t) {
      t = { client, reader: new CachedReader(client, { syncWaitMs: this.syncWaitMs }), namespaces: new Map(), kubevirtNamespaces: new Set(), unwatch: [], sweptAtMs: Date.now() };
      this.targets.set(name, t);
    }
    const wanted = targetNamespaces(site, namespace);
    if (Date.now() - t.sweptAtMs >= this.sweepIntervalMs) this.sweep(site, t, wanted);
    for (const ns of wanted) {
      if (t.namespaces.has(ns)) continue;
      const caches: NamespaceCaches = { informers: [], unwatch: [] };
      t.namespaces.set(ns, caches);
      const m = this.manager;
      const sel = { namespace: ns };
      const vms = m.informer(Res.vm, sel, client, Shapes.vm);
      const vmis = m.informer(Res.vmi, sel, client, Shapes.vmi);
      const vmims = m.informer(Res.vmim, sel, client, Shapes.vmim);
      const dvs = m.informer(Res.dataVolume, sel, client, Shapes.dataVolume);
      caches.informers.push(vms, vmis, vmims, dvs);
      t.reader.register(Res.vm, vms, ns);
      t.reader.register(Res.vmi, vmis, ns);
      t.reader.register(Res.vmim, vmims, ns);
      t.reader.register(Res.dataVolume, dvs, ns);
      const byTargetVM = (o: KubeObject) => this.unfinished(this.migrations.byIndex(BY_TARGET_VM, `${name}/${o.metadata?.namespace}/${o.metadata?.name}`));
      this.watch(vms, byTargetVM, caches);
      this.watch(vmis, byTargetVM, caches);
      this.watch(vmims, byMigrationLabels, caches);
      this.watch(dvs, byMigrationLabels, caches);
    }
    const kvNs = site.spec.kubevirtNamespace ?? DEFAULT_KUBEVIRT_NAMESPACE;
    if (!t.kubevirtNamespaces.has(kvNs)) {
      t.kubevirtNamespaces.add(kvNs);
      const kv = this.manager.informer(Res.kubevirt, { namespace: kvNs }, client, Shapes.kubevirt);
      t.reader.register(Res.kubevirt, kv, kvNs);
      this.watch(kv, () => this.unfinished(this.migrations.byIndex(BY_SITE, name)), t);
      for (const [caName, inf] of this.caInformers(client, kvNs)) {
        t.reader.register(Res.configMap, inf, kvNs, caName);
        this.watch(inf, () => this.unfinished(this.migrations.byIndex(BY_SITE, name), CA_PHASES), t);
      }
    }
    return t.reader;
  }

  /**
   * Releases the namespace caches of a Site that no unfinished migration needs any more: for a
   * Site without allowedNamespaces each migration's own namespace gets informers (one watch each
   * on the peer), and those would otherwise add up over every namespace that ever migrated there.
   * A later migration there starts them again; until then its reads go to the API.
   */
  private sweep(site: Site, t: TargetCaches, wanted: readonly string[]): void {
    t.sweptAtMs = Date.now();
    const keep = new Set(wanted);
    if (!site.spec.allowedNamespaces?.length) {
      for (const k of this.unfinished(this.migrations.byIndex(BY_SITE, site.metadata.name ?? ''))) {
        const wm = this.migrations.getByName(k.namespace, k.name) as unknown as WanMigration | undefined;
        if (wm?.spec?.targetNamespace) keep.add(wm.spec.targetNamespace);
      }
    }
    for (const [ns, caches] of t.namespaces) {
      if (keep.has(ns)) continue;
      t.namespaces.delete(ns);
      for (const u of caches.unwatch) u();
      for (const inf of caches.informers) {
        t.reader.unregister(inf);
        void this.manager.releaseInformer(inf);
      }
    }
  }

  private async dropTarget(site: string): Promise<void> {
    const t = this.targets.get(site);
    if (!t) return;
    this.targets.delete(site);
    for (const caches of t.namespaces.values()) for (const u of caches.unwatch) u();
    for (const u of t.unwatch) u();
    // Another Site may use the same kubeconfig Secret, hence the same client and informers.
    if (![...this.targets.values()].some((o) => o.client === t.client)) await this.manager.dropInformers(t.client);
  }

  private watch(informer: Informer, map: (o: KubeObject) => ObjectKey[], owner?: { unwatch: Array<() => void> }): void {
    const add = (c: Controller) => {
      const unwatch = c.watch({ informer, map, delayMs: this.coalesceMs });
      owner?.unwatch.push(unwatch);
      return unwatch;
    };
    if (this.controller) add(this.controller);
    else this.pendingWatches.push(add);
  }

  /**
   * Keys of the migrations that are not finished (optionally only in `phases`). Those that have
   * not started yet are low priority: a CA bundle or KubeVirt CR change that concerns hundreds of
   * new migrations must not put them ahead of the migrations in flight.
   */
  private unfinished(objs: KubeObject[], phases?: readonly Phase[]): MappedKey[] {
    const out: MappedKey[] = [];
    for (const o of objs) {
      const st = (o as unknown as WanMigration).status;
      const phase = st?.phase ?? Phases.Pending;
      if (TERMINAL_PHASES.includes(phase) && !o.metadata?.deletionTimestamp) continue;
      if (phases && !phases.includes(phase)) continue;
      out.push({ namespace: o.metadata?.namespace, name: o.metadata?.name ?? '', ...(st?.migrationID || o.metadata?.deletionTimestamp ? {} : { lowPriority: true }) });
    }
    return out;
  }
}

/**
 * Configuration no destructive decision rests on: Sites, KubeVirt CRs and the ConfigMaps of
 * KubeVirt's namespace (CA bundles). A fresh read takes them from the cache.
 */
function isConfiguration(ref: Ref, ns: string | undefined, kubevirtNs: string): boolean {
  if (ref.group === Res.site.group && ref.plural === Res.site.plural) return true;
  if (ref.group === Res.kubevirt.group && ref.plural === Res.kubevirt.plural) return true;
  return ref.group === '' && ref.plural === Res.configMap.plural && ns === kubevirtNs;
}

/**
 * VMIMs and DataVolumes we created name their WanMigration (owner references cannot cross
 * clusters): its namespace in a label, its full name in an annotation (the name label is shortened
 * beyond 63 characters; the label alone serves objects made before the annotation).
 */
function byMigrationLabels(o: KubeObject): ObjectKey[] {
  const md = o.metadata ?? {};
  const namespace = md.labels?.[MIGRATION_NAMESPACE_LABEL];
  const name = md.annotations?.[MIGRATION_NAME_ANNOTATION] ?? md.labels?.[MIGRATION_NAME_LABEL];
  return name && namespace ? [{ namespace, name }] : [];
}
