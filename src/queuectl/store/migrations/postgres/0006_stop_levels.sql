-- Issue 11: `worker stop --now`. A stop request is a level the pool reads at its
-- heartbeat: 0 none, 1 drain (finish the running jobs, then exit), 2 abort (kill them
-- and hand them back unspent, as a second signal does, then exit).
ALTER TABLE workers ALTER COLUMN stop_requested DROP DEFAULT;
ALTER TABLE workers ALTER COLUMN stop_requested TYPE smallint USING stop_requested::int;
ALTER TABLE workers ALTER COLUMN stop_requested SET DEFAULT 0;
