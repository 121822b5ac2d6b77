"""Read queries that both SQL backends run as they are, but for the placeholder style."""

from __future__ import annotations

from ..jobs import Job
from .rows import COLUMNS, NAMES, job_from_row


class SharedReads:
    """Mixed into a backend that defines `_read(query, params)` and PARAM ('?' or '%s')."""

    PARAM = "?"

    def _read(self, query: str, params=()) -> list:
        raise NotImplementedError

    def get(self, job_id: str) -> Job | None:
        rows = self._read(f"SELECT {COLUMNS} FROM jobs WHERE id = {self.PARAM}", (job_id,))
        return job_from_row(rows[0]) if rows else None

    def jobs(self, state=None, queue=None, limit=None) -> list[Job]:
        where, params = [], []
        if state:
            where.append(f"state = {self.PARAM}")
            params.append(state)
        if queue:
            where.append(f"queue = {self.PARAM}")
            params.append(queue)
        query = f"SELECT {COLUMNS} FROM jobs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY seq"
        if limit is not None:
            query += f" LIMIT {self.PARAM}"
            params.append(limit)
        return [job_from_row(row) for row in self._read(query, params)]

    def counts(self) -> dict[str, int]:
        return dict(self._read("SELECT state, count(*) FROM jobs GROUP BY state"))

    def output(self, job_id: str) -> bytes | None:
        rows = self._read(
            "SELECT o.output FROM jobs j LEFT JOIN job_output o ON o.job_seq = j.seq"
            f" WHERE j.id = {self.PARAM}",
            (job_id,),
        )
        if not rows:
            return None
        return bytes(rows[0][0] or b"")

    def export(self, batch_size: int = 1000):
        after = 0
        while True:
            rows = self._read(
                f"SELECT j.seq, o.output, {', '.join('j.' + n for n in NAMES)} FROM jobs j"
                f" LEFT JOIN job_output o ON o.job_seq = j.seq WHERE j.seq > {self.PARAM}"
                f" ORDER BY j.seq LIMIT {self.PARAM}",
                (after, batch_size),
            )
            for row in rows:
                yield job_from_row(row[2:]), bytes(row[1] or b"")
            if len(rows) < batch_size:
                return
            after = rows[-1][0]
