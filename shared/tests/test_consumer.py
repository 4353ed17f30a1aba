"""The order a batch is handled in: as written, never reordering one partition."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from townflow_shared.consumer import in_arrival_order


def record(topic: str, partition: int, offset: int, timestamp: int) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=partition, offset=offset, timestamp=timestamp,
                          timestamp_type=0, key=None, value=b"", checksum=None, serialized_key_size=0,
                          serialized_value_size=0, headers=())


def test_a_fetch_grouped_by_partition_is_merged_back_into_write_order() -> None:
    dispatched = record("dispatch.task.dispatched.v1", 0, 7, timestamp=1000)
    later = record("dispatch.task.dispatched.v1", 0, 8, timestamp=1300)
    inspected = record("enforcement.inspection.done.v1", 1, 3, timestamp=1200)
    fetched = (inspected, dispatched, later)  # as a fetch returns them: partition by partition
    assert in_arrival_order(fetched) == [dispatched, inspected, later]


def test_one_partition_keeps_its_order_even_when_clocks_disagree() -> None:
    first = record("t", 0, 1, timestamp=2000)
    second = record("t", 0, 2, timestamp=1000)  # another producer's clock, behind
    other = record("u", 0, 5, timestamp=1500)
    ordered = in_arrival_order((first, second, other))
    assert ordered.index(first) < ordered.index(second)
    assert sorted(ordered, key=id) == sorted([first, second, other], key=id)


def test_a_single_partition_is_returned_as_it_came() -> None:
    records = [record("t", 2, n, timestamp=10 - n) for n in range(5)]
    assert in_arrival_order(records) == records
