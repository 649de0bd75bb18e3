"""Cron specs and the scheduler's plan of what is due: time zones, daylight saving, the catch-up window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postgit.cron import CronSpec, fire_key, nominal_text
from postgit.engine.scheduler import plan
from postgit.errors import InvalidInput
from postgit.schedules import check_catchup_window, check_overlap, check_schedule_name


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "timezone", "fragment"),
    [
        ("61 * * * *", "UTC", "cron: '61 * * * *' does not parse"),
        ("every minute", "UTC", "cron: 'every minute' does not parse"),
        ("*/0 * * * *", "UTC", "cron: '*/0 * * * *' does not parse"),
        ("", "UTC", "cron: must be 1 to 200 characters"),
        ("0 0 30 2 *", "UTC", "cron: '0 0 30 2 *' matches no time within 5 years"),
        ("* * * * *", "Mars/Olympus_Mons", "timezone: 'Mars/Olympus_Mons' is not a known time zone"),
        ("* * * * *", "../../etc/passwd", "timezone: '../../etc/passwd' is not a known time zone"),
        ("* * * * *", "", "timezone: '' is not a known time zone"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(expression, timezone, fragment):
    with pytest.raises(InvalidInput) as caught:
        CronSpec.parse(expression, timezone)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_six_fields_have_seconds_last_and_times_are_in_utc():
    spec = CronSpec.parse("* * * * * */15")
    assert spec.upcoming(utc(2026, 12, 3, 10, 0, 1), 3) == [
        utc(2026, 12, 3, 10, 0, 15),
        utc(2026, 12, 3, 10, 0, 30),
        utc(2026, 12, 3, 10, 0, 45),
    ]


def test_a_time_zone_moves_the_fire_times():
    spec = CronSpec.parse("0 9 * * *", "America/New_York")
    assert spec.next_after(utc(2026, 12, 3, 0, 0)) == utc(2026, 12, 3, 14, 0)  # 09:00 EST is 14:00 UTC
    assert spec.next_after(utc(2026, 7, 3, 0, 0)) == utc(2026, 7, 3, 13, 0)  # 09:00 EDT is 13:00 UTC


def test_daylight_saving_changes_are_the_librarys():
    spec = CronSpec.parse("30 2 * * *", "Europe/Berlin")
    # 2026-03-29: clocks go from 02:00 to 03:00, so 02:30 does not exist; it fires once, right after the gap
    spring = list(spec.times(utc(2026, 3, 27, 12), utc(2026, 3, 30, 12), 10))
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    # 2026-10-25: clocks go back from 03:00 to 02:00, so 02:30 happens twice: it fires at both instants
    autumn_daily = list(spec.times(utc(2026, 10, 24, 12), utc(2026, 10, 25, 12), 10))
    assert autumn_daily == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]
    # hourly fires across the autumn change keep one hour between them in UTC
    hourly = CronSpec.parse("0 * * * *", "Europe/Berlin")
    autumn = list(hourly.times(utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0), 10))
    assert autumn == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2),
                      utc(2026, 10, 25, 3)]  # fmt: skip


def test_the_idempotency_key_is_the_schedule_and_the_nominal_time():
    assert fire_key("nightly", utc(2026, 12, 3, 10)) == "schedule:nightly:2026-12-03T10:00:00Z"
    assert nominal_text(datetime(2026, 12, 3, 10, 0, 0, 250000, tzinfo=UTC)) == "2026-12-03T10:00:00.250Z"


def test_a_plan_fires_what_is_due_and_misses_what_is_older_than_the_window():
    spec = CronSpec.parse("* * * * * */2")
    row = {"next_fire_at": utc(2026, 12, 3, 9, 0, 0), "catchup_window": 10.0}
    due = plan(row, spec, datetime(2026, 12, 3, 10, 0, 0, 500000, tzinfo=UTC))
    assert due.missed == [utc(2026, 12, 3, 9, 0, 0), utc(2026, 12, 3, 9, 59, 50)]
    assert due.missed_count == 1796
    assert due.due == [utc(2026, 12, 3, 9, 59, second) for second in (52, 54, 56, 58)] + [utc(2026, 12, 3, 10)]
    assert due.next_fire_at == utc(2026, 12, 3, 10, 0, 2)


def test_a_plan_on_time_misses_nothing_and_one_not_due_does_nothing():
    spec = CronSpec.parse("* * * * * */2")
    row = {"next_fire_at": utc(2026, 12, 3, 10), "catchup_window": 10.0}
    on_time = plan(row, spec, datetime(2026, 12, 3, 10, 0, 0, 3000, tzinfo=UTC))
    assert (on_time.missed, on_time.due) == ([], [utc(2026, 12, 3, 10)])
    assert on_time.next_fire_at == utc(2026, 12, 3, 10, 0, 2)
    early = plan(row, spec, utc(2026, 12, 3, 9, 59, 59))
    assert (early.missed, early.due, early.next_fire_at) == ([], [], None)


@pytest.mark.parametrize(
    ("check", "value", "fragment"),
    [
        (check_overlap, "sometimes", "overlap: 'sometimes' is not one of skip, buffer_one"),
        (check_catchup_window, -5, "catchup_window: -5 must be from 1 second"),
        (check_catchup_window, 0, "catchup_window: 0 must be from 1 second"),
        (check_catchup_window, float("nan"), "catchup_window: nan"),
        (check_schedule_name, "-bad", "invalid schedule name '-bad'"),
    ],
)
def test_other_fields_are_checked_naming_the_field(check, value, fragment):
    with pytest.raises(InvalidInput) as caught:
        check(value)
    assert fragment in str(caught.value)
