-- jobs_ready in claim order with the priority negated, (-priority, run_at, seq): a
-- claim from its hint on (claim_hint.py) is then one range of the index, where with
-- (priority DESC, run_at, seq) it took two scans, one for the rest of the hint's own
-- priority and one for the lower ones (a third of a turn's claim).
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs ((-priority), run_at, seq) WHERE ready = 1;
