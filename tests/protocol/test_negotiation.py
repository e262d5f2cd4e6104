"""protocol/negotiation.py: the Origin allow-list and subprotocol selection, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snow_rt_py.protocol.headers import Headers
from snow_rt_py.protocol.negotiation import (
    OriginPolicy,
    check_subprotocol_names,
    offered_subprotocols,
    select_subprotocol,
)


def origin(value: str | None) -> Headers:
    return Headers([] if value is None else [("Origin", value)])


POLICY = OriginPolicy(["https://app.example.com", "http://127.0.0.1:8000", "https://*.example.org", "null"])


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example.com",
        "HTTPS://APP.Example.COM",  # ASCII case-insensitive
        "http://127.0.0.1:8000",
        "https://a.example.org",
        "https://a.b.example.org",  # any depth of subdomain
        "null",
        None,  # no Origin: allowed unless require_origin
    ],
)
def test_allowed_origins(value: str | None) -> None:
    assert POLICY.check(origin(value)) is None


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.test",
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "http://127.0.0.1:8001",
        "https://example.org",  # the wildcard is for subdomains only
        "http://a.example.org",
        "https://a.example.org:444",
        "https://evilexample.org",  # not a subdomain: no dot before the suffix
        "https://x@a.example.org",
        "https://a.example.org.evil.test",
        "",
    ],
)
def test_refused_origins(value: str) -> None:
    why = POLICY.check(origin(value))
    assert why is not None and "is not allowed" in why


def test_require_origin_refuses_a_request_without_one_and_none_means_any_origin() -> None:
    assert OriginPolicy(["https://a.test"], require_origin=True).check(origin(None)) == "an Origin header is required"
    anyone = OriginPolicy(None, require_origin=True)
    assert anyone.check(origin("https://whatever.test")) is None
    assert anyone.check(origin(None)) == "an Origin header is required"


@pytest.mark.parametrize("bad", ["example.com", "https://", "https://a.example.com/path", "https://a.*.com", "*"])
def test_policy_entries_that_are_not_origins_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        OriginPolicy([bad])


def test_subprotocol_selection_follows_the_server_preference_among_those_offered() -> None:
    headers = Headers([("Sec-WebSocket-Protocol", "chat, chat.v2"), ("Sec-WebSocket-Protocol", "mqtt")])
    offered = offered_subprotocols(headers)
    assert offered == ["chat", "chat.v2", "mqtt"]
    assert select_subprotocol(offered, ["chat.v2", "chat"]) == "chat.v2"
    assert select_subprotocol(offered, ["mqtt"]) == "mqtt"
    assert select_subprotocol(offered, ["CHAT"]) is None  # case-sensitive
    assert select_subprotocol([], ["chat"]) is None
    assert offered_subprotocols(Headers()) == []
    assert offered_subprotocols(Headers([("Sec-WebSocket-Protocol", " , bad token,ok")])) == ["ok"]


@given(offered=st.lists(st.sampled_from(["a", "b", "c", "d"])), supported=st.lists(st.sampled_from("abcde")))
def test_the_selected_subprotocol_was_offered_and_is_the_first_supported_one(
    offered: list[str], supported: list[str]
) -> None:
    chosen = select_subprotocol(offered, supported)
    both = [name for name in supported if name in offered]
    assert chosen == (both[0] if both else None)


def test_subprotocol_names_must_be_tokens() -> None:
    assert check_subprotocol_names(["chat", "v1.json"]) == ["chat", "v1.json"]
    with pytest.raises(ValueError, match="is not a token"):
        check_subprotocol_names(["two words"])
