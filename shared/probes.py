"""What a readiness check may say about why a service is not ready."""

from __future__ import annotations


class NotReady(Exception):
    """A readiness check's reason, shown as is on `/readyz`: it must name what is missing (a
    topic, a dependency), never a secret or personal data. Other exceptions show only their
    type."""
