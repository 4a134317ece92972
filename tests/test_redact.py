"""No credential reaches a repr, an exception or a log line."""

from __future__ import annotations

import logging

import pytest

from agent_guard._redact import redact_url
from agent_guard.exceptions import GrantError, StoreUnavailable
from agent_guard.jwks import RemoteKeySet
from agent_guard.stores import RedisGrantStore

SECRETS = ("hunter2", "s3cr3t", "alice")


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:1/0?password=hunter2",
    "redis://alice:hunter2@127.0.0.1:1/0",
    "redis://:hunter2@127.0.0.1:1/0?password=s3cr3t&db=0",
    "rediss://alice:hunter2@[::1]:1/0",
    "unix:///tmp/redis.sock?password=hunter2",
])
def test_redis_store_never_prints_credentials(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """repr, StoreUnavailable and the warning log name the server, never the password or user."""
    store = RedisGrantStore(url, timeout_s=0.2)
    texts = [repr(store), str(store)]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(StoreUnavailable) as info:
            store.consume("run", [0])
        texts += [str(info.value), repr(info.value)]
        with pytest.raises(StoreUnavailable) as again:
            store.is_active("run")
        texts.append(str(again.value))
    texts.append(caplog.text)
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


def test_remote_key_set_repr_has_no_userinfo() -> None:
    """RemoteKeySet's repr and its fetch error drop userinfo and query."""
    keys = RemoteKeySet("http://alice:hunter2@127.0.0.1:9/jwks.json?token=s3cr3t", timeout_s=0.2)
    with pytest.raises(GrantError) as info:
        keys.get("nope")
    for text in (repr(keys), str(keys.last_error), str(info.value)):
        for secret in SECRETS:
            assert secret not in text, text


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://alice:pw@host:6379/0?password=x", "redis://***@host:6379/0?***"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("https://[::1]:8443/jwks.json", "https://[::1]:8443/jwks.json"),
    ("redis://host:notaport/0", "<unparseable URL>"),
])
def test_redact_url(url: str, shown: str) -> None:
    """Userinfo and query are replaced; a URL that cannot be parsed is not echoed at all."""
    assert redact_url(url) == shown
