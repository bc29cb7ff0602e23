-- A card could never be loaded online again after a reversal. UNIQUE (app_serial, online_counter)
-- on card.terminal_loads also held the reversed loads, but a reversal means the card was not
-- credited, so its online counter did not move: the next INITIALIZE FOR LOAD reports the same
-- counter, and that LOAD's insert (ON CONFLICT DO NOTHING) met the reversed row and was answered
-- LOAD_CONFLICT for ever. A card counter is now taken only by a load that is authorised (its
-- money reserved, the card perhaps credited) or confirmed; reversed rows stay, outside the index.
-- The LOAD statement keeps its ON CONFLICT DO NOTHING with no conflict target: untargeted, it
-- takes this partial index as an arbiter (a concurrent twin for the same card counter waits for
-- the first insert and then inserts nothing) as well as the load id's primary key.
-- One transaction (the runner's): the card counter is never without its uniqueness.
ALTER TABLE card.terminal_loads DROP CONSTRAINT terminal_loads_app_serial_online_counter_key;
CREATE UNIQUE INDEX terminal_loads_card_counter ON card.terminal_loads (app_serial, online_counter)
    WHERE state <> 'reversed';
