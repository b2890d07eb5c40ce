"""The reflector's retries back off with jitter (client-go's reflector does): fifty agents
re-dialling a busy API server on a fixed short period overflowed its accept queue."""

from __future__ import annotations

import random

from knet.api.reflector import FIRST_RETRY, MAX_RETRY, retry_delay


def test_retries_double_up_to_the_cap_with_jitter_up_to_as_much_again():
    random.seed(7)
    for failures in range(1, 12):
        base = min(MAX_RETRY, FIRST_RETRY * 2 ** (failures - 1))
        waits = [retry_delay(failures) for _ in range(200)]
        assert all(base <= w <= 2 * base for w in waits)
        assert max(waits) - min(waits) > base / 2  # spread, so agents fall out of step
    assert retry_delay(1) < 2 * FIRST_RETRY + 1e-9 and retry_delay(30) <= 2 * MAX_RETRY
