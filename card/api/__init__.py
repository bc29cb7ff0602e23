"""HTTP routes of the card domain: the citizen app's (``citizen``) and the operators' (``admin``)."""
