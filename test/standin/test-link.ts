// A LinkProvider for tests that need to hold a migration in ConnectingLink: it reports the link
// Progressing while the WanMigration carries the hold annotation, Ready otherwise. It sets up no
// tunnel and says so (the real provider is issue 6's WireGuard link).
import type { LinkProvider, LinkRequest, StepReport } from '../../src/api/ports.ts';

export const HOLD_LINK_ANNOTATION = 'test.cloudnet.io/hold-link';

export class HoldableLink implements LinkProvider {
  async ensure(req: LinkRequest): Promise<StepReport> {
    if (req.migration?.metadata.annotations?.[HOLD_LINK_ANNOTATION] === 'true') {
      return { state: 'Progressing', reason: 'HeldByTest', message: `link held by ${HOLD_LINK_ANNOTATION}` };
    }
    return { state: 'Ready', reason: 'TestLink', message: 'test link provider: no tunnel is set up' };
  }
}
