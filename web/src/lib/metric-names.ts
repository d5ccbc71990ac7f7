// The ONE place that knows the supervisor's metric names (GET /metrics, Prometheus text) and the
// labels the health panel reads. Each entry lists accepted names, first match wins, so the panel
// keeps working while names settle. Adjust here only.

export const METRIC_NAMES = {
  /** counter: records a stage received */
  recordsIn: ['sluice_records_in_total', 'sluice_stage_records_in_total', 'sluice_pipeline_records_in_total'],
  /** counter: records a stage emitted (a source: produced; a sink: written) */
  recordsOut: ['sluice_records_out_total', 'sluice_stage_records_out_total', 'sluice_pipeline_records_out_total'],
  /** counter: records sent to the dead-letter sink */
  rejected: ['sluice_records_rejected_total', 'sluice_rejected_total', 'sluice_pipeline_records_rejected_total'],
  /** gauge: consumer lag, per topic partition */
  lag: ['sluice_consumer_lag', 'sluice_consumer_lag_records', 'sluice_kafka_consumer_lag'],
  /** counter: pipeline restarts by the supervisor */
  restarts: ['sluice_pipeline_restarts_total', 'sluice_restarts_total'],
} as const;

/** Label naming the pipeline (Kafka Connect calls it a connector). */
export const PIPELINE_LABELS = ['pipeline', 'connector'] as const;
/** Label naming the stage within a pipeline. */
export const STAGE_LABELS = ['stage'] as const;
/** Label giving a stage's kind (source / transform / sink), when the supervisor adds it. */
export const KIND_LABELS = ['kind', 'stage_kind'] as const;
/** Stage names of a pipeline's dead-letter sink: listed after the chain, never its source or sink. */
export const DEAD_LETTER_STAGES = ['dead_letter', 'dead-letter', 'dlq'] as const;
