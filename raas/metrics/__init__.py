"""Metrics for the robot daemon: a shared-memory board the loop writes every cycle
(`publisher.MetricsPublisher`) and an exporter process that serves it as Prometheus metrics and
a live dashboard (`exporter`). See docs/metrics.md."""
