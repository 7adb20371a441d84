// A small QMP (QEMU Machine Protocol) client over a unix socket: greeting and capabilities
// negotiation, commands matched to replies by id (so concurrent callers never get each other's
// answers), per-command timeouts, an event stream, and a close that fails whatever is pending.
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { QmpCommandMap, QmpCommandName, QmpVersion } from './qmp-types.ts';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** An error reply from QEMU ({"error": {"class", "desc"}}). */
export class QmpError extends Error {
  readonly errorClass: string;
  readonly command: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
    this.errorClass = errorClass;
    this.command = command;
  }
}

export interface QmpConnectOptions {
  /** Keep retrying while the socket does not exist yet or refuses (QEMU still starting). */
  timeoutMs?: number;
  /** Default timeout of each command. */
  commandTimeoutMs?: number;
}

export interface ExecuteOptions {
  timeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface QmpMessage {
  QMP?: { version: QmpVersion; capabilities: string[] };
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
  id?: number | string;
}

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  readonly path: string;
  version: QmpVersion | undefined;
  private readonly socket: Socket;
  private readonly pending = new Map<number, Pending>();
  private readonly commandTimeoutMs: number;
  private nextId = 1;
  private buffer = '';
  private closedError: Error | undefined;
  private greeting: ((msg: QmpMessage) => void) | undefined;

  private constructor(path: string, socket: Socket, commandTimeoutMs: number) {
    super();
    this.path = path;
    this.socket = socket;
    this.commandTimeoutMs = commandTimeoutMs;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error(`QMP connection to ${path} closed`)));
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      try {
        const socket = await openSocket(path);
        const client = new QmpClient(path, socket, opts.commandTimeoutMs ?? 30_000);
        try {
          await client.handshake(Math.max(1000, deadline - Date.now()));
        } catch (err) {
          client.close();
          throw err;
        }
        return client;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const retriable = code === 'ENOENT' || code === 'ECONNREFUSED';
        if (!retriable || Date.now() > deadline) {
          throw new Error(`cannot connect to QMP at ${path}: ${(err as Error).message}`, { cause: err });
        }
        await delay(50);
      }
    }
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await new Promise<QmpMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no QMP greeting')), timeoutMs);
      this.greeting = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
      this.once('close', () => {
        clearTimeout(timer);
        reject(this.closedError ?? new Error('closed before greeting'));
      });
    });
    this.version = greeting.QMP?.version;
    await this.execute('qmp_capabilities');
  }

  /** Runs a command from the typed map. */
  execute<K extends QmpCommandName>(
    command: K,
    args?: QmpCommandMap[K]['args'],
    opts: ExecuteOptions = {},
  ): Promise<QmpCommandMap[K]['ret']> {
    return this.executeUntyped(command, args as Record<string, unknown> | undefined, opts) as Promise<QmpCommandMap[K]['ret']>;
  }

  /** Runs any command; the caller checks the shape of the result. */
  executeUntyped(command: string, args?: Record<string, unknown>, opts: ExecuteOptions = {}): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve, reject, timer });
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(JSON.stringify(msg) + '\n');
    });
  }

  /** Resolves with the next event named `name` that satisfies `match`. */
  waitForEvent(name: string, timeoutMs: number, match: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name || !match(e)) return;
        cleanup();
        resolve(e);
      };
      const onClose = () => {
        cleanup();
        reject(this.closedError ?? new Error('QMP closed'));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no QMP event ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      this.on('event', onEvent);
      this.once('close', onClose);
    });
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  close(): void {
    this.fail(new Error(`QMP connection to ${this.path} closed by client`));
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: QmpMessage;
    try {
      msg = JSON.parse(line) as QmpMessage;
    } catch {
      return; // QEMU only sends JSON objects; ignore anything else rather than die
    }
    if (msg.QMP) {
      this.greeting?.(msg);
      this.greeting = undefined;
      return;
    }
    if (msg.event) {
      this.emit('event', { event: msg.event, data: msg.data, timestamp: msg.timestamp });
      return;
    }
    const id = typeof msg.id === 'number' ? msg.id : Number(msg.id);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new QmpError(p.command, msg.error.class, msg.error.desc));
    else p.resolve(msg.return);
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`QMP ${p.command}: ${err.message}`));
    }
    this.pending.clear();
    this.emit('close');
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
