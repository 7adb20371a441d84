// Prometheus metrics under controller-runtime's names, so existing dashboards and alerts for Go
// operators work unchanged. One Registry per process (or per test manager); other modules add
// their own metrics to `registry`.
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Workqueue, WorkqueueMetricsSink } from './workqueue.ts';
import type { RestClientMetricsSink } from './rest.ts';

// controller-runtime's reconcile_time buckets and client-go's workqueue latency buckets.
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
  1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60];
const QUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];

export type ReconcileResultLabel = 'success' | 'error' | 'requeue' | 'requeue_after';

export interface ControllerMetrics {
  reconciled(result: ReconcileResultLabel, seconds: number, low?: boolean): void;
  error(): void;
  terminalError(): void;
  panic(): void;
  activeWorkers(delta: number): void;
  maxConcurrent(n: number): void;
}

export class OperatorMetrics {
  readonly registry: Registry;
  private readonly reconcileTotal: Counter<'controller' | 'result'>;
  private readonly reconcileErrors: Counter<'controller'>;
  private readonly reconcilePanics: Counter<'controller'>;
  private readonly terminalErrors: Counter<'controller'>;
  private readonly reconcileTime: Histogram<'controller'>;
  private readonly activeWorkersGauge: Gauge<'controller'>;
  private readonly maxConcurrentGauge: Gauge<'controller'>;
  private readonly qDepth: Gauge<'name' | 'controller'>;
  private readonly qAdds: Counter<'name' | 'controller'>;
  private readonly qLatency: Histogram<'name' | 'controller'>;
  private readonly qWork: Histogram<'name' | 'controller'>;
  private readonly qRetries: Counter<'name' | 'controller'>;
  private readonly qLatencyByPriority: Histogram<'name' | 'priority'>;
  private readonly reconcileTimeByPriority: Histogram<'controller' | 'priority'>;
  private readonly leaderStatus: Gauge<'name'>;
  private readonly restRequests: Counter<'host' | 'method' | 'code'>;
  private readonly restLatency: Histogram<'host' | 'verb'>;
  private readonly restLimiter: Histogram<'host'>;
  private readonly queues = new Map<string, Workqueue>();

  constructor(opts: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const registry = opts.registry ?? new Registry();
    this.registry = registry;
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.reconcileTotal = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Total number of reconciliations per controller', labelNames: ['controller', 'result'], registers });
    this.reconcileErrors = new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Total number of reconciliation errors per controller', labelNames: ['controller'], registers });
    this.reconcilePanics = new Counter({ name: 'controller_runtime_reconcile_panics_total', help: 'Total number of reconciliation panics (unexpected exceptions) per controller', labelNames: ['controller'], registers });
    this.terminalErrors = new Counter({ name: 'controller_runtime_terminal_reconcile_errors_total', help: 'Total number of terminal reconciliation errors per controller', labelNames: ['controller'], registers });
    this.reconcileTime = new Histogram({ name: 'controller_runtime_reconcile_time_seconds', help: 'Length of time per reconciliation per controller', labelNames: ['controller'], buckets: RECONCILE_BUCKETS, registers });
    this.activeWorkersGauge = new Gauge({ name: 'controller_runtime_active_workers', help: 'Number of currently used workers per controller', labelNames: ['controller'], registers });
    this.maxConcurrentGauge = new Gauge({ name: 'controller_runtime_max_concurrent_reconciles', help: 'Maximum number of concurrent reconciles per controller', labelNames: ['controller'], registers });
    const qLabels = ['name', 'controller'] as const;
    this.qDepth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames: qLabels, registers });
    this.qAdds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames: qLabels, registers });
    this.qLatency = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long in seconds an item stays in workqueue before being requested', labelNames: qLabels, buckets: QUEUE_BUCKETS, registers });
    this.qWork = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long in seconds processing an item from workqueue takes', labelNames: qLabels, buckets: QUEUE_BUCKETS, registers });
    // Ours, beside controller-runtime's: a burst of new objects (low priority) must not hide how
    // long changes of objects in flight wait and take.
    this.qLatencyByPriority = new Histogram({ name: 'cloudnet_workqueue_queue_duration_seconds', help: 'How long an item waited in the workqueue, by priority (low: new objects)', labelNames: ['name', 'priority'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120], registers });
    this.reconcileTimeByPriority = new Histogram({ name: 'cloudnet_reconcile_time_seconds', help: 'Length of a reconcile, by the priority it was queued at', labelNames: ['controller', 'priority'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers });
    this.qRetries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames: qLabels, registers });
    const queues = this.queues;
    new Gauge({
      name: 'workqueue_unfinished_work_seconds', labelNames: qLabels, registers,
      help: 'How many seconds of work has been done that is in progress and hasn\'t been observed by work_duration',
      collect() {
        this.reset();
        for (const [name, q] of queues) this.set({ name, controller: name }, q.unfinishedWorkSeconds());
      },
    });
    new Gauge({
      name: 'workqueue_longest_running_processor_seconds', labelNames: qLabels, registers,
      help: 'How many seconds has the longest running processor for workqueue been running',
      collect() {
        this.reset();
        for (const [name, q] of queues) this.set({ name, controller: name }, q.longestRunningProcessorSeconds());
      },
    });
    // client-go's names (k8s.io/client-go/tools/metrics), so API load per cluster shows as usual.
    this.restRequests = new Counter({ name: 'rest_client_requests_total', help: 'Number of HTTP requests, partitioned by status code, method, and host', labelNames: ['host', 'method', 'code'], registers });
    this.restLatency = new Histogram({ name: 'rest_client_request_duration_seconds', help: 'Request latency in seconds, by verb and host', labelNames: ['host', 'verb'], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60], registers });
    this.restLimiter = new Histogram({ name: 'rest_client_rate_limiter_duration_seconds', help: 'Client side rate limiter latency in seconds, by host', labelNames: ['host'], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60], registers });
    this.leaderStatus = new Gauge({ name: 'leader_election_master_status', help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master', labelNames: ['name'], registers });
  }

  forController(controller: string): ControllerMetrics {
    // Series exist at 0 from the start, as in controller-runtime, so rate() works from the first error.
    for (const result of ['success', 'error', 'requeue', 'requeue_after'] as const) this.reconcileTotal.inc({ controller, result }, 0);
    this.reconcileErrors.inc({ controller }, 0);
    this.terminalErrors.inc({ controller }, 0);
    this.reconcilePanics.inc({ controller }, 0);
    return {
      reconciled: (result, seconds, low) => {
        this.reconcileTotal.inc({ controller, result });
        this.reconcileTime.observe({ controller }, seconds);
        this.reconcileTimeByPriority.observe({ controller, priority: low ? 'low' : 'normal' }, seconds);
      },
      error: () => this.reconcileErrors.inc({ controller }),
      terminalError: () => this.terminalErrors.inc({ controller }),
      panic: () => this.reconcilePanics.inc({ controller }),
      activeWorkers: (delta) => this.activeWorkersGauge.inc({ controller }, delta),
      maxConcurrent: (n) => this.maxConcurrentGauge.set({ controller }, n),
    };
  }

  /** Metrics hooks for a queue; controller-runtime labels queues with the controller's name. */
  forQueue(name: string): WorkqueueMetricsSink {
    const labels = { name, controller: name };
    // Counters appear at 0 before the first add, as in controller-runtime.
    this.qAdds.inc(labels, 0);
    this.qRetries.inc(labels, 0);
    this.qDepth.set(labels, 0);
    return {
      add: () => this.qAdds.inc(labels),
      depth: (n) => this.qDepth.set(labels, n),
      queueLatency: (s, low) => {
        this.qLatency.observe(labels, s);
        this.qLatencyByPriority.observe({ name, priority: low ? 'low' : 'normal' }, s);
      },
      workDuration: (s) => this.qWork.observe(labels, s),
      retry: () => this.qRetries.inc(labels),
    };
  }

  /** Lets the scrape-time gauges read the live queue (a new queue per leadership term replaces the old). */
  trackQueue(name: string, queue: Workqueue): void {
    this.queues.set(name, queue);
  }

  /** Hooks for the REST clients of every cluster this process talks to. */
  restClientSink(): RestClientMetricsSink {
    return {
      request: (host, method, code, seconds) => {
        this.restRequests.inc({ host, method, code });
        // Watches are long by design: their duration says nothing about latency.
        if (seconds < 60) this.restLatency.observe({ host, verb: method }, seconds);
      },
      rateLimiterWait: (host, seconds) => this.restLimiter.observe({ host }, seconds),
    };
  }

  setLeader(leaseName: string, isLeader: boolean): void {
    this.leaderStatus.set({ name: leaseName }, isLeader ? 1 : 0);
  }
}
