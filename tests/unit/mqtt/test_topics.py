from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallel_isolation.identity import Identity
from parallel_isolation.mqtt.topics import (
    MAX_TOPIC_BYTES,
    TopicError,
    TopicNamespace,
    level_for_test,
    validate_filter,
    validate_topic,
)

NS = TopicNamespace("test/abcd1234/gw0")

# Valid publish topics: any text without NUL, wildcards or surrogates, not
# starting with '$'.  Empty levels ("a//b", "/a", "a/") are legal MQTT.
topic_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#")
topics = st.text(topic_chars, min_size=1, max_size=60).filter(lambda t: not t.startswith("$"))


@given(topics)
def test_strip_inverts_topic(topic: str) -> None:
    assert NS.strip(NS.topic(topic)) == topic


@given(st.text(topic_chars, min_size=0, max_size=20), st.text(topic_chars, min_size=0, max_size=20))
def test_prefix_inside_a_topic_is_never_removed(head: str, tail: str) -> None:
    # The seed's str.replace() would delete the embedded prefix; strip must not.
    topic = f"x{head}/{NS.prefix}/{tail}"
    assert NS.strip(NS.topic(topic)) == topic


@given(topics)
def test_foreign_topics_are_rejected_not_returned(topic: str) -> None:
    with pytest.raises(TopicError, match="outside the namespace"):
        NS.strip(topic)


def test_strip_removes_only_a_leading_prefix() -> None:
    doubled = f"{NS.prefix}/{NS.prefix}/fire"
    assert NS.strip(doubled) == f"{NS.prefix}/fire"
    with pytest.raises(TopicError, match="outside"):
        NS.strip(NS.prefix + "x/fire")  # same characters, different level
    with pytest.raises(TopicError, match="namespace root"):
        NS.strip(NS.prefix + "/")


@pytest.mark.parametrize(
    ("bare", "expected"),
    [
        ("#", "test/abcd1234/gw0/#"),
        ("system/+/health", "test/abcd1234/gw0/system/+/health"),
        ("frigate/events", "test/abcd1234/gw0/frigate/events"),
        ("+", "test/abcd1234/gw0/+"),
        ("$share/grp/fire/#", "$share/grp/test/abcd1234/gw0/fire/#"),
    ],
)
def test_filter_translation(bare: str, expected: str) -> None:
    assert NS.filter(bare) == expected


@pytest.mark.parametrize(
    ("topic", "match"),
    [
        ("", "must not be empty"),
        ("a\x00b", "NUL"),
        ("fire/+", "wildcard"),
        ("fire/#", "wildcard"),
        ("$SYS/broker", "reserved for the broker"),
        ("a" * (MAX_TOPIC_BYTES + 1), "bytes long"),
        ("bad\ud800", "not valid UTF-8"),
    ],
)
def test_invalid_publish_topics(topic: str, match: str) -> None:
    with pytest.raises(TopicError, match=match):
        validate_topic(topic)
    with pytest.raises(TopicError):
        NS.topic(topic)


def test_prefix_counts_toward_the_length_limit() -> None:
    fits_bare = "a" * (MAX_TOPIC_BYTES - 3)
    assert validate_topic(fits_bare) == fits_bare
    with pytest.raises(TopicError, match="bytes long"):
        NS.topic(fits_bare)


@pytest.mark.parametrize(
    ("topic_filter", "match"),
    [
        ("a/#/b", "'#' must be a whole level and the last"),
        ("a/b#", "'#' must be a whole level"),
        ("a/b+/c", r"'\+' must occupy a whole level"),
        ("$SYS/#", "broker topics"),
        ("", "must not be empty"),
    ],
)
def test_invalid_filters(topic_filter: str, match: str) -> None:
    with pytest.raises(TopicError, match=match):
        validate_filter(topic_filter)


@pytest.mark.parametrize("bad", ["$share//x", "$share/grp", "$share/g+/x"])
def test_bad_shared_subscriptions(bad: str) -> None:
    with pytest.raises(TopicError, match="shared subscription"):
        NS.filter(bad)


@pytest.mark.parametrize("prefix", ["", "a/", "/a", "a//b", "a/+", "$x"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(TopicError):
        TopicNamespace(prefix)


def test_worker_and_test_levels() -> None:
    ident = Identity.resolve(run_id="abcd1234", worker_id="gw4")
    worker = TopicNamespace.for_worker(ident)
    assert worker.prefix == "test/abcd1234/gw4"
    one = worker.for_test("tests/a.py::test_one")
    two = worker.for_test("tests/a.py::test_two")
    assert one.prefix == f"test/abcd1234/gw4/{level_for_test('tests/a.py::test_one')}"
    assert one != two
    assert worker.owns(one.topic("x"))
    assert not one.owns(two.topic("x"))
