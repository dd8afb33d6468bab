"""Which concert a schedule belongs to: fixed once created, so remembered for good."""

from __future__ import annotations

from . import queries
from .errors import ScheduleNotFound

# Far more schedules than any venue has; past it the memory starts over.
MAX_REMEMBERED = 100_000


class Schedules:
    """schedule id -> concert id, asking PostgreSQL once per schedule and process."""

    def __init__(self) -> None:
        self._concert: dict[int, int] = {}

    async def concert_of(self, conn: queries.Conn, schedule_id: int) -> int:
        """The schedule's concert, or ScheduleNotFound."""
        concert_id = self._concert.get(schedule_id)
        if concert_id is None:
            concert_id = await queries.schedule_concert(conn, schedule_id)
            if concert_id is None:
                raise ScheduleNotFound(f"There is no schedule {schedule_id}")
            if len(self._concert) >= MAX_REMEMBERED:
                self._concert.clear()
            self._concert[schedule_id] = concert_id
        return concert_id
