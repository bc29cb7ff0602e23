-- A kiosk's REVERSAL is the kiosk's word, not the card's: after a torn CREDIT FOR LOAD (no answer)
-- the card may hold the credit (card-protocol.md §1.7, GET TRANSACTION PROVE). A reversed load
-- leaves the card counter index (0101), so nothing noticed when the card's later activity showed
-- the credit had happened (docs/terminal-protocol.md §6.2, card.terminal.host.load_reversals).
-- The host now keeps looking at a reversed load until the card's evidence settles it:
--   reversal_evidence  what the card showed that bears the reversal out (the note of that
--                      evidence, or the operator's), NULL while the card has shown nothing yet;
--                      a load the resolution job itself reversed on evidence has it from then.
--   reversal_doubt     evidence that contradicts the reversal but cannot say which of several
--                      reversed loads at the same card counter the card took: listed as doubtful
--                      for the operators.
-- A reversed load the evidence shows credited is reinstated: state 'confirmed', its money moved
-- by a second, posted transfer (id uuid5(load_id, 'reinstated'); transfer_id keeps the voided one).
ALTER TABLE card.terminal_loads ADD COLUMN reversal_evidence text, ADD COLUMN reversal_doubt text;
UPDATE card.terminal_loads SET reversal_evidence = resolution
    WHERE state = 'reversed' AND resolution LIKE 'evidence:%';
-- The card's reversed loads at one counter (a LOAD's look-up asks for those at its counter - 1).
CREATE INDEX terminal_loads_reversed_card_idx ON card.terminal_loads (app_serial, online_counter)
    WHERE state = 'reversed';
-- The reversed loads the job still looks at.
CREATE INDEX terminal_loads_reversed_open_idx ON card.terminal_loads (created_at)
    WHERE state = 'reversed' AND reversal_evidence IS NULL;
