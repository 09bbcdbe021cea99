-- A role for audit queries (`dbos sql`): it may read dbos's tables and
-- nothing else. `dbos sql` runs each query in a READ ONLY transaction and,
-- when the connecting user is a member of this role, under SET LOCAL ROLE
-- dbos_reader, so the server refuses writes twice over. Creating a role
-- needs CREATEROLE (or superuser); without it this migration only says so,
-- and audit queries rely on the read-only transaction alone.
DO $$
BEGIN
    -- Roles belong to the whole cluster: databases migrating at the same
    -- time may both try to create it; the loser finds it made.
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dbos_reader') THEN
            CREATE ROLE dbos_reader NOLOGIN NOINHERIT;
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO dbos_reader', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO dbos_reader', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO dbos_reader', current_schema());
    BEGIN
        EXECUTE format('GRANT dbos_reader TO %I', current_user);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'dbos: no privilege to set up role dbos_reader (%); audit queries rely on read-only transactions alone', SQLERRM;
END $$;
