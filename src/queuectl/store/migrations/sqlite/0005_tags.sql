-- Issue 11: tags. A job's tags are kept twice: as a JSON list on the job (read with
-- it, no join) and a row each in job_tags, the index that `list --tag` and the
-- selectors read (a range of job_tags_tag, then the jobs by seq). Only tagged jobs
-- write job_tags: an untagged enqueue costs nothing more.
ALTER TABLE jobs ADD COLUMN tags TEXT;
CREATE TABLE job_tags (
    job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (job_seq, tag)
) WITHOUT ROWID;
CREATE INDEX job_tags_tag ON job_tags (tag, job_seq);
