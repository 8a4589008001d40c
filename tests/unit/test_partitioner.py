"""The hub's cached partitioner places every key where aiokafka's (and Java's) default does."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from hub.broker import keyed_partitioner


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_default_partitioner(key: bytes, count: int) -> None:
    """A record keyed by a unit or an episode lands on the partition any Kafka client picks."""
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert keyed_partitioner(key, partitions, partitions) == expected
    assert keyed_partitioner(key, partitions, partitions) == expected  # and again, from the cache


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [(b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
     (b"abc", 479470107)],
)  # fmt: skip
def test_java_client_vectors(key: bytes, java_murmur2: int) -> None:
    """Kafka's own murmur2 test vectors (UtilsTest), placed as the Java client places them."""
    for count in (1, 3, 6, 7):
        partitions = list(range(count))
        assert keyed_partitioner(key, partitions, []) == (java_murmur2 & 0x7FFFFFFF) % count
