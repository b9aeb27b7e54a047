"""Counters, gauges and histograms in memory, rendered in the Prometheus text format.

Each service keeps one `Registry`; the hot path only increments (a lock held for an addition,
no I/O). `textfile.Publisher` writes the rendered registry to the node exporter's textfile
directory every few seconds and at shutdown. Label values are fixed words chosen by the code
(a verdict, a reason, a rule), never an address, a token or an IP.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Seconds; from 100 µs (a cached lookup) to 10 s (a stuck disk).
DEFAULT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0, 10.0)

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One line of a family: the name's suffix (`_bucket`, `_sum`, ...), labels, value."""

    suffix: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class Family:
    """A metric family as rendered: `kind` is counter, gauge or histogram."""

    name: str
    kind: str
    help: str
    samples: tuple[Sample, ...]


def format_value(value: float) -> str:
    """A sample value: integers without a point, `+Inf`, `-Inf`, `NaN`, else Python's repr."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(families: Iterable[Family]) -> str:
    """The text exposition format (version 0.0.4): HELP, TYPE, then the samples of each family."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            labels = ",".join(f'{key}="{escape_label(val)}"' for key, val in sample.labels)
            shown = f"{{{labels}}}" if labels else ""
            lines.append(f"{family.name}{sample.suffix}{shown} {format_value(sample.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _check_names(name: str, labels: Sequence[str]) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"not a metric name: {name!r}")
    for label in labels:
        if not LABEL_RE.match(label) or label.startswith("__") or label == "le":
            raise ValueError(f"not a label name: {label!r}")


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        _check_names(name, labels)
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, values: Sequence[str]) -> Labels:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name}: wants labels {self.label_names}, got {tuple(values)}")
        return tuple(zip(self.label_names, values, strict=True))

    def family(self) -> Family:
        raise NotImplementedError


class Counter(_Metric):
    """A count that only goes up; `inc(*label_values)`. Pre-declared label values show as 0."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[Labels, float] = {} if labels else {(): 0.0}

    def declare(self, *values: str) -> Counter:
        """Show this label combination as 0 before it happens (so rate() sees its start)."""
        key = self._key(values)
        with self._lock:
            self._values.setdefault(key, 0.0)
        return self

    def inc(self, *values: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter does not go down")
        key = self._key(values)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *values: str) -> float:
        with self._lock:
            return self._values.get(self._key(values), 0.0)

    def family(self) -> Family:
        with self._lock:
            items = sorted(self._values.items())
        samples = tuple(Sample("", key, val) for key, val in items)
        # text format 0.0.4: HELP and TYPE name the sample, `_total` included
        return Family(self.name + "_total", self.kind, self.help, samples)


class Gauge(_Metric):
    """A value that goes up and down: `set`, `inc`, `dec`."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[Labels, float] = {} if labels else {(): 0.0}

    def set(self, value: float, *values: str) -> None:
        key = self._key(values)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, *values: str, amount: float = 1.0) -> None:
        key = self._key(values)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, *values: str, amount: float = 1.0) -> None:
        self.inc(*values, amount=-amount)

    def value(self, *values: str) -> float:
        with self._lock:
            return self._values.get(self._key(values), 0.0)

    def family(self) -> Family:
        with self._lock:
            items = sorted(self._values.items())
        samples = tuple(Sample("", key, val) for key, val in items)
        return Family(self.name, self.kind, self.help, samples)


class Histogram(_Metric):
    """Observations counted in cumulative buckets (`le`), with their sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help_text, ())
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds) or any(math.isnan(b) for b in bounds):
            raise ValueError(f"{name}: buckets must be distinct numbers")
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)  # the first bound >= value
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def count(self) -> int:
        with self._lock:
            return sum(self._counts)

    def family(self) -> Family:
        with self._lock:
            counts, total = list(self._counts), self._sum
        samples = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
            running += count
            samples.append(Sample("_bucket", (("le", format_value(bound)),), running))
        samples += [Sample("_sum", (), total), Sample("_count", (), running)]
        return Family(self.name, self.kind, self.help, tuple(samples))


class Sampled(_Metric):
    """A gauge or counter read from `read()` when rendered (a queue's length, a total kept
    by its owner): nothing to do on the hot path at all."""

    def __init__(self, name: str, help_text: str, kind: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text, ())
        if kind not in ("gauge", "counter"):
            raise ValueError(f"{name}: a sampled metric is a gauge or a counter")
        self.kind = kind
        self._read = read

    def family(self) -> Family:
        name = self.name + "_total" if self.kind == "counter" else self.name
        return Family(name, self.kind, self.help, (Sample("", (), float(self._read())),))


class Registry:
    """The metrics of one process, in the order they were made."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _add(self, metric: _Metric) -> _Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} made twice")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labels))  # type: ignore[return-value]

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, labels))  # type: ignore[return-value]

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        return self._add(Histogram(name, help_text, buckets))  # type: ignore[return-value]

    def sampled(
        self, name: str, help_text: str, read: Callable[[], float], kind: str = "gauge"
    ) -> Sampled:
        return self._add(Sampled(name, help_text, kind, read))  # type: ignore[return-value]

    def families(self) -> list[Family]:
        with self._lock:
            metrics = list(self._metrics.values())
        return [metric.family() for metric in metrics]

    def render(self) -> str:
        return render(self.families())
