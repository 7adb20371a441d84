// Link state changes as Kubernetes-style Events (type, reason, message). The gateway reports
// through this interface; in a cluster it is backed by an Event recorder on the Site object, in
// tests by a JSON-lines file, and always by the log.
import { appendFile } from 'node:fs/promises';
import type { Logger } from '../util/log.ts';

export interface LinkEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  time: string;
}

export interface LinkEventSink {
  emit(e: LinkEvent): Promise<void>;
}

export class LogEventSink implements LinkEventSink {
  readonly #log: Logger;
  constructor(log: Logger) { this.#log = log; }
  async emit(e: LinkEvent): Promise<void> {
    this.#log[e.type === 'Warning' ? 'warn' : 'info']('link event', { eventType: e.type, reason: e.reason, message: e.message });
  }
}

export class FileEventSink implements LinkEventSink {
  readonly #path: string;
  constructor(path: string) { this.#path = path; }
  async emit(e: LinkEvent): Promise<void> {
    await appendFile(this.#path, `${JSON.stringify(e)}\n`);
  }
}

/** Fans out to several sinks; one failing sink (e.g. the API is down) does not stop the others. */
export class MultiEventSink implements LinkEventSink {
  readonly #sinks: LinkEventSink[];
  readonly #log: Logger | undefined;
  constructor(sinks: LinkEventSink[], log?: Logger) { this.#sinks = sinks; this.#log = log; }
  async emit(e: LinkEvent): Promise<void> {
    await Promise.all(this.#sinks.map((s) => s.emit(e).catch((err: unknown) => {
      this.#log?.warn('recording a link event failed', { reason: e.reason, error: String(err) });
    })));
  }
}
