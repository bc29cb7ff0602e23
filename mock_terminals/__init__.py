"""Simulated terminals that speak the terminal protocol exactly as a vendor's would.

They use only the public wire codec (``card.terminal.spec``/``tlv``/``messages``/``records``),
the pure e-purse functions (``card.crypto``) and the QR library (``card.qr``); never the host.

* :mod:`.card` — a software PBOC e-purse card answering APDUs; :mod:`.psam` — a software PSAM;
* :mod:`.link` — the TCP client (sign-on, MACs, sequence numbers, re-sign-on, reconnects);
* :mod:`.bus` — a bus reader (offline taps, QR, store and forward, blacklist);
* :mod:`.kiosk` — online load; :mod:`.phone` — a phone showing ride QR codes;
* :mod:`.cli` — ``citizen-terminals bus|kiosk|phone|load``.
"""
