"""Private graphs keep their ROS domains where DDS ports stay below Linux's ephemeral range."""

import random

import pytest

from llm_trainer.ros.domains import HIGHEST, LOWEST, domain_beside, random_domain


def _highest_port(domain: int, participants: int = 50) -> int:
    # RTPS's default mapping: PB + DG * domain, then d1 (10) + 2 ports per participant (PG) + d3 (1).
    # A graph of ours has fewer than 10 participants; ROS 2's guide counts about 54 on domain 101.
    return 7400 + 250 * domain + 10 + 2 * (participants - 1) + 1


def test_every_domain_generate_can_pick_keeps_its_ports_below_the_ephemeral_range():
    rng = random.Random(0)
    for workers in (1, 2, 16):
        for _ in range(2000):
            first = random_domain(workers, rng)
            assert LOWEST <= first and first + workers - 1 <= HIGHEST
            assert _highest_port(first + workers - 1) < 32768  # Linux's ip_local_port_range starts at 32768
    assert 7400 + 250 * (HIGHEST + 1) >= 32768  # one more and even discovery's port is in it


def test_the_tests_offsets_from_any_session_domain_stay_distinct_and_in_range():
    offsets = (0, 20, 25, 30, 40, 45, 50, 54, 55, 70)  # the session's own graph and the tests' own
    for session in range(LOWEST, HIGHEST + 1):
        domains = [domain_beside(session, k) for k in offsets]
        assert len(set(domains)) == len(offsets)
        assert all(LOWEST <= d <= HIGHEST for d in domains)


def test_more_consecutive_domains_than_the_range_holds_are_refused():
    with pytest.raises(ValueError, match="consecutive ROS domains"):
        random_domain(HIGHEST + 1)
