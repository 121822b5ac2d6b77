-- The trigger jobs_hooks (0009) is enabled only while hooks exist. Its plpgsql function
-- ran for every job recorded completed, failed, dead or canceled, hooks or none (a
-- trigger's WHEN cannot look at another table): 40 µs a job, a seventh of a pool's
-- turn. A statement trigger on hooks switches it after each insert or delete. The
-- switch is an ALTER TABLE, which only the tables' owner may make: the function runs as
-- its owner (SECURITY DEFINER, with its own search_path). The ALTER waits for the turns
-- in progress, then holds new ones until the hook's transaction commits.
CREATE FUNCTION queuectl_hooks_switch() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM hooks) THEN
        ALTER TABLE jobs ENABLE TRIGGER jobs_hooks;
    ELSE
        ALTER TABLE jobs DISABLE TRIGGER jobs_hooks;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER hooks_switch AFTER INSERT OR DELETE ON hooks
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_hooks_switch();
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM hooks) THEN
        ALTER TABLE jobs DISABLE TRIGGER jobs_hooks;
    END IF;
END $$;
