"""Which HAVE and DROP claims a tracker link sends, and in which order."""

from syncfs.claims import ClaimSender
from syncfs.protocol.messages import Drop, Have


def test_haves_go_before_drops_and_each_once_per_link():
    s = ClaimSender()
    out = s.due([Have("a", {"p": 1})], [("b", {"p": 2}, 1)])
    assert out == [Have("a", {"p": 1}), Drop("b", {"p": 2})]
    assert s.due([Have("a", {"p": 1})], [("b", {"p": 2}, 1)]) == []
    assert s.due([Have("a", {"p": 2})], []) == [Have("a", {"p": 2})]  # a newer version is news


def test_a_drop_asked_again_after_a_refusal_is_sent_again():
    s = ClaimSender()
    assert s.due([], [("b", {"p": 2}, 1)]) == [Drop("b", {"p": 2})]
    assert s.due([], []) == []  # refused: no longer pending
    assert s.due([], [("b", {"p": 2}, 2)]) == [Drop("b", {"p": 2})]  # the same version, a new request


def test_a_new_link_sends_everything_pending():
    pending = ([Have("a", {"p": 1})], [("b", {"p": 2}, 1)])
    ClaimSender().due(*pending)  # sent on a link that broke since
    assert ClaimSender().due(*pending) == [Have("a", {"p": 1}), Drop("b", {"p": 2})]
