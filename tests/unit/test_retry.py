import random

import pytest
from pydantic import ValidationError

from postgit.retry import RetryPolicy


def test_defaults():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_interval, policy.backoff_coefficient, policy.max_interval) == (
        3,
        1.0,
        2.0,
        60.0,
    )
    assert policy.to_json() == {}


@pytest.mark.parametrize("seed", range(20))
def test_delay_is_within_half_and_all_of_the_documented_base(seed):
    policy = RetryPolicy(max_attempts=10, initial_interval=0.5, backoff_coefficient=3, max_interval=100)
    rng = random.Random(seed)
    for attempt in range(1, 10):
        base = min(100, 0.5 * 3 ** (attempt - 1))
        delay = policy.next_delay(attempt, rng)
        assert base / 2 <= delay <= base, (attempt, delay)


def test_jitter_spreads_delays():
    policy = RetryPolicy(max_attempts=5)
    rng = random.Random(1)
    delays = {policy.next_delay(2, rng) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) >= 1.0 and max(delays) <= 2.0


class _Extreme(random.Random):
    def __init__(self, pick_high: bool):
        super().__init__(0)
        self.pick_high = pick_high

    def uniform(self, a, b):
        return b if self.pick_high else a


def test_bounds_are_reached_exactly_by_the_extremes_of_the_jitter():
    policy = RetryPolicy(max_attempts=4, initial_interval=2, backoff_coefficient=2)
    assert [policy.next_delay(n, _Extreme(False)) for n in (1, 2, 3)] == [1, 2, 4]
    assert [policy.next_delay(n, _Extreme(True)) for n in (1, 2, 3)] == [2, 4, 8]


def test_no_delay_once_attempts_are_used_up():
    policy = RetryPolicy(max_attempts=3)
    assert policy.next_delay(1) is not None
    assert policy.next_delay(2) is not None
    assert policy.next_delay(3) is None
    assert policy.next_delay(4) is None
    assert RetryPolicy(max_attempts=1).next_delay(1) is None


def test_max_interval_caps_the_backoff():
    policy = RetryPolicy(max_attempts=100, initial_interval=1, backoff_coefficient=10, max_interval=30)
    for attempt in (3, 10, 50, 99):
        assert 15 <= policy.next_delay(attempt) <= 30


def test_zero_interval_means_retry_at_once():
    assert RetryPolicy(initial_interval=0).next_delay(1) == 0


def test_camel_case_json_aliases_round_trip():
    data = {"maxAttempts": 5, "initialInterval": 0.25, "backoffCoefficient": 1.5, "maxInterval": 10}
    policy = RetryPolicy.model_validate(data)
    assert (policy.max_attempts, policy.initial_interval, policy.backoff_coefficient, policy.max_interval) == (
        5,
        0.25,
        1.5,
        10,
    )
    assert policy.to_json() == data
    assert RetryPolicy.model_validate(policy.to_json()) == policy


def test_snake_case_names_are_accepted_in_python():
    assert RetryPolicy(max_attempts=7).to_json() == {"maxAttempts": 7}
    assert RetryPolicy.model_validate({"max_attempts": 7}).max_attempts == 7


@pytest.mark.parametrize(
    "data",
    [
        {"attempts": 3},
        {"maxAttempts": 3, "jitter": True},
        {"max_attempts": 3, "MaxAttempts": 3},
    ],
)
def test_extra_keys_are_refused(data):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RetryPolicy.model_validate(data)


@pytest.mark.parametrize(
    "data",
    [
        {"maxAttempts": 0},
        {"maxAttempts": 101},
        {"maxAttempts": "many"},
        {"initialInterval": -1},
        {"backoffCoefficient": 0.5},
        {"backoffCoefficient": 11},
        {"maxInterval": -0.1},
        {"maxInterval": 86_401},
    ],
)
def test_out_of_range_values_are_refused(data):
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(data)


def test_policy_is_immutable():
    with pytest.raises(ValidationError):
        RetryPolicy().max_attempts = 9
