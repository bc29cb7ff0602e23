-- The home keeps each inbox owner's card summary and unread count in Redis
-- (integrations.entrance.glance); these triggers say, on commit, whose changed:
-- NOTIFY citizen_home '<person|organisation>:<uuid>'. NOTIFY is transactional: a rolled-back
-- change says nothing, and the listener hears a committed one only after it is visible.
-- The card's tables are card's; the triggers only notify (low-rate tables: issue, status
-- changes, applications), and card never depends on them.
CREATE FUNCTION integrations.home_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner text;
BEGIN
    IF TG_TABLE_NAME = 'messages' THEN
        owner := NEW.recipient_kind || ':' || NEW.recipient_id;
    ELSIF TG_TABLE_NAME = 'cards' THEN
        owner := 'person:' || NEW.holder_id;
    ELSE  -- card.applications
        owner := 'person:' || (SELECT c.holder_id FROM card.cards c WHERE c.id = NEW.card_id);
    END IF;
    IF owner IS NOT NULL THEN
        PERFORM pg_notify('citizen_home', owner);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER home_message_added AFTER INSERT ON integrations.messages
    FOR EACH ROW EXECUTE FUNCTION integrations.home_changed();
CREATE TRIGGER home_message_read AFTER UPDATE OF read_at ON integrations.messages
    FOR EACH ROW WHEN (OLD.read_at IS DISTINCT FROM NEW.read_at) EXECUTE FUNCTION integrations.home_changed();
CREATE TRIGGER home_card_issued AFTER INSERT ON card.cards
    FOR EACH ROW EXECUTE FUNCTION integrations.home_changed();
CREATE TRIGGER home_card_status AFTER UPDATE OF status ON card.cards
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION integrations.home_changed();
CREATE TRIGGER home_card_application AFTER INSERT OR UPDATE OF status ON card.applications
    FOR EACH ROW EXECUTE FUNCTION integrations.home_changed();
