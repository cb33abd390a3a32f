-- Apply job metrics a stopping worker gathered and no finish call carried (core/worker/metrics.py).
-- ARGV: the metrics text.
apply_metric_deltas(ARGV[1])
return 1
