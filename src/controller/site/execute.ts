// Carries out the Site planner's decisions: the link provider calls it asked for, then the
// finalizer, the status write and the Event.
import { isNotFound, type KubeObject } from '../../kube/rest.ts';
import { mergePatchFrom } from '../../kube/merge-patch.ts';
import { SITE_FINALIZER } from '../names.ts';
import { Res } from '../../api/resources.ts';
import type { Site } from '../../api/site.ts';
import type { SiteDeps } from '../site.ts';
import { siteFailure } from './observe.ts';
import type { SitePlan, SiteStep, SiteStepResults } from './plan.ts';

/** Runs the steps in order; the first one that throws ends them, and its error becomes `failure`. */
export async function runSiteSteps(deps: SiteDeps, site: Site, steps: readonly SiteStep[], signal: AbortSignal): Promise<SiteStepResults> {
  const r: SiteStepResults = {};
  const link = deps.link;
  if (!link) return r;
  try {
    for (const s of steps) {
      if (s.type === 'EnsureLink') r.link = await link.ensure({ site }, signal);
      else if (link.probe) r.measurements = await link.probe(site, signal);
    }
  } catch (e) {
    if (signal.aborted) throw e;
    r.failure = siteFailure(e);
  }
  return r;
}

export async function executeSitePlan(deps: SiteDeps, site: Site, p: SitePlan, signal: AbortSignal): Promise<void> {
  const obj = site as unknown as KubeObject;
  if (p.finalizer === 'Add') await deps.local.ensureFinalizer(Res.site, obj, SITE_FINALIZER, signal);
  if (p.status) {
    await deps.local.patchStatus(Res.site, undefined, site.metadata.name ?? '', mergePatchFrom(site.status ?? {}, p.status), signal).catch((e: unknown) => { if (!isNotFound(e)) throw e; });
  }
  for (const e of p.events) deps.events.event(site, e.type, e.reason, e.message);
  if (p.finalizer === 'Remove') await deps.local.removeFinalizer(Res.site, obj, SITE_FINALIZER, signal).catch((e: unknown) => { if (!isNotFound(e)) throw e; });
}
