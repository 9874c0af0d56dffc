from pictograph.ids import IdGenerator, id_time_ms


def test_ids_are_unique_increasing_and_fit_53_bits() -> None:
    generator = IdGenerator(node=5)
    ids = [generator.next() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert max(ids) < 2**53


def test_two_nodes_never_collide_in_the_same_millisecond() -> None:
    a, b = IdGenerator(1), IdGenerator(2)
    assert not {a.next() for _ in range(5000)} & {b.next() for _ in range(5000)}


def test_id_time_is_recoverable() -> None:
    import time

    before = time.time() * 1000
    value = IdGenerator(0).next()
    assert before - 1 <= id_time_ms(value) <= time.time() * 1000 + 1
