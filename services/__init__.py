"""The three motcua services: intake, processing and metrics."""
