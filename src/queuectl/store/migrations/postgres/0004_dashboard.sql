-- Issue 5: the dashboard counts jobs per queue and state; with this index each count
-- reads a range of it instead of every row of the table. The queue never changes, so
-- only a state change touches it, as it does jobs_state. With seq, a page of one
-- queue and state comes from the index in order (SQLite has the rowid in every index).
CREATE INDEX jobs_queue_state ON jobs (queue, state, seq);
