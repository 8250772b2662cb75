"""The spool that keeps record text out of memory gives every record back unchanged."""

from farol_data.spool import Spool


def test_records_come_back_by_offset_and_in_order():
    spool = Spool()
    records = [{"i": i, "text": "Estádio São Luís " * i} for i in range(50)]
    offsets = [spool.add(r) for r in records[:25]]
    assert spool.get(offsets[3]) == records[3]  # a read between writes must not lose a write
    offsets += [spool.add(r) for r in records[25:]]
    assert [spool.get(o) for o in reversed(offsets)] == records[::-1]
    assert [line for line in spool] == list(spool.lines(offsets))
    assert spool.count == 50
    spool.close()
