"""The renderer and the in-memory metrics: property tests, and promtool parses every output."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from metrics.promtool import check_metrics, parses

from chatmail_services import metrics
from chatmail_services.metrics import Registry

names = st.from_regex(r"\Achatmail_[a-z][a-z0-9_]{0,20}\Z")
label_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z").filter(lambda n: n != "le")
# any text, with the three characters that need escaping well represented
label_values = st.text(st.characters(blacklist_categories=("Cs",)) | st.sampled_from('\\"\n'))


def unescape_label(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append({"n": "\n", "\\": "\\", '"': '"'}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@given(label_values)
def test_label_escaping_round_trips(value):
    escaped = metrics.escape_label(value)
    assert "\n" not in escaped
    assert unescape_label(escaped) == value
    # no unescaped quote left to end the value early
    assert all(escaped[i - 1] == "\\" for i, c in enumerate(escaped) if c == '"')


@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_help_has_no_line_break(text):
    assert "\n" not in metrics.escape_help(text)


@given(st.one_of(st.integers(-(2**60), 2**60), st.floats(allow_nan=True)))
def test_values_parse_back(value):
    text = metrics.format_value(value)
    parsed = float(text.replace("+Inf", "inf").replace("-Inf", "-inf"))
    assert (math.isnan(parsed) and math.isnan(value)) or parsed == float(value)


@given(
    name=names,
    help_text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
    label=label_names,
    values=st.lists(label_values, max_size=5, unique=True),
    counts=st.lists(st.integers(0, 1000), min_size=5, max_size=5),
)
def test_rendered_counter_and_gauge_parse_with_promtool(name, help_text, label, values, counts):
    registry = Registry()
    counter = registry.counter(name, help_text or "x", (label,))
    gauge = registry.gauge(name + "_level", "a gauge")
    for value, count in zip(values, counts, strict=False):
        counter.inc(value, amount=count)
    gauge.set(counts[0] / 7)
    text = registry.render()
    result = check_metrics(text)
    assert parses(result), text + result.stdout + result.stderr
    assert text.count(f"# TYPE {name}_total counter\n") == 1
    assert len([ln for ln in text.splitlines() if ln.startswith(name + "_total{")]) == len(values)


@given(
    buckets=st.lists(st.floats(0.0001, 100, allow_nan=False), min_size=1, max_size=8, unique=True),
    observations=st.lists(st.floats(0, 200, allow_nan=False), max_size=30),
)
def test_histogram_buckets_are_cumulative_and_parse(buckets, observations):
    registry = Registry()
    hist = registry.histogram("chatmail_test_seconds", "a histogram", buckets)
    for value in observations:
        hist.observe(value)
    text = registry.render()
    result = check_metrics(text)
    assert result.returncode == 0, text + result.stdout + result.stderr
    family = hist.family()
    bucket_counts = [s.value for s in family.samples if s.suffix == "_bucket"]
    assert bucket_counts == sorted(bucket_counts)
    assert family.samples[-2].suffix == "_sum" and family.samples[-1].suffix == "_count"
    assert bucket_counts[-1] == family.samples[-1].value == len(observations)
    assert family.samples[-3].labels == (("le", "+Inf"),)
    for bound, count in zip(sorted(buckets), bucket_counts, strict=False):
        assert count == sum(1 for value in observations if value <= bound)


def test_promtool_refuses_a_broken_file():
    """The check can fail: a sample line without a value does not parse."""
    assert not parses(check_metrics("# TYPE chatmail_x counter\nchatmail_x_total\n"))
    assert parses(
        check_metrics(
            "# HELP chatmail_x_total x\n# TYPE chatmail_x_total counter\nchatmail_x_total 1\n"
        )
    )


@pytest.mark.parametrize("bad", ["9lives", "a-b", "", "a b"])
def test_bad_metric_names_are_refused(bad):
    with pytest.raises(ValueError, match="not a metric name"):
        Registry().counter(bad, "x")


@pytest.mark.parametrize("bad", ["le", "__x", "a-b"])
def test_bad_label_names_are_refused(bad):
    with pytest.raises(ValueError, match="not a label name"):
        Registry().counter("chatmail_x", "x", (bad,))


def test_wrong_number_of_label_values_is_refused():
    counter = Registry().counter("chatmail_x", "x", ("a", "b"))
    with pytest.raises(ValueError, match="wants labels"):
        counter.inc("only one")


def test_a_metric_made_twice_is_refused():
    registry = Registry()
    registry.counter("chatmail_x", "x")
    with pytest.raises(ValueError, match="made twice"):
        registry.gauge("chatmail_x", "x")


def test_counter_does_not_go_down():
    with pytest.raises(ValueError):
        Registry().counter("chatmail_x", "x").inc(amount=-1)


def test_increments_from_many_threads_are_all_counted():
    counter = Registry().counter("chatmail_x", "x", ("kind",))
    hist = Registry().histogram("chatmail_y_seconds", "y")

    def work() -> None:
        for _ in range(20000):
            counter.inc("a")
            hist.observe(0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value("a") == 80000
    assert hist.count() == 80000


def test_declared_labels_show_as_zero():
    registry = Registry()
    registry.counter("chatmail_x", "x", ("outcome",)).declare("accepted")
    assert 'chatmail_x_total{outcome="accepted"} 0\n' in registry.render()


def test_sampled_metrics_are_read_when_rendered():
    registry = Registry()
    length = [3]
    registry.sampled("chatmail_x_queue_length", "x", lambda: length[0])
    registry.sampled("chatmail_x_dropped", "x", lambda: 7, kind="counter")
    assert "chatmail_x_queue_length 3\n" in registry.render()
    length[0] = 5
    text = registry.render()
    assert "chatmail_x_queue_length 5\n" in text
    assert "# TYPE chatmail_x_dropped_total counter\nchatmail_x_dropped_total 7\n" in text
    assert check_metrics(text).returncode == 0
