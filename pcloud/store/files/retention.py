"""Which earlier versions to keep: snapshots at regular points in time, thinned as they age.

The version index records, for every content a path ever held, when it became current and when
it was replaced. The tree as it was at any moment T is therefore already known (every version
with since <= T < replaced, plus the current files older than T), so a snapshot costs nothing to
take: it is a point in time whose state is kept. The policy names those points: by default every
hour boundary of the last day, every midnight (UTC) of the last 30 days and every Monday midnight
of the last 52 weeks. Pruning keeps each version visible at one of the points, and every version
replaced within the last `keep_all_minutes` (so that a fresh mistake can always be undone).
"""

from __future__ import annotations

import bisect

from pcloud.config import FilesSection

HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY
_MONDAY = 4 * DAY  # 1970-01-01 was a Thursday: week boundaries are Mondays, 00:00 UTC


def snapshot_times(policy: FilesSection, now: float) -> list[float]:
    """The retained snapshot points at `now`, oldest first."""
    points: set[float] = set()
    tiers = (
        (HOUR, policy.hourly_for_hours, 0),
        (DAY, policy.daily_for_days, 0),
        (WEEK, policy.weekly_for_weeks, _MONDAY),
    )
    for interval, count, offset in tiers:
        latest = (now - offset) // interval * interval + offset
        points.update(latest - k * interval for k in range(count))
    return sorted(points)


def keeps(
    policy: FilesSection, points: list[float], now: float, since: float, replaced: float
) -> bool:
    """Whether a version current from `since` until `replaced` stays (`points` from
    snapshot_times)."""
    if replaced > now - policy.keep_all_minutes * 60:
        return True
    first = bisect.bisect_left(points, since)
    return first < len(points) and points[first] < replaced
