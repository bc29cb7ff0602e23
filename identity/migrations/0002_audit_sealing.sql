-- Audit appends without a global lock. An audited transaction inserts its event into
-- identity.audit_pending (no chaining, no shared row); a sealer (identity/audit/sealer.py, also
-- `citizen audit seal`) moves committed pending events, in batches, into the chain
-- identity.audit_log, computing prev_hash/hash exactly as identity.audit_append did. The chain's
-- order is the sealing order (roughly commit order), so a transaction that commits late, or a
-- sequence value lost to a rollback, never leaves a gap or a misplaced entry in the chain.
--
-- Each pending row carries the digest the application computed from the event when it was
-- recorded; the sealer chains that digest, and `citizen audit verify` recomputes it from the sealed
-- columns, so a pending row edited before sealing shows as broken once sealed.
CREATE TABLE identity.audit_pending (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at     timestamptz NOT NULL,
    actor_kind      text        NOT NULL,
    actor_id        text,
    acting_for      text,
    action          text        NOT NULL,
    target_kind     text,
    target_id       text,
    outcome         text        NOT NULL,
    client_address  text,
    client_id       text,
    request_id      text,
    details         jsonb       NOT NULL DEFAULT '{}',
    digest          bytea       NOT NULL CHECK (length(digest) = 32)
);
CREATE INDEX audit_pending_by_actor ON identity.audit_pending (actor_id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_pending_by_target ON identity.audit_pending (target_id) WHERE target_id IS NOT NULL;
CREATE INDEX audit_pending_by_acting_for ON identity.audit_pending (acting_for) WHERE acting_for IS NOT NULL;

-- Seal at most p_limit committed pending events. One sealer at a time (a transaction-scoped
-- advisory lock, tried, never waited for: a busy sealer returns sealed = -1 at once), and the head's
-- row lock besides, so that two sealers can never chain the same event. Returns how many were
-- sealed and whether committed pending events remain.
CREATE FUNCTION identity.audit_seal(p_limit integer)
RETURNS TABLE (sealed integer, more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_seq    bigint;
    v_prev   bytea;
    v_ids    bigint[]  := '{}';
    v_seqs   bigint[]  := '{}';
    v_prevs  bytea[]   := '{}';
    v_hashes bytea[]   := '{}';
    r        record;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1229210964) THEN  -- 0x4944_4954 "IDIT"
        RETURN QUERY SELECT -1, true;
        RETURN;
    END IF;
    SELECT h.seq, h.hash INTO v_seq, v_prev FROM identity.audit_head h WHERE h.singleton FOR UPDATE;
    FOR r IN SELECT p.id, p.digest FROM identity.audit_pending p ORDER BY p.id LIMIT p_limit LOOP
        v_seq := v_seq + 1;
        v_ids := v_ids || r.id;
        v_seqs := v_seqs || v_seq;
        v_prevs := v_prevs || v_prev;
        v_prev := sha256(v_prev || int8send(v_seq) || r.digest);
        v_hashes := v_hashes || v_prev;
    END LOOP;
    IF cardinality(v_ids) > 0 THEN
        INSERT INTO identity.audit_log
            (seq, occurred_at, actor_kind, actor_id, acting_for, action, target_kind, target_id,
             outcome, client_address, client_id, request_id, details, prev_hash, hash)
        SELECT u.seq, p.occurred_at, p.actor_kind, p.actor_id, p.acting_for, p.action, p.target_kind,
               p.target_id, p.outcome, p.client_address, p.client_id, p.request_id, p.details,
               u.prev, u.hash
        FROM unnest(v_ids, v_seqs, v_prevs, v_hashes) AS u (id, seq, prev, hash)
        JOIN identity.audit_pending p ON p.id = u.id
        ORDER BY u.seq;
        PERFORM set_config('identity.audit_sealing', 'on', true);
        DELETE FROM identity.audit_pending p WHERE p.id = ANY (v_ids);
        PERFORM set_config('identity.audit_sealing', 'off', true);
        UPDATE identity.audit_head h SET seq = v_seq, hash = v_prev WHERE h.singleton;
    END IF;
    RETURN QUERY SELECT cardinality(v_ids), EXISTS (SELECT 1 FROM identity.audit_pending);
END
$$;

-- Pending events are never edited, and only the sealer removes them (a guard, not the proof).
CREATE FUNCTION identity.audit_pending_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('identity.audit_sealing', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'identity.audit_pending is append-only (the sealer alone removes events)'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_pending_no_update_delete BEFORE UPDATE OR DELETE ON identity.audit_pending
    FOR EACH ROW EXECUTE FUNCTION identity.audit_pending_guard();
CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON identity.audit_pending
    FOR EACH STATEMENT EXECUTE FUNCTION identity.audit_pending_guard();

-- Every event, sealed (seq) or not yet (pending_id): for reading; verification reads the tables.
CREATE VIEW identity.audit_events AS
    SELECT seq, NULL::bigint AS pending_id, occurred_at, actor_kind, actor_id, acting_for, action,
           target_kind, target_id, outcome, client_address, client_id, request_id, details, true AS sealed
    FROM identity.audit_log
    UNION ALL
    SELECT NULL, id, occurred_at, actor_kind, actor_id, acting_for, action,
           target_kind, target_id, outcome, client_address, client_id, request_id, details, false
    FROM identity.audit_pending;

-- The direct, head-locking append is no longer used: drop it so that nothing serialises on it again.
DROP FUNCTION identity.audit_append(
    timestamptz, text, text, text, text, text, text, text, text, text, text, jsonb, bytea);
