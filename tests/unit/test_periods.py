"""Calendar budget periods, in UTC and in a zone with daylight saving time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmproxy.periods import PeriodClock, bounds, zone

BERLIN = zone("Europe/Berlin")


def ts(*args: int, tz: object = UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(("period", "start", "end"), [
    ("daily", ts(2026, 3, 18), ts(2026, 3, 19)),
    ("weekly", ts(2026, 3, 16), ts(2026, 3, 23)),  # Monday to Monday
    ("monthly", ts(2026, 3, 1), ts(2026, 4, 1)),
])  # fmt: skip
def test_bounds_follow_the_calendar_in_utc(period: str, start: float, end: float) -> None:
    assert bounds(period, ts(2026, 3, 18, 15, 30), UTC) == (start, end)
    assert bounds(period, end, UTC)[0] == end  # the next period starts exactly there


def test_bounds_of_december_and_february() -> None:
    assert bounds("monthly", ts(2026, 12, 31, 23, 59), UTC) == (ts(2026, 12, 1), ts(2027, 1, 1))
    assert bounds("monthly", ts(2028, 2, 29, 12), UTC) == (ts(2028, 2, 1), ts(2028, 3, 1))


def test_bounds_in_a_zone_across_a_dst_change() -> None:
    # Berlin moves its clocks forward on 2026-03-29: that day has 23 hours.
    start, end = bounds("daily", ts(2026, 3, 29, 12, tz=BERLIN), BERLIN)
    assert (start, end) == (ts(2026, 3, 29, tz=BERLIN), ts(2026, 3, 30, tz=BERLIN))
    assert end is not None and end - start == 23 * 3600
    week = bounds("weekly", ts(2026, 3, 29, 12, tz=BERLIN), BERLIN)
    assert week == (ts(2026, 3, 23, tz=BERLIN), ts(2026, 3, 30, tz=BERLIN))
    # 23:30 UTC on the last of the month is already the next month in Berlin.
    assert bounds("monthly", ts(2026, 3, 31, 23, 30), BERLIN)[0] == ts(2026, 4, 1, tz=BERLIN)


def test_none_never_ends_and_unknown_names_are_refused() -> None:
    assert bounds("none", ts(2026, 3, 18), UTC) == (0.0, None)
    with pytest.raises(ValueError):
        bounds("hourly", 0.0, UTC)
    with pytest.raises(ValueError):
        zone("Mars/Olympus")


def test_period_clock_moves_on_when_a_period_ends() -> None:
    clock = PeriodClock(UTC)
    assert clock.bounds("daily", ts(2026, 3, 18, 23)) == (ts(2026, 3, 18), ts(2026, 3, 19))
    assert clock.bounds("daily", ts(2026, 3, 19)) == (ts(2026, 3, 19), ts(2026, 3, 20))
    assert clock.bounds("daily", ts(2026, 3, 17)) == (ts(2026, 3, 17), ts(2026, 3, 18))
