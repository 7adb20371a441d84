// Structured JSON logging. Every reconcile logs with controller/namespace/name/reconcileID keys
// so that one migration's story can be pulled out of the operator's log with a single filter.
import winston from 'winston';

export type Logger = winston.Logger;

const level = process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info');

/** Keys whose values must never reach a log line (kubeconfigs, WireGuard private keys, tokens). */
const SECRET_KEYS = /^(kubeconfig|privateKey|private_key|token|password|key|cert|data)$/i;

const redact = winston.format((info) => {
  for (const k of Object.keys(info)) {
    if (SECRET_KEYS.test(k)) info[k] = '[redacted]';
  }
  return info;
});

export const rootLogger: Logger = winston.createLogger({
  level,
  format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
});

export function logger(component: string, fields: Record<string, string> = {}): Logger {
  return rootLogger.child({ component, ...fields });
}
