/**
 * Process, heap, event-loop and GC metrics, under the names prom-client's default metrics use (so existing Node.js
 * dashboards work): read when scraped, except GC pauses, which a PerformanceObserver adds to a histogram as they
 * happen. One set per server; `stop()` disconnects the observers.
 */
import { monitorEventLoopDelay, PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { FAST_SECONDS, type MetricsRegistry } from './metrics.js';

const GC_KINDS = ['minor', 'major', 'incremental', 'weakcb'] as const;
type GcKind = (typeof GC_KINDS)[number];

function gcKind(kind: number | undefined): GcKind | undefined {
  switch (kind) {
    case constants.NODE_PERFORMANCE_GC_MINOR:
      return 'minor';
    case constants.NODE_PERFORMANCE_GC_MAJOR:
      return 'major';
    case constants.NODE_PERFORMANCE_GC_INCREMENTAL:
      return 'incremental';
    case constants.NODE_PERFORMANCE_GC_WEAKCB:
      return 'weakcb';
    default:
      return undefined;
  }
}

export function registerProcessMetrics(registry: MetricsRegistry, version: string): { stop(): void } {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  registry.gauge('herald_build_info', 'Always 1; the labels say which Herald and Node.js this process runs.', () => [
    [{ version, nodejs: process.version }, 1],
  ]);
  registry.gauge('process_start_time_seconds', 'When the process started, in seconds since the Unix epoch.', () => startSeconds);
  registry.gauge('process_cpu_user_seconds_total', 'CPU time spent in user mode, in seconds.', () => process.cpuUsage().user / 1e6, 'counter');
  registry.gauge('process_cpu_system_seconds_total', 'CPU time spent in the kernel, in seconds.', () => process.cpuUsage().system / 1e6, 'counter');
  registry.gauge('process_resident_memory_bytes', 'Resident memory (RSS), in bytes.', () => process.memoryUsage.rss());
  registry.gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes.', () => process.memoryUsage().heapTotal);
  registry.gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', () => process.memoryUsage().heapUsed);
  registry.gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript (Buffers included), in bytes.', () => process.memoryUsage().external);

  // Event-loop delay, sampled every 10 ms by libuv's timer: what a client's message waits on a busy node. The
  // figures cover the time since the previous scrape (the histogram is reset after each), as prom-client does.
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let last = { mean: 0, p50: 0, p99: 0, max: 0 };
  const read = (): typeof last => {
    // A scrape renders the four gauges in order: the first (mean) reads the histogram and resets it.
    if (delay.count > 0) last = { mean: delay.mean / 1e9, p50: delay.percentile(50) / 1e9, p99: delay.percentile(99) / 1e9, max: delay.max / 1e9 };
    delay.reset();
    return last;
  };
  for (const stat of ['mean', 'p50', 'p99', 'max'] as const) {
    registry.gauge(`nodejs_eventloop_lag_${stat}_seconds`, `Event-loop delay since the last scrape: its ${stat}, in seconds.`, () =>
      stat === 'mean' ? read()[stat] : last[stat],
    );
  }

  const gc = registry.histogramFamily('nodejs_gc_duration_seconds', 'Garbage-collection pauses, in seconds, by kind.', 'kind', GC_KINDS, FAST_SECONDS);
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = gcKind((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind);
      if (kind) gc.of(kind).observe(entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop: () => {
      observer.disconnect();
      delay.disable();
    },
  };
}
