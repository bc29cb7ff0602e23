-- Who froze a card, so that the holder may lift only a freeze they made themselves: a freeze by
-- the city's card service (an operator, or the system) is lifted by an operator. NULL unless the
-- card is frozen. Cards frozen now take the actor of their last freeze from their history (the
-- service's, should none be found: a freeze nobody can account for is not the holder's to lift).
ALTER TABLE card.cards ADD COLUMN frozen_by text CHECK (frozen_by IN ('holder', 'operator'));

UPDATE card.cards c
SET frozen_by = COALESCE(
    (SELECT CASE e.actor_kind WHEN 'person' THEN 'holder' ELSE 'operator' END
     FROM card.lifecycle_events e WHERE e.card_id = c.id AND e.action = 'freeze'
     ORDER BY e.id DESC LIMIT 1),
    'operator')
WHERE c.status = 'frozen';
