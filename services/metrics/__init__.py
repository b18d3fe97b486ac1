"""metrics: exact aggregates of status events, exposed to Prometheus."""
