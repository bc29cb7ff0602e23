"""``python -m integrations.messages poll`` (see ``integrations.messages.poll``)."""

from __future__ import annotations

import sys

from integrations.messages.poll import main

sys.exit(main())
