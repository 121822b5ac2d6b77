-- jobs: one row per job; seq is the insertion order. Times are epoch seconds from the
-- database clock (the same representation as the SQLite backend).
CREATE TABLE jobs (
    seq         bigserial PRIMARY KEY,
    id          text             NOT NULL UNIQUE,
    command     text             NOT NULL,
    state       text             NOT NULL DEFAULT 'pending',
    attempts    integer          NOT NULL DEFAULT 0,
    max_retries integer          NOT NULL,
    priority    integer          NOT NULL DEFAULT 0,
    queue       text             NOT NULL DEFAULT 'default',
    run_at      double precision NOT NULL,
    timeout     double precision,
    cwd         text,
    env         text,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    started_at  double precision,
    finished_at double precision,
    exit_code   integer,
    last_error  text,
    worker_id   text,
    lease_until double precision,
    -- true while the job is waiting and due: claims read only these rows
    ready       boolean          NOT NULL DEFAULT false
);
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq) WHERE ready;
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE NOT ready AND state IN ('pending', 'failed');
CREATE INDEX jobs_running ON jobs (worker_id, lease_until) WHERE state = 'processing';
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE TABLE job_output (
    job_seq bigint PRIMARY KEY REFERENCES jobs (seq) ON DELETE CASCADE,
    output  bytea NOT NULL
);
CREATE TABLE config (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE workers (
    id             text PRIMARY KEY,
    host           text             NOT NULL,
    pid            integer          NOT NULL,
    slots          integer          NOT NULL,
    queues         text,
    started_at     double precision NOT NULL,
    heartbeat_at   double precision NOT NULL,
    stop_requested boolean          NOT NULL DEFAULT false
);
