"""ROS domain IDs for the private graphs that ``generate``, the perception replay and the tests start.

DDS derives each participant's UDP ports from its domain (7400 + 250 * domain + small offsets). On
Linux a domain above 101 puts them inside the kernel's ephemeral port range (32768-60999), where any
other socket on the machine may already hold one; ROS 2's domain-ID guide advises 0-101 for that
reason. Our private graphs keep to 1-101 (0 is every other ROS process's default).
"""

from __future__ import annotations

import random

LOWEST = 1
HIGHEST = 101  # the last domain whose ports stay below Linux's ephemeral range


def random_domain(count: int = 1, rng: random.Random | None = None) -> int:
    """The first of ``count`` consecutive free-looking domains, all within LOWEST..HIGHEST."""
    if not 1 <= count <= HIGHEST - LOWEST + 1:
        raise ValueError(f"cannot place {count} consecutive ROS domains within {LOWEST}..{HIGHEST}")
    return (rng or random).randint(LOWEST, HIGHEST - count + 1)


def domain_beside(base: int, offset: int) -> int:
    """A domain ``offset`` places after ``base``, wrapping within LOWEST..HIGHEST: the tests give each
    graph of theirs its own offset from the session's domain, so two never share one."""
    span = HIGHEST - LOWEST + 1
    return LOWEST + (base - LOWEST + offset) % span
