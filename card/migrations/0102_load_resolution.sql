-- Loads the kiosk never confirmed nor reversed (docs/terminal-protocol.md §6, card.terminal.host.
-- load_resolution): the host resolves them later on the card's own evidence, or an operator does.
-- ``resolution`` says how a load left 'authorised' when the kiosk did not say: the evidence
-- ("evidence: ...") or the operator ("operator <id>: ..."); NULL when the kiosk's CONFIRM or
-- REVERSAL resolved it.
ALTER TABLE card.terminal_loads ADD COLUMN resolution text;
-- The card's later records are the evidence; the accepted ones have their index (card counter),
-- the suspended ones (few: a refused debit, a listed card) get theirs.
CREATE INDEX terminal_records_suspended_card_idx ON card.terminal_records (app_serial, card_counter)
    WHERE status = 'suspended';
