-- Every query of both SQL stores, once. Written for PostgreSQL with named parameters
-- (:name) and the store's clock as :now; sql.py renders each for SQLite (lists as
-- JSON, /*postgres: …*/ and /*sqlite: …*/ kept only by their dialect). A block
-- `name.sqlite` replaces `name` on SQLite where the two truly differ. {READY},
-- {NOT_READY}, {PAUSED}, {GATED}, {HELD_QUEUE} and {HELD_KEY} are the codes of
-- jobs.ready (rows.py); {JOB_COLUMNS} what a Job is read from; {queue_filter} is empty
-- or `AND queue = ANY(:queues)`.

------------------------------------------------------------------ the pool's turn

-- name: ready_now
-- The `ready` of a job that may run now: paused if its queue is paused, gated where a
-- gate applies to it.
CASE WHEN queue IN (SELECT queue FROM paused_queues) THEN {PAUSED}
    WHEN {gated} THEN {GATED} ELSE {READY} END

-- name: gated
-- A job runs only through the gates (flow.py): its queue has limits, it has a
-- concurrency key or takes more than one slot.
(concurrency_key IS NOT NULL OR slots > 1 OR queue IN (SELECT queue FROM queue_limits))

-- name: promote
-- Scheduled jobs whose time has come become ready (run before each claim).
UPDATE jobs SET ready = {ready_now}
WHERE seq = ANY(ARRAY(SELECT seq FROM jobs /*sqlite: INDEXED BY jobs_scheduled*/
    WHERE ready = {NOT_READY} AND state IN ('pending', 'failed') AND blockers = 0
    AND run_at <= :now /*postgres: FOR UPDATE SKIP LOCKED*/))

-- name: claim
-- Take up to :limit ready jobs, highest priority, then earliest run_at, then oldest:
-- processing, attempts + 1, held by :worker until now + :lease. = ANY(ARRAY(…)) runs
-- the SKIP LOCKED subquery once (IN (…) may run it again and take other rows).
-- On PostgreSQL the scan starts at the store's hint (postgres.py, ClaimHint): where its
-- last claim found the first job. Every job claimed since leaves a dead entry at the
-- head of jobs_ready that only vacuum removes, and an open transaction anywhere on the
-- server (xmin held) stops vacuum: scanned from the head, each claim would read them
-- all. So: higher priorities than the hint's from their head, then from the hint on
-- (the rest of its priority, then the lower ones), the second part only if the first
-- came short. jobs_ready is on (-priority, run_at, seq) so that "from the hint on" is
-- one range of it. A job made ready behind the hint (a dependency met, a queue resumed)
-- is found by the next scan from the head, at least once a second. A job made ready
-- while its queue was being paused is not taken (SQLite's writers take turns: no job is
-- made ready while a pause commits).
UPDATE jobs SET {claimed}
WHERE seq = ANY(ARRAY(
    SELECT seq FROM (SELECT seq FROM jobs WHERE ready = {READY}
        AND -priority < -:hint_priority::integer{queue_filter} AND {claimable}
        ORDER BY -priority, run_at, seq LIMIT :limit FOR UPDATE SKIP LOCKED) higher
    UNION ALL
    SELECT seq FROM (SELECT seq FROM jobs WHERE ready = {READY}
        AND (-priority, run_at, seq) >= (-:hint_priority::integer, :hint_run_at, :hint_seq)
        {queue_filter} AND {claimable}
        ORDER BY -priority, run_at, seq LIMIT :limit FOR UPDATE SKIP LOCKED) onward
    LIMIT :limit))
RETURNING {JOB_COLUMNS}, seq

-- name: claim_from_head
-- The claim when the store has no hint (its first, and a rescan at least once a second,
-- claim_hint.py): one scan from the head. The same jobs as the hinted claim given the
-- head's parameters, without its empty first part: an idle pool's pickup is such a claim.
UPDATE jobs SET {claimed}
WHERE seq = ANY(ARRAY(SELECT seq FROM jobs WHERE ready = {READY}{queue_filter} AND {claimable}
    ORDER BY -priority, run_at, seq LIMIT :limit FOR UPDATE SKIP LOCKED))
RETURNING {JOB_COLUMNS}, seq

-- name: claimable
-- Not in a paused queue nor one with limits. The queues are read once per part of the
-- claim, into an array (an InitPlan): NOT IN (SELECT …) built a hash table per part,
-- 45 µs of a 600 µs turn, and two NOT IN halved the throughput.
queue <> ALL (ARRAY(SELECT queue FROM paused_queues UNION ALL SELECT queue FROM queue_limits))

-- name: claim.sqlite
-- As on PostgreSQL, from the head of jobs_ready: SQLite leaves no dead entries.
UPDATE jobs SET {claimed}
WHERE seq = ANY(ARRAY(SELECT seq FROM jobs WHERE ready = {READY}{queue_filter}
    ORDER BY priority DESC, run_at, seq LIMIT :limit))
RETURNING {JOB_COLUMNS}, seq

-- name: outcomes
-- The outcomes handed to finish as a table `o`, from arrays (one element per outcome).
o AS (SELECT * FROM unnest(:ids::text[], :states::text[], :codes::int[], :errors::text[],
    :delays::float8[], :outputs::bytea[], :streams::text[])
    AS o(id, state, code, error, delay, output, streams))

-- name: o
-- How finish and the statements after it name a value of the outcome, {o}state: a
-- column of the table `o` on PostgreSQL, which records every outcome of a turn at once.
o.

-- name: o.sqlite
-- SQLite records outcomes one by one (no statements inside WITH, and a join to a
-- one-row table costs a quarter more than binding): the outcome's values are parameters.
:

-- name: from_o
-- Where finish reads the outcomes from.
FROM o

-- name: from_o.sqlite
-- (nothing: they are parameters)


-- name: d
-- How record_runs names a value of finish's RETURNING, {d}seq: a column of the table
-- `done`.


-- name: d.sqlite
-- On SQLite, a parameter (the one row is handed back in).
:

-- name: finish
-- Record the outcomes, fenced: only jobs still processing and held by :worker. A failed
-- run of a job whose cancel was asked ends canceled. Returns what `done` holds: the run
-- for the history and whether an older output exists (SQLite's RETURNING may name only
-- the updated table). The jobs are found by id: PostgreSQL's planner would rather read
-- the few processing jobs from jobs_state, whose dead entries (one for every job run
-- since an old xmin, claim_hint.py) it then reads too; coalesce() hides the state from
-- that index. Given only the join with `o` (of unknown size to a generic plan), it
-- would then scan the whole table (a turn took twice as long): `= ANY(:ids)` leads it to
-- the id index.
UPDATE jobs SET state = CASE WHEN {o}state IN ('failed', 'dead') AND jobs.cancel_requested
        THEN 'canceled' ELSE {o}state END,
    exit_code = {o}code, last_error = {o}error, run_at = :now + {o}delay, updated_at = :now,
    finished_at = CASE WHEN {o}state = 'failed' AND NOT jobs.cancel_requested THEN NULL
        ELSE :now END,
    lease_until = NULL
{from_o}
WHERE jobs.id = {o}id /*postgres: AND jobs.id = ANY(:ids)*/
    AND coalesce(jobs.state, '') = 'processing' AND jobs.worker_id = :worker
RETURNING jobs.seq, jobs.id, jobs.attempts, jobs.queue, jobs.started_at, jobs.waited,
    jobs.state, jobs.exit_code AS code, jobs.last_error AS error,
    EXISTS (SELECT 1 FROM job_output WHERE job_seq = jobs.seq) AS had_output

-- name: turn.postgres
-- finish then claim in one statement, PostgreSQL's pipelined turn: the outcomes are
-- recorded (fenced), their runs and output kept, then the next jobs claimed. One row at
-- least, so the recorded ids arrive even when nothing is claimed; and whether gated
-- jobs wait (gates_waiting: the pool's next turn goes through the gates); and whether
-- a job completed that others wait for (they may be ready now, behind the claims' hints).
WITH {outcomes}, done AS ({finish}), runs AS ({record_runs}), kept AS ({keep_output}),
    cleared AS ({clear_output}), run_kept AS ({keep_run_output}), claimed AS ({claim})
SELECT c.*, d.ids, d.unblocked, ({gates_waiting})
FROM (SELECT array_agg(id) AS ids, {unblocked} AS unblocked FROM done) d
    LEFT JOIN claimed c ON true

-- name: unblocked
-- Whether a job recorded complete is one that others wait for, or one recorded dead or
-- canceled that others wait for whatever its outcome (--after-any).
EXISTS (SELECT 1 FROM done JOIN job_deps x ON x.dep_seq = done.seq
    WHERE done.state = 'completed' OR (x.any_outcome AND done.state <> 'failed'))

-- name: run_columns
-- A run in the history, as recorded with its outcome.
job_runs (job_seq, attempt, queue, worker_id, started_at, finished_at, waited, outcome,
    exit_code, error)

-- name: run_values
-- The history row of a run finish recorded.
{d}seq, {d}attempts, {d}queue, :worker, {d}started_at, :now, {d}waited, {d}state, {d}code,
    {d}error

-- name: record_runs
-- The recorded runs into the history (their ids for keep_run_output).
INSERT INTO {run_columns} SELECT {run_values} FROM done RETURNING id, job_seq

-- name: record_runs.sqlite
-- The recorded run into the history (VALUES: an INSERT … SELECT costs SQLite twice as much).
INSERT INTO {run_columns} VALUES ({run_values})

-- name: keep_output
-- The output of the recorded runs that printed something, over the previous run's.
INSERT INTO job_output (job_seq, output)
SELECT seq, o.output FROM done JOIN o ON o.id = done.id WHERE length(o.output) > 0
ON CONFLICT (job_seq) DO UPDATE SET output = excluded.output

-- name: keep_output.sqlite
-- The recorded run's output (it printed something), over the previous run's.
INSERT INTO job_output (job_seq, output) VALUES (:seq, :output)
ON CONFLICT (job_seq) DO UPDATE SET output = excluded.output

-- name: keep_run_output
-- The output of each recorded run that printed something, kept with the run.
INSERT INTO job_run_output (run_id, output, streams)
SELECT runs.id, o.output, o.streams FROM runs JOIN done ON done.seq = runs.job_seq
    JOIN o ON o.id = done.id WHERE length(o.output) > 0

-- name: keep_run_output.sqlite
-- The recorded run's output (it printed something), kept with the run just inserted.
INSERT INTO job_run_output (run_id, output, streams) VALUES (last_insert_rowid(), :output, :streams)

-- name: run_output
-- The output of a job's run by attempt, or its latest run when :attempt is NULL (no
-- row: no such job; NULL id: no such run; NULL output: the run printed nothing).
SELECT r.id, o.output, o.streams FROM jobs j
    LEFT JOIN job_runs r ON r.job_seq = j.seq AND r.attempt = coalesce(:attempt, r.attempt)
    LEFT JOIN job_run_output o ON o.run_id = r.id
WHERE j.id = :id ORDER BY r.id DESC LIMIT 1

-- name: clear_output
-- An older run's output goes when this run printed nothing (most jobs never had any).
DELETE FROM job_output WHERE job_seq IN
    (SELECT seq FROM done JOIN o ON o.id = done.id WHERE length(o.output) = 0 AND had_output)

-- name: clear_output.sqlite
-- The older run's output goes (this run printed nothing, and one exists).
DELETE FROM job_output WHERE job_seq = :seq

-- name: seconds_until_due
-- (0.0 or NULL, seconds until the earliest scheduled job or NULL, seconds until a rate
-- window reopens or NULL, whether due jobs of the queues that a pool of :pool_slots
-- could take wait for flow control): 0.0 when a job of the queues is ready. min()
-- answered from the index (it stands alone); each EXISTS reads its partial index.
SELECT {ready_probe},
    (SELECT min(run_at) FROM jobs /*sqlite: INDEXED BY jobs_scheduled*/
        WHERE ready = {NOT_READY} AND state IN ('pending', 'failed') AND blockers = 0
        {queue_filter}) - :now,
    (SELECT min(reopen_at) FROM queue_limits) - :now,
    EXISTS (SELECT 1 FROM jobs WHERE ready = {GATED} AND slots <= :pool_slots{queue_filter})
    OR EXISTS (SELECT 1 FROM jobs WHERE ready = {HELD_QUEUE} AND slots <= :pool_slots{queue_filter})
    OR EXISTS (SELECT 1 FROM jobs WHERE ready = {HELD_KEY} AND slots <= :pool_slots{queue_filter})

-- name: ready_probe
-- 0.0 if the claim would find a job now (its two parts, from the same hint), else NULL.
-- Each part in index order: a planner sure of a match may scan the table from its start,
-- over every dead row an old xmin keeps.
(SELECT 0.0 FROM (
    SELECT seq FROM (SELECT seq FROM jobs WHERE ready = {READY}
        AND -priority < -:hint_priority::integer{queue_filter}
        ORDER BY -priority, run_at, seq LIMIT 1) higher
    UNION ALL
    SELECT seq FROM (SELECT seq FROM jobs WHERE ready = {READY}
        AND (-priority, run_at, seq) >= (-:hint_priority::integer, :hint_run_at, :hint_seq)
        {queue_filter} ORDER BY -priority, run_at, seq LIMIT 1) onward
    LIMIT 1) found)

-- name: ready_probe.sqlite
-- 0.0 if a job is ready, else NULL.
(SELECT 0.0 FROM jobs WHERE ready = {READY}{queue_filter} LIMIT 1)

-- name: heartbeat_worker
-- The worker is alive; returns the stop asked: 0 none, 1 drain, 2 abort (no row: it
-- was forgotten).
UPDATE workers SET heartbeat_at = :now WHERE id = :worker RETURNING stop_requested

-- name: heartbeat_jobs
-- Extend the leases of the worker's jobs; returns them and whether a cancel was asked.
UPDATE jobs /*sqlite: INDEXED BY jobs_running*/ SET lease_until = :now + :lease
WHERE worker_id = :worker AND state = 'processing'
RETURNING id, cancel_requested

-- name: release
-- Hand jobs back without spending an attempt (fenced): canceled if that was asked,
-- else pending (failed if they had run before) and due now.
UPDATE jobs SET attempts = attempts - 1,
    state = CASE WHEN cancel_requested THEN 'canceled'
        WHEN attempts > 1 THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    run_at = :now, updated_at = :now, worker_id = NULL, lease_until = NULL,
    ready = CASE WHEN cancel_requested THEN {NOT_READY} ELSE {ready_now} END
WHERE state = 'processing' AND worker_id = :worker AND id = ANY(:ids)
RETURNING id

-- name: expired
-- Jobs whose lease expired, locked until the reap commits.
SELECT seq FROM jobs WHERE state = 'processing' AND lease_until < :now
/*postgres: FOR UPDATE SKIP LOCKED*/

-- name: record_lost_runs
-- The expired runs into the history, read from their jobs before the reap changes them.
INSERT INTO job_runs (job_seq, attempt, queue, worker_id, started_at, finished_at, waited,
    outcome, error)
SELECT seq, attempts, queue, worker_id, coalesce(started_at, :now), :now, waited, 'lost',
    'lease expired: worker ' || worker_id || ' stopped heartbeating'
FROM jobs WHERE seq = ANY(:seqs)

-- name: reap
-- The expired jobs: canceled if asked, dead if their attempts are spent, else failed and
-- due now.
UPDATE jobs SET
    state = CASE WHEN cancel_requested THEN 'canceled'
        WHEN attempts > max_retries THEN 'dead' ELSE 'failed' END,
    ready = CASE WHEN cancel_requested OR attempts > max_retries THEN {NOT_READY}
        ELSE {ready_now} END,
    last_error = 'lease expired: worker ' || worker_id || ' stopped heartbeating',
    exit_code = NULL, worker_id = NULL, lease_until = NULL,
    finished_at = CASE WHEN cancel_requested OR attempts > max_retries THEN :now END,
    run_at = :now, updated_at = :now
WHERE seq = ANY(:seqs) AND state = 'processing'
RETURNING id

-- name: forget_workers
-- Workers that stopped heartbeating long ago.
DELETE FROM workers WHERE heartbeat_at < :now - :after

-- name: save_output
-- The output so far of a running job, while :worker still holds it.
INSERT INTO job_output (job_seq, output)
SELECT seq, :output FROM jobs WHERE id = :id AND state = 'processing' AND worker_id = :worker
ON CONFLICT (job_seq) DO UPDATE SET output = excluded.output

------------------------------------------------------------------ flow control (flow.py)

-- name: gates_waiting
-- Gated jobs wait that a pool of :pool_slots could take, or a rate window reopened.
SELECT EXISTS (SELECT 1 FROM jobs WHERE ready = {GATED} AND slots <= :pool_slots{queue_filter})
    OR EXISTS (SELECT 1 FROM queue_limits WHERE reopen_at <= :now)

-- name: gated_candidates
-- The first gated jobs a pool of :pool_slots could take, in claim order. Not locked:
-- the locks of their lanes decide who takes them (a candidate locked by a pool that did
-- not get its lane would let another take the jobs behind it first).
SELECT seq, queue, concurrency_key, concurrency_limit, slots, priority, run_at
FROM jobs WHERE ready = {GATED} AND slots <= :pool_slots{queue_filter}
    /*postgres: AND queue NOT IN (SELECT queue FROM paused_queues)*/
ORDER BY priority DESC, run_at, seq LIMIT :limit

-- name: ready_peek
-- The claim order of the first ungated ready jobs (not locked: the claim takes them),
-- read in the order of jobs_ready.
SELECT priority, run_at, seq FROM jobs WHERE ready = {READY}{queue_filter}
ORDER BY -priority, run_at, seq LIMIT :limit

-- name: ready_peek.sqlite
-- (SQLite's jobs_ready is on priority DESC)
SELECT priority, run_at, seq FROM jobs WHERE ready = {READY}{queue_filter}
ORDER BY priority DESC, run_at, seq LIMIT :limit

-- name: try_lanes.postgres
-- Try the locks of these lanes (in this order); returns those taken.
SELECT lane FROM unnest(:lanes::text[]) AS lane
WHERE pg_try_advisory_xact_lock(hashtextextended('queuectl:' || lane, 0))

-- name: wait_for_lane.postgres
-- Take the lock of a lane (callers take them in sorted order: never crosswise).
SELECT pg_advisory_xact_lock(hashtextextended('queuectl:' || :lane, 0))

-- name: limits_of
-- The limits of these queues.
SELECT queue, concurrency, rate_limit, rate_period FROM queue_limits WHERE queue = ANY(:queues)

-- name: queue_limits
-- Every queue's limits.
SELECT queue, concurrency, rate_limit, rate_period FROM queue_limits ORDER BY queue

-- name: set_queue_limits
-- A queue's limits, set or changed.
INSERT INTO queue_limits (queue, concurrency, rate_limit, rate_period)
VALUES (:queue, :concurrency, :rate_limit, :rate_period)
ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency,
    rate_limit = excluded.rate_limit, rate_period = excluded.rate_period

-- name: drop_queue_limits
-- A queue without limits.
DELETE FROM queue_limits WHERE queue = :queue

-- name: gate_queue
-- A queue given limits: its ready jobs go through the gates.
UPDATE jobs SET ready = {GATED} WHERE queue = :queue AND state IN ('pending', 'failed')
    AND ready = {READY}

-- name: ungate_queue
-- A queue without limits: its gated and held jobs are ready (gated if a key or their
-- slots still gate them).
UPDATE jobs SET ready = {ready_now} WHERE queue = :queue AND state IN ('pending', 'failed')
    AND ready IN ({GATED}, {HELD_QUEUE})

-- name: running_in_queues
-- Jobs running in each of these queues.
SELECT queue, count(*) FROM jobs WHERE state = 'processing' AND queue = ANY(:queues)
GROUP BY queue

-- name: running_with_keys
-- Jobs running with each of these concurrency keys (running jobs are few: no index of their own).
SELECT concurrency_key, count(*) FROM jobs
WHERE state = 'processing' AND concurrency_key = ANY(:keys) GROUP BY concurrency_key

-- name: prune_starts
-- A queue's starts that left its rate window.
DELETE FROM queue_starts WHERE queue = :queue AND started_at <= :since

-- name: window_starts
-- A queue's latest starts within its rate window, newest first.
SELECT started_at FROM queue_starts WHERE queue = :queue AND started_at > :since
ORDER BY started_at DESC LIMIT :limit

-- name: add_start
-- A job of a rate-limited queue starts now.
INSERT INTO queue_starts (queue, started_at) VALUES (:queue, :now)

-- name: set_reopen
-- When a rate-limited queue with held jobs has room in its window again (NULL: now).
UPDATE queue_limits SET reopen_at = :at WHERE queue = :queue

-- name: reopened
-- Rate-limited queues whose window has room again.
SELECT queue FROM queue_limits WHERE reopen_at <= :now

-- name: hold_queue
-- A queue's limit is full: its gated jobs leave the claim's range (those another
-- transaction has locked stay gated: it decides on them).
UPDATE jobs SET ready = {HELD_QUEUE} WHERE seq = ANY(ARRAY(SELECT seq FROM jobs
    WHERE ready = {GATED} AND queue = :lane /*postgres: FOR UPDATE SKIP LOCKED*/))

-- name: hold_key
-- A key's limit is full: its gated jobs leave the claim's range.
UPDATE jobs SET ready = {HELD_KEY} WHERE seq = ANY(ARRAY(SELECT seq FROM jobs
    WHERE ready = {GATED} AND concurrency_key = :lane /*postgres: FOR UPDATE SKIP LOCKED*/))

-- name: claimed
-- What a claim sets on the jobs it takes.
state = 'processing', attempts = attempts + 1, worker_id = :worker,
    cancel_requested = FALSE, lease_until = :now + :lease, started_at = :now,
    updated_at = :now, waited = greatest(0, :now - run_at), finished_at = NULL,
    ready = {NOT_READY}

-- name: claim_gated
-- Take these gated jobs, if they still are (checked again on each row as it is now:
-- one taken or canceled since the candidates were read is left alone).
UPDATE jobs SET {claimed} WHERE seq = ANY(:seqs) AND ready = {GATED}
    AND state IN ('pending', 'failed')
RETURNING {JOB_COLUMNS}, seq

-- name: lanes_of
-- The queue (and whether it has limits) and the key of these jobs.
SELECT queue, concurrency_key, queue IN (SELECT queue FROM queue_limits) FROM jobs
WHERE id = ANY(:ids)

-- name: free_held_queue
-- Up to :room jobs held by the queue's limit back to the gates, in claim order.
UPDATE jobs SET ready = {GATED} WHERE seq = ANY(ARRAY(SELECT seq FROM jobs
    WHERE ready = {HELD_QUEUE} AND queue = :queue ORDER BY priority DESC, run_at, seq
    LIMIT :room /*postgres: FOR UPDATE SKIP LOCKED*/))

-- name: held_key_limit
-- The limit of the first job held by a key (the one freeing would take first).
SELECT concurrency_limit FROM jobs WHERE ready = {HELD_KEY} AND concurrency_key = :key
ORDER BY priority DESC, run_at, seq LIMIT 1

-- name: free_held_key
-- Up to :room jobs held by the key's limit back to the gates, in claim order.
UPDATE jobs SET ready = {GATED} WHERE seq = ANY(ARRAY(SELECT seq FROM jobs
    WHERE ready = {HELD_KEY} AND concurrency_key = :key ORDER BY priority DESC, run_at, seq
    LIMIT :room /*postgres: FOR UPDATE SKIP LOCKED*/))

-- name: queues_holding
-- Queues with limits (each may hold jobs).
SELECT queue FROM queue_limits

-- name: keys_holding
-- The keys that hold jobs, each once: one index probe per key (a loose index scan).
WITH RECURSIVE k(key) AS (
    SELECT min(concurrency_key) FROM jobs WHERE ready = {HELD_KEY}
    UNION ALL
    SELECT (SELECT min(concurrency_key) FROM jobs WHERE ready = {HELD_KEY}
        AND concurrency_key > k.key) FROM k WHERE k.key IS NOT NULL)
SELECT key FROM k WHERE key IS NOT NULL

------------------------------------------------------------------ workers and config

-- name: register_worker
-- A pool starts (or registers again after it was forgotten).
INSERT INTO workers (id, host, pid, slots, queues, started_at, heartbeat_at)
VALUES (:worker, :host, :pid, :slots, :queues, :now, :now)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at

-- name: unregister_worker
-- A pool exits.
DELETE FROM workers WHERE id = :worker

-- name: pools_alike
-- How many pools that take the same :queues (JSON, as registered) heartbeated within
-- the last :within seconds: idle pools without wake-ups share the polling.
SELECT count(*) FROM workers WHERE heartbeat_at >= :now - :within AND queues = :queues

-- name: workers
-- Pools that heartbeated within the last :within seconds.
SELECT id, host, pid, slots, queues, started_at, heartbeat_at, stop_requested
FROM workers WHERE heartbeat_at >= :now - :within ORDER BY started_at

-- name: running_jobs
-- Which worker holds which job.
SELECT worker_id, id FROM jobs WHERE state = 'processing' ORDER BY started_at

-- name: request_stop
-- Ask pools to drain (:level 1) or abort (2) and exit; a stop asked is never lowered.
UPDATE workers SET stop_requested = greatest(stop_requested, :level) WHERE id = ANY(:ids)

-- name: config
-- Every stored config value (JSON text).
SELECT key, value FROM config

-- name: set_config
-- Store one config value.
INSERT INTO config (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: unset_config
-- Back to the default.
DELETE FROM config WHERE key = :key

------------------------------------------------------------------ adding jobs

-- name: now
-- The store's clock, as the transaction sees it.
SELECT :now

-- name: insert_job
-- A new job.
INSERT INTO jobs ({NEW_COLUMNS}) VALUES ({NEW_VALUES}) RETURNING seq

-- name: import_job
-- An exported job, complete.
INSERT INTO jobs ({IMPORT_COLUMNS}) VALUES ({IMPORT_VALUES}) RETURNING seq

-- name: paused_queues
-- The paused queues (read in the caller's transaction).
SELECT queue, paused_at FROM paused_queues ORDER BY queue

-- name: queue_gates
-- The paused queues (false) and those with limits (true), for the `ready` of new jobs.
SELECT queue, FALSE FROM paused_queues UNION ALL SELECT queue, TRUE FROM queue_limits

-- name: unfinished_with_id
-- A unique job's twin: the same id, not finished.
SELECT id FROM jobs WHERE id = :id AND state = ANY(:unfinished)

-- name: unfinished_with_key
-- The unfinished job that holds a unique_key.
SELECT id FROM jobs WHERE unique_key = :key AND state = ANY(:unfinished)

-- name: mark_dependencies
-- Mark (and so lock) a new job's dependencies: one that completes meanwhile waits for
-- this commit and then unblocks the new job. Returns their states.
UPDATE jobs SET has_dependents = TRUE WHERE id = ANY(:ids) RETURNING id, state

-- name: add_dependencies
-- The new job :seq waits for these jobs: their completion, or (:any_outcome) their end
-- whatever it is.
INSERT INTO job_deps (job_seq, dep_seq, any_outcome)
SELECT :seq, seq, :any_outcome FROM jobs WHERE id = ANY(:ids)

-- name: add_tags
-- The tags of new jobs: job :ids[i] has tag :tags[i].
INSERT INTO job_tags (job_seq, tag)
SELECT j.seq, t.tag FROM unnest(CAST(:ids AS text[]), CAST(:tags AS text[])) AS t (id, tag)
    JOIN jobs j ON j.id = t.id

-- name: add_tags.sqlite
-- The same with the two lists as JSON arrays, paired by their index.
INSERT INTO job_tags (job_seq, tag)
SELECT j.seq, t.value FROM json_each(:ids) i JOIN json_each(:tags) t ON t.key = i.key
    JOIN jobs j ON j.id = i.value

-- name: import_output
-- An imported job's latest output.
INSERT INTO job_output (job_seq, output) SELECT seq, :output FROM jobs WHERE id = :id

-- name: import_run
-- An exported run, into the history of its (imported) job.
INSERT INTO job_runs (job_seq, attempt, queue, worker_id, started_at, finished_at, waited,
    outcome, exit_code, error)
SELECT seq, :attempt, :queue, :worker_id, :started_at, :finished_at, :waited, :outcome,
    :exit_code, :error FROM jobs WHERE id = :job_id

-- name: import_run_output
-- An exported run's output, with the run import_run just inserted (its job's latest).
INSERT INTO job_run_output (run_id, output, streams)
SELECT max(r.id), :output, :streams FROM job_runs r JOIN jobs j ON j.seq = r.job_seq
WHERE j.id = :job_id

-- name: import_paused
-- An exported paused queue, paused when it was; nothing when it is paused here already.
INSERT INTO paused_queues (queue, paused_at) VALUES (:queue, :paused_at)
ON CONFLICT (queue) DO NOTHING

-- name: import_schedule
-- An exported schedule, complete; no row back when the name is taken.
INSERT INTO schedules (name, cron, tz, spec, next_at, paused, created_at, last_at, last_job)
VALUES (:name, :cron, :tz, :spec, :next_at, :paused, :created_at, :last_at, :last_job)
ON CONFLICT (name) DO NOTHING RETURNING name

-- name: import_hook
-- An exported hook, added when it was (its events as ',a,b,'); no row back when the
-- name is taken.
INSERT INTO hooks (name, events, command, url, queue, created_at)
VALUES (:name, :events, :command, :url, :queue, :created_at)
ON CONFLICT (name) DO NOTHING RETURNING name

-- name: existing_ids
-- Which of these ids are taken (to name a duplicate).
SELECT id FROM jobs WHERE id = ANY(:ids) LIMIT 1

------------------------------------------------------------------ controlling jobs

-- name: job_states
-- The jobs' states, locked until the transaction ends.
SELECT id, state FROM jobs WHERE id = ANY(:ids) /*postgres: FOR UPDATE*/

-- name: selected
-- The jobs a selection matches (sql.selection), locked until the transaction ends.
SELECT id, state FROM jobs{where} ORDER BY seq /*postgres: FOR UPDATE*/

-- name: dependents
-- These jobs and every unfinished job that waits for one of them, transitively (both
-- kinds of dependency), with their states, locked until the transaction ends: what
-- `cancel --with-dependents` takes.
WITH RECURSIVE taken (seq) AS (
    SELECT seq FROM jobs WHERE id = ANY(:ids)
    UNION
    SELECT x.job_seq FROM taken t JOIN job_deps x ON x.dep_seq = t.seq
        JOIN jobs w ON w.seq = x.job_seq WHERE w.state = ANY(:unfinished))
SELECT j.id, j.state FROM jobs j JOIN taken t ON t.seq = j.seq
WHERE j.state = ANY(:unfinished) ORDER BY j.seq /*postgres: FOR UPDATE OF j*/

-- name: stranded
-- How many unfinished jobs wait for one of these through --after, transitively: they
-- never run while it stays canceled, and neither does any job that waits for them
-- (either kind). A job that waits for one of these whatever its outcome runs.
WITH RECURSIVE stuck (seq) AS (
    SELECT x.job_seq FROM jobs d JOIN job_deps x ON x.dep_seq = d.seq
    WHERE d.id = ANY(:ids) AND NOT x.any_outcome
    UNION
    SELECT x.job_seq FROM stuck s JOIN job_deps x ON x.dep_seq = s.seq)
SELECT count(*) FROM stuck s JOIN jobs j ON j.seq = s.seq WHERE j.state = ANY(:unfinished)

-- name: cancel_waiting
-- Waiting jobs canceled at once.
UPDATE jobs SET state = 'canceled', ready = {NOT_READY}, finished_at = :now, updated_at = :now
WHERE id = ANY(:ids)

-- name: cancel_running
-- Running jobs marked: their pool kills them at its next heartbeat.
UPDATE jobs SET cancel_requested = TRUE, updated_at = :now WHERE id = ANY(:ids)

-- name: retry_failed
-- Failed jobs run now instead of after their backoff.
UPDATE jobs SET run_at = :now, updated_at = :now, ready = {ready_now} WHERE id = ANY(:ids)

-- name: revived
-- A dead job back to pending, due now, its attempts reset.
state = 'pending', attempts = 0, run_at = :now, updated_at = :now, finished_at = NULL,
    worker_id = NULL, ready = {ready_now}

-- name: revive
-- These dead jobs back to pending.
UPDATE jobs SET {revived} WHERE id = ANY(:ids)

-- name: requeue
-- Completed or canceled jobs run again as new.
UPDATE jobs SET state = 'pending', attempts = 0, run_at = :now, updated_at = :now,
    finished_at = NULL, worker_id = NULL, cancel_requested = FALSE,
    ready = CASE WHEN blockers > 0 THEN {NOT_READY} ELSE {ready_now} END
WHERE id = ANY(:ids)

-- name: edit
-- Change a waiting job ({changes}: `column = :column, …`); :run_at and :queue are as
-- they are now or as changed (SET reads the old row), so `ready` follows the change.
UPDATE jobs SET {changes}, updated_at = :now,
    ready = CASE WHEN blockers > 0 OR :run_at > :now THEN {NOT_READY}
        WHEN :queue IN (SELECT queue FROM paused_queues) THEN {PAUSED}
        WHEN concurrency_key IS NOT NULL OR slots > 1
            OR :queue IN (SELECT queue FROM queue_limits) THEN {GATED}
        ELSE {READY} END
WHERE id = :id

-- name: job_for_edit
-- A job's state, run_at and queue, locked until the transaction ends.
SELECT state, run_at, queue, seq FROM jobs WHERE id = :id /*postgres: FOR UPDATE*/

-- name: forget_tags
-- A job's tags, before it gets new ones.
DELETE FROM job_tags WHERE job_seq = :seq

-- name: purge
-- Up to :limit jobs in :states finished before :before (any time when NULL), but none
-- that another job waits for (it would wait forever) and none another transaction is
-- changing; the outer condition is checked again on each row as it is now.
DELETE FROM jobs WHERE seq = ANY(ARRAY(SELECT seq FROM jobs
        WHERE state = ANY(:states){finished_before}
        AND NOT EXISTS (SELECT 1 FROM job_deps d WHERE d.dep_seq = jobs.seq)
        LIMIT :limit /*postgres: FOR UPDATE SKIP LOCKED*/))
    AND state = ANY(:states){finished_before}
RETURNING seq

-- name: purge_kept
-- How many jobs in :states finished before :before (any time when NULL) purge keeps
-- because another job waits for them.
SELECT count(*) FROM jobs WHERE state = ANY(:states){finished_before}
    AND EXISTS (SELECT 1 FROM job_deps d WHERE d.dep_seq = jobs.seq)

-- name: waiters
-- Unfinished jobs that wait for any of these.
SELECT d.id, w.id FROM jobs d JOIN job_deps x ON x.dep_seq = d.seq
    JOIN jobs w ON w.seq = x.job_seq
WHERE d.id = ANY(:ids) AND w.state = ANY(:unfinished) ORDER BY w.seq

-- name: forget_dependents
-- Finished jobs that once waited for these let go of them.
DELETE FROM job_deps WHERE dep_seq IN (SELECT seq FROM jobs WHERE id = ANY(:ids))

-- name: delete
-- Delete jobs (their output and runs go with them: ON DELETE CASCADE).
DELETE FROM jobs WHERE id = ANY(:ids)

------------------------------------------------------------------ paused queues

-- name: pause
-- Record a paused queue.
INSERT INTO paused_queues (queue, paused_at) VALUES (:queue, :now)
ON CONFLICT (queue) DO NOTHING

-- name: park_paused
-- A paused queue's ready jobs (gated and held ones too) leave the claim index.
UPDATE jobs SET ready = {PAUSED} WHERE queue = ANY(:queues)
    AND state IN ('pending', 'failed') AND ready IN ({READY}, {GATED}, {HELD_QUEUE}, {HELD_KEY})
    AND queue IN (SELECT queue FROM paused_queues)

-- name: resume
-- Forget paused queues; returns those that were paused.
DELETE FROM paused_queues WHERE queue = ANY(:queues) RETURNING queue

-- name: unpark_resumed
-- A resumed queue's jobs come back to the claim index (or the gates).
UPDATE jobs SET ready = {ready_now} WHERE ready = {PAUSED} AND queue = ANY(:queues)
    AND queue NOT IN (SELECT queue FROM paused_queues)

------------------------------------------------------------------ schedules

-- name: add_schedule
-- A new schedule; no row back when the name is taken.
INSERT INTO schedules (name, cron, tz, spec, next_at, created_at)
VALUES (:name, :cron, :tz, :spec, :next_at, :now)
ON CONFLICT (name) DO NOTHING RETURNING name

-- name: remove_schedule
-- Forget a schedule.
DELETE FROM schedules WHERE name = :name RETURNING name

-- name: set_schedule_paused
-- Pause or resume a schedule (resuming sets its next tick); no row when it was so already.
UPDATE schedules SET paused = :paused, next_at = coalesce(:next_at, next_at)
WHERE name = :name AND paused <> :paused RETURNING name

-- name: move_schedule
-- Take a schedule's tick: only if it is still :tick and the schedule is not paused.
UPDATE schedules SET next_at = :next_at, last_at = :run_at, last_job = :job
WHERE name = :name AND next_at = :tick AND NOT paused RETURNING name

-- name: add_scheduled_job
-- A schedule's run; its id names the schedule and tick, so no tick is enqueued twice.
INSERT INTO jobs ({NEW_COLUMNS}) VALUES ({NEW_VALUES}) ON CONFLICT (id) DO NOTHING

-- name: schedules
-- Every schedule, by name.
SELECT name, cron, tz, spec, next_at, paused, created_at, last_at, last_job
FROM schedules ORDER BY name

------------------------------------------------------------------ reads

-- name: get
-- One job.
SELECT {JOB_COLUMNS} FROM jobs WHERE id = :id

-- name: jobs
-- Jobs in insertion order ({order}: empty or DESC); {where} is empty or a selection
-- (sql.selection), {limit} empty or `LIMIT :limit`.
SELECT {JOB_COLUMNS} FROM jobs{where} ORDER BY seq{order}{limit}

-- name: page_part
-- One range of an index for a page: jobs matching {where}, in seq order ({order}),
-- after the cursor; the dashboard's pages merge one per state when a queue is chosen.
SELECT * FROM (SELECT seq, {JOB_COLUMNS} FROM jobs{where} ORDER BY seq{order} LIMIT :limit) s

-- name: waits
-- The dependencies that jobs still wait for: (job id, dependency id, its state, whether
-- any outcome of it will do).
SELECT w.id, d.id, d.state, x.any_outcome FROM job_deps x JOIN jobs w ON w.seq = x.job_seq
    JOIN jobs d ON d.seq = x.dep_seq
WHERE w.id = ANY(:ids) ORDER BY d.seq

-- name: next_queue
-- The first queue name after :after (one index probe each: no scan of all jobs).
SELECT min(queue) FROM jobs WHERE queue > :after

-- name: count
-- Jobs in one state (one range of an index).
SELECT count(*) FROM jobs WHERE state = :state

-- name: counts
-- Jobs per state.
SELECT state, count(*) FROM jobs GROUP BY state

-- name: unfinished_counts
-- Jobs of these queues waiting or running, per queue and state (what `wait --queue`
-- waits for); pending jobs scheduled for later are left out. Reads the (queue, state)
-- index: only the unfinished jobs of those queues.
SELECT queue, state, count(*) FROM jobs
WHERE queue = ANY(:queues) AND state IN ('pending', 'failed', 'processing')
    AND NOT (state = 'pending' AND run_at > :now)
GROUP BY queue, state

-- name: queue_usage
-- Per queue with unfinished jobs: running, waiting (due, not running), scheduled.
SELECT queue, sum(CASE WHEN state = 'processing' THEN 1 ELSE 0 END),
    sum(CASE WHEN state <> 'processing' AND run_at <= :now THEN 1 ELSE 0 END),
    sum(CASE WHEN state <> 'processing' AND run_at > :now THEN 1 ELSE 0 END)
FROM jobs WHERE state IN ('pending', 'processing', 'failed') GROUP BY queue

-- name: flow_usage
-- What holds waiting jobs back, for the notes of the jobs shown (all in one statement,
-- never one per job): ('queue', q, n) jobs running in each of :queues, ('key', k, n)
-- jobs running with each of :keys, ('starts', q, n) starts of each rate-limited queue
-- of :queues within its window (taken :margin longer, as the claim takes it).
SELECT 'queue', queue, count(*) FROM jobs
WHERE state = 'processing' AND queue = ANY(:queues) GROUP BY queue
UNION ALL
SELECT 'key', concurrency_key, count(*) FROM jobs
WHERE state = 'processing' AND concurrency_key = ANY(:keys) GROUP BY concurrency_key
UNION ALL
SELECT 'starts', l.queue, count(*) FROM queue_limits l
    JOIN queue_starts s ON s.queue = l.queue
        AND s.started_at > :now - l.rate_period - :margin
WHERE l.queue = ANY(:queues) AND l.rate_limit IS NOT NULL GROUP BY l.queue

-- name: queue_state_counts
-- Jobs per queue and state in one pass (when there are many queues).
SELECT queue, state, count(*) FROM jobs GROUP BY queue, state

-- name: queue_state_count
-- Jobs of queue :q{n} in state :s{n} (one range of the (queue, state) index); the
-- dashboard unions one per pair.
SELECT {n}, (SELECT count(*) FROM jobs WHERE queue = :q{n} AND state = :s{n})

-- name: throughput
-- Runs finished since :since per :step-second bucket and outcome.
SELECT floor(finished_at / :step), outcome, count(*) FROM job_runs
WHERE finished_at >= :since GROUP BY 1, 2 ORDER BY 1

-- name: throughput.sqlite
-- As above (SQLite may lack floor(); the times are positive, so a cast truncates).
SELECT CAST(finished_at / :step AS INTEGER), outcome, count(*) FROM job_runs
WHERE finished_at >= :since GROUP BY 1, 2 ORDER BY 1

-- name: runs_finished_since
-- Runs after (:finished_at, :id) in that order, for the metrics.
SELECT id, queue, outcome, finished_at - started_at, waited, finished_at FROM job_runs
WHERE finished_at >= :finished_at AND (finished_at > :finished_at OR id > :id)
ORDER BY finished_at, id LIMIT :limit

-- name: output
-- A job's latest output (no row: no such job).
SELECT o.output FROM jobs j LEFT JOIN job_output o ON o.job_seq = j.seq WHERE j.id = :id

-- name: export
-- Jobs with their output, in insertion order, a batch after :after.
SELECT j.seq, o.output, {EXPORT_COLUMNS} FROM jobs j
    LEFT JOIN job_output o ON o.job_seq = j.seq
WHERE j.seq > :after ORDER BY j.seq LIMIT :limit

-- name: export_runs
-- Finished runs with their job's id, in the order they were recorded, a batch after :after.
SELECT r.id, j.id, r.attempt, r.queue, r.worker_id, r.started_at, r.finished_at, r.waited,
    r.outcome, r.exit_code, r.error, o.output, o.streams
FROM job_runs r JOIN jobs j ON j.seq = r.job_seq LEFT JOIN job_run_output o ON o.run_id = r.id
WHERE r.id > :after ORDER BY r.id LIMIT :limit

-- name: runs
-- A job's finished runs, oldest first.
SELECT r.attempt, r.worker_id, r.started_at, r.finished_at, r.waited, r.outcome,
    r.exit_code, r.error
FROM job_runs r JOIN jobs j ON j.seq = r.job_seq WHERE j.id = :id ORDER BY r.id

-- name: run_counts
-- Runs finished since :since{queue}: per queue and outcome.
SELECT queue, outcome, count(*) FROM job_runs WHERE finished_at >= :since{queue}
GROUP BY queue, outcome

-- name: latest_runs
-- The latest :sample runs finished since :since{queue}: queue, run time, wait.
SELECT queue, finished_at - started_at, waited FROM job_runs
WHERE finished_at >= :since{queue} ORDER BY finished_at DESC LIMIT :sample

------------------------------------------------------------------ roles (roles.py, PostgreSQL)

-- name: lock_roles.postgres
-- Two `db roles` at once take turns (concurrent GRANTs on one table can fail).
SELECT pg_advisory_xact_lock(:key)

-- name: current_schema.postgres
-- The schema the queue's tables are in (the first of search_path that exists), as it is
-- and quoted for SQL.
SELECT current_schema()::text, quote_ident(current_schema())

-- name: schema_tables.postgres
-- The tables of the current schema, each with the sequence of its serial column where
-- :serials[i] names the table and :columns[i] the column (else NULL).
SELECT c.relname::text, pg_get_serial_sequence(
        quote_ident(current_schema()) || '.' || quote_ident(c.relname), s.col)
FROM pg_class c LEFT JOIN unnest(:serials::text[], :columns::text[]) AS s (tab, col)
    ON s.tab = c.relname
WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    AND c.relkind IN ('r', 'p')
ORDER BY 1

-- name: roles_named.postgres
-- Which of these roles exist.
SELECT rolname::text FROM pg_roles WHERE rolname = ANY(:names)

-- name: vacuum_candidates.postgres
-- The queue's tables past autovacuum's own threshold (50 rows + a fifth of the table),
-- most dead rows first; whether this role may vacuum each (it owns it) and its name.
SELECT s.relname::text, pg_has_role(c.relowner, 'USAGE'), current_user::text
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema() AND s.n_dead_tup > 50 + 0.2 * s.n_live_tup
ORDER BY s.n_dead_tup DESC

-- name: denied.postgres
-- After a refusal (42501): this role, the roles it is a member of, and which of
-- :privileges it lacks on table :table.
SELECT current_user::text,
    array(SELECT rolname::text FROM pg_roles
        WHERE pg_has_role(current_user, oid, 'MEMBER') AND rolname <> current_user
        ORDER BY rolname),
    array(SELECT p FROM unnest(:privileges::text[]) WITH ORDINALITY AS u (p, n)
        WHERE NOT has_table_privilege(:table, p) ORDER BY n)

------------------------------------------------------------------ hooks (store/hooks.py)

-- name: add_hook
-- A new hook (its events as ',a,b,'); no row back when the name is taken.
INSERT INTO hooks (name, events, command, url, queue, created_at)
VALUES (:name, :events, :command, :url, :queue, :now)
ON CONFLICT (name) DO NOTHING RETURNING name

-- name: remove_hook_events
-- The undelivered events of a hook being removed go with it.
DELETE FROM hook_events WHERE hook = :name

-- name: remove_hook
-- A hook; a row back when there was one.
DELETE FROM hooks WHERE name = :name RETURNING name

-- name: hooks
-- Every hook with its deliveries so far and its events still to deliver, by name.
SELECT name, events, command, url, queue, created_at, last_at, last_ok, last_error,
    failures, given_up,
    (SELECT count(*) FROM hook_events e WHERE e.hook = hooks.name AND e.done = 0)
FROM hooks ORDER BY name

-- name: hooks_exist
-- Whether any hook exists (a pool asks on each heartbeat whether to deliver).
SELECT EXISTS (SELECT 1 FROM hooks)

-- name: claim_hook_events
-- Take up to :limit due events no other pool holds, oldest first, leased to :holder
-- until now + :lease (a pool that dies mid-delivery lets the lease run out, and another
-- delivers: at-least-once), each attempt counted.
UPDATE hook_events SET lease_holder = :holder, lease_until = :now + :lease,
    attempts = attempts + 1
WHERE id = ANY(ARRAY(SELECT id FROM hook_events WHERE done = 0 AND next_try <= :now
    AND (lease_until IS NULL OR lease_until < :now)
    ORDER BY next_try, id LIMIT :limit /*postgres: FOR UPDATE SKIP LOCKED*/))
RETURNING id, hook, job_id, event, exit_code, attempts

-- name: hook_event_delivered
-- A delivery that worked: the event goes, if :holder still holds it.
DELETE FROM hook_events WHERE id = :id AND lease_holder = :holder RETURNING hook

-- name: hook_event_failed
-- A delivery that failed: tried again at :next_try, or given up (:done = 1), if
-- :holder still holds it.
UPDATE hook_events SET done = :done, next_try = :next_try, last_error = :error,
    lease_holder = NULL, lease_until = NULL
WHERE id = :id AND lease_holder = :holder RETURNING hook

-- name: hook_result
-- What a hook's latest delivery did, on the hook (`hook list`, the dashboard).
UPDATE hooks SET last_at = :now, last_ok = :ok, last_error = :error,
    failures = failures + (1 - :ok), given_up = given_up + :done
WHERE name = :name
