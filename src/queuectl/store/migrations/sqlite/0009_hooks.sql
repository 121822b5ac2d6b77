-- Issue 14: hooks on outcomes. A hook names the events it fires on (as ',completed,dead,':
-- a LIKE finds one), a command or a URL, and optionally one queue; what its deliveries
-- did so far is kept on it for `hook list` and the dashboard.
CREATE TABLE hooks (
    name        TEXT PRIMARY KEY,
    events      TEXT    NOT NULL,
    command     TEXT,
    url         TEXT,
    queue       TEXT,
    created_at  REAL    NOT NULL,
    last_at     REAL,              -- the latest delivery finished (or given up)
    last_ok     INTEGER,           -- 1 delivered, 0 failed (NULL: none yet)
    last_error  TEXT,
    failures    INTEGER NOT NULL DEFAULT 0, -- deliveries that failed (each attempt)
    given_up    INTEGER NOT NULL DEFAULT 0  -- events given up on after hook-retries
) WITHOUT ROWID;
-- The outbox: one row per hook and matching event, written by the trigger below in the
-- transaction that records the outcome, so an outcome is never without its events. A
-- pool delivers it under a lease (lease_holder until lease_until), retrying with backoff
-- (attempts, next_try). Delivered rows are deleted; done = 1: given up.
CREATE TABLE hook_events (
    id           INTEGER PRIMARY KEY,
    hook         TEXT    NOT NULL,
    job_id       TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    exit_code    INTEGER,
    created_at   REAL    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_try     REAL    NOT NULL,
    last_error   TEXT,
    done         INTEGER NOT NULL DEFAULT 0,
    lease_holder TEXT,
    lease_until  REAL
);
CREATE INDEX hook_events_due ON hook_events (next_try) WHERE done = 0;
-- Every path that changes a job's state (a pool's finish, cancel, the reaper, the DLQ
-- commands) fires it; a database without hooks pays one lookup of an empty table.
CREATE TRIGGER jobs_hooks AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('completed', 'failed', 'dead', 'canceled')
    AND NEW.state IS NOT OLD.state AND EXISTS (SELECT 1 FROM hooks)
BEGIN
    INSERT INTO hook_events (hook, job_id, event, exit_code, created_at, next_try)
    SELECT name, NEW.id, NEW.state, NEW.exit_code, (julianday('now') - 2440587.5) * 86400.0,
        (julianday('now') - 2440587.5) * 86400.0
    FROM hooks WHERE events LIKE '%,' || NEW.state || ',%'
        AND (queue IS NULL OR queue = NEW.queue);
END;
