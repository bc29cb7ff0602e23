-- Appointing an agent invites them: the row waits as 'invited' until the person accepts
-- ('active') or declines ('declined'). Until then they hold no role (every role check asks for
-- 'active'). A declined invitation does not block a new one.
ALTER TABLE identity.agents DROP CONSTRAINT agents_status_check;
ALTER TABLE identity.agents ADD CONSTRAINT agents_status_check
    CHECK (status IN ('invited', 'active', 'suspended', 'declined', 'removed'));
DROP INDEX identity.agents_one_live;
CREATE UNIQUE INDEX agents_one_live ON identity.agents (organisation_id, account_id)
    WHERE status NOT IN ('removed', 'declined');
