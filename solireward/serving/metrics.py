"""Prometheus text exposition (format 0.0.4) of the server's counters and histograms, without a dependency."""

from __future__ import annotations

import bisect
import threading
from typing import Any, Iterable

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PREFIX = "solireward"
POOL_METRICS = (("workers_alive", "gauge", "Decoding worker processes running."),
                ("workers_ready", "gauge", "Decoding workers ready for videos."),
                ("rebuilds", "counter", "Decoding workers that died and were replaced."),
                ("items_retried", "counter", "Videos sent to a fresh worker after theirs died holding them."),
                ("items_crashed", "counter", "Videos failed after their decoding ended several workers in a row."))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs)
    return "{" + text + "}" if text else ""


class Histogram:
    """Cumulative-bucket histogram of one label set."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets, self.counts, self.total, self.n = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: tuple[tuple[str, str], ...]) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append(f"{name}_bucket{_labels(labels + (('le', f'{bound:g}'),))} {running}")
        out.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {self.n}")
        out.append(f"{name}_sum{_labels(labels)} {self.total:.6g}")
        out.append(f"{name}_count{_labels(labels)} {self.n}")
        return out


class Metrics:
    """Requests, items, item errors by kind, batch sizes, latencies and queue depth; thread-safe."""

    def __init__(self, max_batch_size: int) -> None:
        self.max_batch_size = max_batch_size
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.items: dict[str, int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.ignored_fields: dict[tuple[str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(tuple(b for b in BATCH_BUCKETS if b < max_batch_size) + (max_batch_size,))
        self.batch_seconds = Histogram(LATENCY_BUCKETS)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (endpoint, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def scored(self, endpoint: str, n_items: int, error_kinds: Iterable[str]) -> None:
        with self._lock:
            self.items[endpoint] = self.items.get(endpoint, 0) + n_items
            for kind in error_kinds:
                key = (endpoint, kind)
                self.errors[key] = self.errors.get(key, 0) + 1

    def ignored(self, endpoint: str, field: str) -> None:
        """A request carried `field`, which the served models do not read (a fixed set of names)."""
        with self._lock:
            key = (endpoint, field)
            self.ignored_fields[key] = self.ignored_fields.get(key, 0) + 1

    def batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(size)
            self.batch_seconds.observe(seconds)

    def mean_batch_fill(self) -> float | None:
        """Mean videos per batch / max_batch_size, or None before the first batch."""
        with self._lock:
            n = self.batch_size.n
            return self.batch_size.total / n / self.max_batch_size if n else None

    def render(self, queued: int, pool: dict[str, Any] | None = None) -> str:
        """The Prometheus text of every metric; `queued`: the videos being decoded or waiting for a batch now;
        `pool`: the decoding pool's :meth:`~solireward.serving.pool.WorkerPool.status`."""
        p = PREFIX
        with self._lock:
            lines = [f"# HELP {p}_requests_total HTTP requests by endpoint and status code.",
                     f"# TYPE {p}_requests_total counter"]
            lines += [f"{p}_requests_total{_labels((('endpoint', e), ('status', s)))} {n}"
                      for (e, s), n in sorted(self.requests.items())]
            lines += [f"# HELP {p}_items_total Videos received for scoring, by endpoint.",
                      f"# TYPE {p}_items_total counter"]
            lines += [f"{p}_items_total{_labels((('endpoint', e),))} {n}" for e, n in sorted(self.items.items())]
            lines += [f"# HELP {p}_item_errors_total Videos that could not be scored, by endpoint and kind "
                      "(path, video, frames, encoding, crash, worker, model, shutdown).",
                      f"# TYPE {p}_item_errors_total counter"]
            lines += [f"{p}_item_errors_total{_labels((('endpoint', e), ('kind', k)))} {n}"
                      for (e, k), n in sorted(self.errors.items())]
            lines += [f"# HELP {p}_ignored_fields_total Requests carrying a field the models do not read "
                      "(e.g. condition_images), by endpoint and field.",
                      f"# TYPE {p}_ignored_fields_total counter"]
            lines += [f"{p}_ignored_fields_total{_labels((('endpoint', e), ('field', f)))} {n}"
                      for (e, f), n in sorted(self.ignored_fields.items())]
            lines += [f"# HELP {p}_request_seconds Request latency by endpoint.",
                      f"# TYPE {p}_request_seconds histogram"]
            for endpoint, histogram in sorted(self.latency.items()):
                lines += histogram.lines(f"{p}_request_seconds", (("endpoint", endpoint),))
            lines += [f"# HELP {p}_batch_size Videos per forward pass (of at most {self.max_batch_size}).",
                      f"# TYPE {p}_batch_size histogram"]
            lines += self.batch_size.lines(f"{p}_batch_size", ())
            lines += [f"# HELP {p}_batch_seconds Time to score one batch with every model.",
                      f"# TYPE {p}_batch_seconds histogram"]
            lines += self.batch_seconds.lines(f"{p}_batch_seconds", ())
            lines += [f"# HELP {p}_queued_items Videos being decoded or waiting for a batch.",
                      f"# TYPE {p}_queued_items gauge", f"{p}_queued_items {queued}"]
        for key, kind, text in POOL_METRICS if pool is not None else ():
            name = f"{p}_{key}_total" if kind == "counter" else f"{p}_{key}"
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {pool[key]}"]
        return "\n".join(lines) + "\n"
