"""Text searches answered in batches: the batcher's queueing (a fake search, so batches are
deterministic) and the real CatalogSearch giving each query of a batch what it gives it alone."""
import threading
import time
from collections import Counter

import numpy as np
import pytest

from unifashion.search.engine import TextQuery
from unifashion.errors import DataError
from unifashion.service.batching import TextSearchBatcher


class GatedSearch:
    """Answers each query with its text; the first call waits for `gate`, so later queries queue up."""

    def __init__(self):
        self.gate = threading.Event()
        self.calls: list[list[str]] = []

    def text_queries(self, queries):
        if not self.calls:
            self.gate.wait(10)
        self.calls.append([q.text for q in queries])
        if any(q.text == "bad" for q in queries):
            raise DataError("bad query")
        return [[q.text] * q.k for q in queries]


def ask(batcher, queries):
    out = {}

    def one(q):
        try:
            out[q.text] = batcher(q)
        except DataError as e:
            out[q.text] = e

    threads = [threading.Thread(target=one, args=(q,)) for q in queries]
    for t in threads:
        t.start()
        time.sleep(0.02)  # in this order into the queue
    return threads, out


def test_queries_that_wait_are_answered_in_one_batch_each_with_its_own_result():
    search = GatedSearch()
    batcher = TextSearchBatcher(search, max_batch=3)
    threads, out = ask(batcher, [TextQuery("first", 1)] + [TextQuery(f"q{i}", i + 1) for i in range(4)])
    search.gate.set()
    for t in threads:
        t.join(10)
    batcher.close()
    assert search.calls == [["first"], ["q0", "q1", "q2"], ["q3"]]  # no more than max_batch at once
    assert out["first"] == ["first"] and out["q2"] == ["q2"] * 3 and out["q3"] == ["q3"] * 4
    assert list(batcher.batch_sizes) == [1, 3, 1]


def test_a_bad_query_fails_alone():
    search = GatedSearch()
    batcher = TextSearchBatcher(search, max_batch=8)
    threads, out = ask(batcher, [TextQuery("first"), TextQuery("good", 2), TextQuery("bad"), TextQuery("fine", 1)])
    search.gate.set()
    for t in threads:
        t.join(10)
    batcher.close()
    assert isinstance(out["bad"], DataError) and str(out["bad"]) == "bad query"
    assert out["good"] == ["good", "good"] and out["fine"] == ["fine"]
    with pytest.raises(RuntimeError, match="closed"):
        batcher(TextQuery("late"))


def test_a_batch_gives_each_query_what_it_gets_alone(service_search):
    counts = Counter(item.category for item in service_search.index.items())
    common = counts.most_common(1)[0][0]
    assert counts[common] >= 3
    queries = [TextQuery("a red dress", 5), TextQuery("blue striped shirt", 3, (common,)),
               TextQuery("black shoes", 7), TextQuery("a green skirt", 2, (common,))]
    together = service_search.text_queries(queries)
    for q, hits in zip(queries, together):
        alone = service_search.text([q.text], q.k, q.categories)[0]
        assert len(hits) == q.k
        assert [h.item_id for h in hits] == [h.item_id for h in alone]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in alone], atol=1e-5)
        if q.categories:
            assert all(h.category in q.categories for h in hits)
    with pytest.raises(DataError, match="non-empty"):
        service_search.text_queries([TextQuery("fine"), TextQuery("  ")])
