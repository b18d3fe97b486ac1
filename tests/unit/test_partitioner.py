"""The cached partitioner puts every key where aiokafka's (and the Java client's) would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from shared.kafka import producer_settings


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_default_partitioner(key: bytes, count: int) -> None:
    partitions = list(range(count))
    cached = producer_settings("x", "y")["partitioner"]
    # Twice: once computed, once remembered.
    assert cached(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)
    assert cached(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)
