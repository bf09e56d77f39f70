/**
 * Prometheus metrics (prom-client), one registry per server so several servers in one process
 * (tests, benchmarks) do not mix their numbers. Served at `GET /metrics`.
 *
 * Names: `polyphony_connections`, `polyphony_documents_loaded`, `polyphony_events_received_total`
 * (rate() of it is events per second), `polyphony_messages_delivered_total`, `polyphony_fanout_seconds`
 * (receipt of a message to its events being handed to every other connection's socket),
 * `polyphony_storage_seconds{op}` and `polyphony_refusals_total{reason}`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** The server's metric handles. */
export interface ServerMetrics {
  readonly registry: Registry
  readonly connections: Gauge
  readonly documentsLoaded: Gauge
  readonly eventsReceived: Counter
  readonly messagesDelivered: Counter
  readonly fanoutSeconds: Histogram
  readonly storageSeconds: Histogram<'op'>
  readonly storageErrors: Counter<'op'>
  readonly refusals: Counter<'reason'>
}

/** A fresh registry with every server metric; `processMetrics` adds prom-client's defaults. */
export function createMetrics(processMetrics = false): ServerMetrics {
  const registry = new Registry()
  if (processMetrics) collectDefaultMetrics({ register: registry })
  return {
    registry,
    connections: new Gauge({
      name: 'polyphony_connections',
      help: 'Open WebSocket connections (authenticated or not)',
      registers: [registry],
    }),
    documentsLoaded: new Gauge({
      name: 'polyphony_documents_loaded',
      help: 'Documents held in memory',
      registers: [registry],
    }),
    eventsReceived: new Counter({
      name: 'polyphony_events_received_total',
      help: 'Events (UTF-16 units inserted or deleted) integrated from clients',
      registers: [registry],
    }),
    messagesDelivered: new Counter({
      name: 'polyphony_messages_delivered_total',
      help: 'Messages sent to clients',
      registers: [registry],
    }),
    fanoutSeconds: new Histogram({
      name: 'polyphony_fanout_seconds',
      help: 'From receiving a message to handing its events to the other connections',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    storageSeconds: new Histogram({
      name: 'polyphony_storage_seconds',
      help: 'Storage operation latency',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    storageErrors: new Counter({
      name: 'polyphony_storage_errors_total',
      help: 'Storage operations that failed (each attempt of a retried write counts)',
      labelNames: ['op'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'polyphony_refusals_total',
      help: 'Connections or messages refused, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
  }
}
