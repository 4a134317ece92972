"""Workers that verify by JWKS: attach, unknown keys, rotation, a verify-only guard, RemoteKeySet, serve-jwks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _workers import lookup_plan
from cryptography.hazmat.primitives import serialization

from agent_guard import ConfigError, GrantError, Guard, KeySet, Plan, Step
from agent_guard.jwks import RemoteKeySet, serve_jwks
from agent_guard.testing import FakeClock

pytestmark = pytest.mark.redis

LOOKUP = ("crm_lookup", {"customer_id": "C-42"})


@pytest.fixture
def minter(wide_policy, issuer_keys, make_store, redis_url, clock):
    """The issuing process: signing keys, the policy, the shared Redis store."""
    return Guard(wide_policy, keys=issuer_keys, store=make_store(redis_url, clock=clock), clock=clock)


@pytest.fixture
def worker(issuer_keys, make_store, redis_url, clock):
    """A worker: public keys only (the issuer's JWKS) and the same Redis store."""
    return Guard(jwks=issuer_keys.jwks(), store=make_store(redis_url, clock=clock), clock=clock)


def test_verify_only_guard_cannot_mint(wide_policy, issuer_keys, worker_identity, make_store, redis_url) -> None:
    """A guard holding only public keys enforces but refuses to mint, with a ConfigError saying why."""
    with pytest.raises(ConfigError, match="only public keys"), Guard(
        wide_policy, jwks=issuer_keys.jwks(), store=make_store(redis_url)
    ).task(lookup_plan(1), identity=worker_identity):
        pass
    with pytest.raises(ConfigError, match="no policy"):
        Guard(jwks=issuer_keys.jwks()).task(lookup_plan(1), identity=worker_identity)
    assert all("d" not in jwk for jwk in issuer_keys.jwks()["keys"])


def test_attach_gives_the_worker_the_same_scope_budgets_and_revocation(minter, worker, worker_identity) -> None:
    """The attached task has the minter's scope; budgets are shared; the minter's revoke reaches the worker."""
    plan = Plan(goal="g", steps=[Step("crm_lookup", args={"customer_id": "C-42"}, max_calls=2),
                                 Step("send_email", args={"to": "alice@example.com", "body": {"any": True}})])
    with minter.task(plan, identity=worker_identity) as task:
        with worker.attach(task.grant) as attached:
            assert attached.owner is False and attached.id == task.id
            assert attached.scope.steps == task.scope.steps and attached.tools == task.tools
            assert attached.identity == worker_identity
            assert worker.decide(*LOOKUP).allowed
            assert worker.decide("crm_lookup", {"customer_id": "C-43"}).reason == "argument_mismatch"
            assert worker.decide("refund", {"amount": 1}).reason == "tool_not_in_scope"
            assert worker.decide("send_email", {"to": "alice@example.com", "body": "x", "bcc": "e@evil.test"}
                                 ).reason == "argument_not_allowed"
        assert minter.decide(*LOOKUP).allowed                  # the second of two lookups, in the minter
        with worker.attach(task.grant):                         # leaving the attach did not revoke the run
            assert worker.decide(*LOOKUP).reason == "budget_exhausted"
            task.revoke()
            assert worker.decide("send_email", {"to": "alice@example.com", "body": "x"}).reason == "revoked"


async def test_async_attach_and_decide(minter, worker, worker_identity) -> None:
    """The async task/attach/decide path uses redis.asyncio and shares the same run record."""
    async with minter.task(lookup_plan(3), identity=worker_identity) as task, worker.attach(task.grant):
        assert [(await worker.adecide(*LOOKUP)).allowed for _ in range(4)] == [True, True, True, False]
        assert (await worker.adecide(*LOOKUP)).reason == "budget_exhausted"
    with pytest.raises(GrantError) as info:
        async with worker.attach(task.grant):
            pass
    assert info.value.reason == "revoked"
    await minter.store.aclose()
    await worker.store.aclose()


def test_grant_signed_outside_the_jwks_is_invalid(minter, worker_identity, make_store, redis_url) -> None:
    """A worker whose JWKS lacks the signing key refuses to attach: GrantError with reason invalid_grant."""
    stranger = Guard(jwks=KeySet.generate().jwks(), store=make_store(redis_url))
    with minter.task(lookup_plan(1), identity=worker_identity) as task:
        with pytest.raises(GrantError) as info, stranger.attach(task.grant):
            pass
        assert info.value.reason == "invalid_grant"
        assert stranger.current_task() is task                 # the failed attach left the context as it was
    assert stranger.decide(*LOOKUP).reason == "no_grant"


async def test_grant_signed_outside_the_jwks_is_invalid_async(minter, worker_identity, make_store, redis_url) -> None:
    """The async attach fails the same way."""
    stranger = Guard(jwks=KeySet.generate().jwks(), store=make_store(redis_url))
    async with minter.task(lookup_plan(1), identity=worker_identity) as task:
        with pytest.raises(GrantError, match="outside the trusted key set"):
            async with stranger.attach(task.grant):
                pass
    await minter.store.aclose()


def test_rotation_keeps_old_grants_valid_until_expiry_or_retirement(
    minter, issuer_keys, worker_identity, make_store, redis_url, clock
) -> None:
    """After rotate(), new grants use the new kid; the JWKS keeps the old key; old grants work until exp."""
    old_kid = issuer_keys.current.kid
    with minter.task(lookup_plan(5), identity=worker_identity, ttl_s=120) as old_task:
        new_key = issuer_keys.rotate()
        assert new_key.kid != old_kid and issuer_keys.current.kid == new_key.kid
        jwks = issuer_keys.jwks()
        assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_key.kid}
        worker = Guard(jwks=jwks, store=make_store(redis_url, clock=clock), clock=clock)
        with minter.task(lookup_plan(5), identity=worker_identity, ttl_s=300) as new_task:
            assert json.loads(_b64(new_task.grant.split(".")[0]))["kid"] == new_key.kid
            assert json.loads(_b64(old_task.grant.split(".")[0]))["kid"] == old_kid
            for grant in (old_task.grant, new_task.grant):
                with worker.attach(grant):
                    assert worker.decide(*LOOKUP).allowed
            clock.advance(121)                                  # the old grant has expired; the new one has not
            with pytest.raises(GrantError) as info, worker.attach(old_task.grant):
                pass
            assert info.value.reason == "expired"
            with worker.attach(new_task.grant):
                assert worker.decide(*LOOKUP).allowed
            issuer_keys.retire(old_kid)                         # once nothing it signed is alive
            assert [k["kid"] for k in issuer_keys.jwks()["keys"]] == [new_key.kid]
            retired_view = Guard(jwks=issuer_keys.jwks(), store=make_store(redis_url), clock=clock)
            clock.now -= 121
            with pytest.raises(GrantError) as info, retired_view.attach(old_task.grant):
                pass
            assert info.value.reason == "invalid_grant"


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# -- serve_jwks + RemoteKeySet against a real HTTP endpoint ------------------------------------
def test_remote_key_set_fetches_caches_and_refreshes_on_unknown_kid(
    minter, issuer_keys, worker_identity, make_store, redis_url, clock
) -> None:
    """A worker with RemoteKeySet verifies grants; a rotated key is learned by a refresh on its unknown kid."""
    mono = FakeClock(0)
    with serve_jwks(issuer_keys) as server:
        remote = RemoteKeySet(server.url, cache_s=300, min_refresh_interval_s=5, clock=mono)
        worker = Guard(keys=remote, store=make_store(redis_url, clock=clock), clock=clock)
        with minter.task(lookup_plan(5), identity=worker_identity) as task:
            for _ in range(3):
                with worker.attach(task.grant):
                    assert worker.decide(*LOOKUP).allowed
        assert server.requests == 1 and remote.fetches == 1      # cached after the first fetch
        issuer_keys.rotate()
        mono.advance(6)
        with minter.task(lookup_plan(5), identity=worker_identity) as task2, worker.attach(task2.grant):
            assert worker.decide(*LOOKUP).allowed
        assert server.requests == 2 and issuer_keys.current.kid in remote.kids
        mono.advance(301)                                         # stale: the next lookup refetches
        with minter.task(lookup_plan(5), identity=worker_identity) as task3, worker.attach(task3.grant):
            pass
        assert server.requests == 3
        with pytest.raises(ConfigError, match="cannot mint"), worker.task(lookup_plan(1), identity=worker_identity):
            pass


def test_remote_key_set_rate_limits_refreshes_for_unknown_kids(issuer_keys, wide_policy, worker_identity) -> None:
    """A flood of grants with unknown kids causes at most one fetch per min_refresh_interval_s."""
    mono = FakeClock(0)
    attacker = Guard(wide_policy, keys=KeySet.generate())         # signs with keys no JWKS lists
    with serve_jwks(issuer_keys) as server:
        remote = RemoteKeySet(server.url, min_refresh_interval_s=30, clock=mono)
        worker = Guard(keys=remote)
        remote.refresh()
        assert server.requests == 1
        for _ in range(50):
            with attacker.task(lookup_plan(1), identity=worker_identity) as bogus:
                with pytest.raises(GrantError) as info, worker.attach(bogus.grant):
                    pass
                assert info.value.reason == "invalid_grant"
        assert server.requests == 2                               # one refresh for the first unknown kid only
        mono.advance(31)
        with (
            attacker.task(lookup_plan(1), identity=worker_identity) as bogus,
            pytest.raises(GrantError),
            worker.attach(bogus.grant),
        ):
            pass
        assert server.requests == 3


def test_remote_key_set_keeps_its_cache_when_a_fetch_fails(
    minter, issuer_keys, worker_identity, make_store, redis_url, clock
) -> None:
    """With the endpoint down, cached keys still verify (stale refresh fails); unknown kids fail closed."""
    mono = FakeClock(0)
    server = serve_jwks(issuer_keys)
    remote = RemoteKeySet(server.url, cache_s=60, min_refresh_interval_s=1, timeout_s=0.5, clock=mono)
    worker = Guard(keys=remote, store=make_store(redis_url, clock=clock), clock=clock)
    assert remote.refresh() is True
    server.close()
    mono.advance(61)                                              # stale, and the endpoint is gone
    with minter.task(lookup_plan(5), identity=worker_identity) as task, worker.attach(task.grant):
        assert worker.decide(*LOOKUP).allowed
    assert remote.fetches == 2 and remote.last_error is not None
    assert remote.kids == issuer_keys.kids                        # cache not cleared by the failed fetch
    issuer_keys.rotate()
    mono.advance(2)
    with minter.task(lookup_plan(5), identity=worker_identity) as task2:
        with pytest.raises(GrantError) as info, worker.attach(task2.grant):
            pass
        assert info.value.reason == "invalid_grant"


def test_remote_key_set_without_any_fetch_fails_closed() -> None:
    """If the JWKS was never fetched and cannot be, verification fails with invalid_grant, naming the cause."""
    from _workers import free_port

    remote = RemoteKeySet(f"http://127.0.0.1:{free_port()}/.well-known/jwks.json", timeout_s=0.5)
    with pytest.raises(GrantError, match="JWKS could not be fetched") as info:
        remote.get("any-kid")
    assert info.value.reason == "invalid_grant"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/jwks.json", "data:,{}", "http://"])
def test_remote_key_set_accepts_only_http_urls(url: str) -> None:
    """Only http(s) URLs with a host are accepted."""
    with pytest.raises(ConfigError, match="url"):
        RemoteKeySet(url)


def test_remote_key_set_refuses_redirects(issuer_keys) -> None:
    """A JWKS URL that redirects (even to a valid JWKS) is treated as a failed fetch."""
    with serve_jwks(issuer_keys) as target:

        class Redirect(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", target.url)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            remote = RemoteKeySet(f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json")
            assert remote.refresh() is False and "302" in (remote.last_error or "")
            assert target.requests == 0
        finally:
            httpd.shutdown()
            httpd.server_close()


def test_jwks_server_serves_only_public_keys(issuer_keys) -> None:
    """GET /.well-known/jwks.json returns the public JWKS; other paths are 404; a live KeySet shows rotation."""
    with serve_jwks(issuer_keys) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "application/jwk-set+json"
            body = json.loads(resp.read())
        assert body == issuer_keys.jwks() and all("d" not in k for k in body["keys"])
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url.replace("jwks.json", "other"), timeout=5)
        assert info.value.code == 404
        info.value.close()
        issuer_keys.rotate()
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert len(json.loads(resp.read())["keys"]) == 2


@pytest.mark.parametrize("kind", ["private-jwks", "pem"])
def test_cli_serve_jwks(tmp_path, minter, issuer_keys, worker_identity, make_store, redis_url, clock, kind) -> None:
    """`agent-guard serve-jwks --keys FILE` publishes the public keys; a RemoteKeySet worker verifies with them."""
    key_file = tmp_path / "keys"
    extra: list[str] = []
    if kind == "pem":
        key_file.write_bytes(issuer_keys.current.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        extra = ["--kid", issuer_keys.current.kid]
    else:
        key_file.write_text(json.dumps(issuer_keys.to_private_jwks()))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_guard.cli", "serve-jwks", "--keys", str(key_file), "--port", "0", "--quiet",
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/\.well-known/jwks\.json)", line).group(1)
        with urllib.request.urlopen(url, timeout=5) as resp:
            served = json.loads(resp.read())
        assert served == issuer_keys.jwks() and '"d"' not in json.dumps(served)
        worker = Guard(keys=RemoteKeySet(url), store=make_store(redis_url, clock=clock), clock=clock)
        with minter.task(lookup_plan(1, email=False), identity=worker_identity) as task, worker.attach(task.grant):
            assert worker.decide(*LOOKUP).allowed
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_cli_serve_jwks_rejects_a_bad_file(tmp_path) -> None:
    """A file that is not a key set fails at start with a clear error and exit code 1."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    result = subprocess.run([sys.executable, "-m", "agent_guard.cli", "serve-jwks", "--jwks", str(bad), "--port", "0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "jwks" in result.stderr
