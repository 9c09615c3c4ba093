"""The Kimina Lean Server client against a stand-in server speaking Kimina's request and response
shapes (tests/stand_in_kimina_server.py): verdicts, batches, retries with backoff, every proof
answered exactly once, API keys, the pre-2.0 endpoint, an unreachable server."""

from __future__ import annotations

import socket

import pytest

from monkeyflow.data import DatasetSpec, get_dataset
from monkeyflow.records import Problem
from monkeyflow.verify import get_verifier

from ..stand_in_kimina_server import StandInKimina


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return get_dataset(DatasetSpec("minif2f", limit=3, subset_seed=2)).problems()


def lean(url: str, **options):
    return get_verifier(
        "lean",
        {"mode": "server", "url": url, "retry_backoff_s": 0.01, "timeout_s": 5, **options},
    )


def test_verdicts_in_batches(problems):
    p, q = problems[0], problems[1]
    pairs = [
        (p, "  norm_num"),
        (p, "  linarith"),
        (p, "  stop"),
        (p, "  stand_in_axiom"),
        (p, "  stand_in_hang"),
    ]
    pairs += [(q, f"  simp [{i}]") for i in range(6)]
    with StandInKimina() as server, lean(server.url, batch_size=4, concurrency=2) as verifier:
        checks = verifier.check_many(pairs)
    statuses = [c.status for c in checks]
    assert (
        statuses == ["correct", "incorrect", "incorrect", "incorrect", "timeout"] + ["correct"] * 6
    )
    assert "linarith failed" in checks[1].detail and "sorry" in checks[2].detail
    assert "Lean.ofReduceBool" in checks[3].detail and "timed out" in checks[4].detail
    # one version probe, then 11 proofs in batches of at most 4; each proof sent once
    assert sorted(server.batch_sizes) == [1, 3, 4, 4]
    assert all(n == 1 for n in server.seen.values()) and len(server.seen) == 12


def test_failed_requests_are_retried_and_each_proof_is_judged_once(problems):
    p = problems[0]
    pairs = [(p, f"  norm_num [{i}]") for i in range(5)] + [(p, "  simp [dropped_once]")]
    with StandInKimina(fail_requests=2, drop_once="dropped_once") as server:
        # no version probe: the two failures hit the first batch of proofs
        with lean(
            server.url, batch_size=3, concurrency=1, retries=3, lean_version=None
        ) as verifier:
            checks = verifier.check_many(pairs)
    assert all(c.status == "correct" for c in checks)
    assert server.requests == 2 + 2 + 1  # two failures, two batches, the dropped one alone
    dropped = [code for code in server.seen if "dropped_once" in code]
    assert server.seen[dropped[0]] == 2  # left out of its first answer, sent again alone
    assert all(n == 1 for code, n in server.seen.items() if code not in dropped)


def test_a_server_that_keeps_failing_gives_errors_not_wrong_answers(problems):
    p = problems[0]
    with StandInKimina(fail_requests=100) as server, lean(server.url, retries=2) as verifier:
        checks = verifier.check_many([(p, "  norm_num"), (p, "  linarith")])
    assert [c.status for c in checks] == ["error", "error"]
    assert "HTTP 500" in checks[0].detail
    assert server.requests == 3  # the version probe: one try and two retries, then it gave up


def test_api_key_from_the_environment(problems, monkeypatch):
    p = problems[0]
    with StandInKimina(api_key="s3cret") as server:
        monkeypatch.delenv("MY_LEAN_KEY", raising=False)
        with lean(server.url, api_key_env="MY_LEAN_KEY") as verifier:
            (check,) = verifier.check_many([(p, "  norm_num")])
        assert (
            check.status == "error"
            and "$MY_LEAN_KEY" in check.detail
            and "s3cret" not in check.detail
        )
        assert server.requests == 1  # a refused key is not retried
        monkeypatch.setenv("MY_LEAN_KEY", "s3cret")
        with lean(server.url, api_key_env="MY_LEAN_KEY") as verifier:
            assert verifier.check(p, "  norm_num").status == "correct"


def test_servers_before_2_0_are_reached_at_verify(problems):
    p = problems[0]
    with StandInKimina(legacy=True) as server, lean(server.url) as verifier:
        checks = verifier.check_many([(p, "  norm_num"), (p, "  linarith")])
    assert [c.status for c in checks] == ["correct", "incorrect"]


def test_an_unreachable_server_is_an_error_naming_the_url(problems):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    url = f"http://127.0.0.1:{port}"
    with lean(url, retries=1) as verifier:
        (check,) = verifier.check_many([(problems[0], "  norm_num")])
    assert check.status == "error" and url in check.detail and "cannot reach" in check.detail


def test_a_server_on_another_lean_version_is_refused(problems, monkeypatch):
    monkeypatch.setenv("STAND_IN_LEAN_VERSION", "4.9.0")
    with StandInKimina() as server, lean(server.url) as verifier:
        (check,) = verifier.check_many([(problems[0], "  norm_num")])
    assert check.status == "error" and "runs Lean 4.9.0" in check.detail
