"""The web pages the backend serves itself: the citizen's card page (``/web/``) and the operators'
console (``/console/``).

They compose several domains, so they live in the shell. Both are ordinary clients of the API:

* the citizen page is a relying party of the project's own OpenID provider (authorization code
  flow with PKCE, a confidential first-party client), holding the tokens server-side in a session
  whose only trace in the browser is an HttpOnly, SameSite=Lax cookie; it calls the card,
  payments, identity and home APIs over HTTP with the person's access token;
* the console signs in through identity's operator sign-in and calls the admin APIs with the
  operator's bearer token; what no admin API answers yet (activity per minute, settlements,
  reconciliations) it reads through :mod:`backend.web.reports`, read-only, behind the same roles.

HTTP calls go to the app itself in-process (``httpx.ASGITransport``): the same routing, guards,
error handling and audit as a request from outside, with no socket and no deadlock on one worker.
Templates are Jinja2 (autoescaped), the only JavaScript is ``static/card.js`` (QR refresh, order
polling) and ``static/console.js`` (the overview reloads itself, never while a note is typed);
charts are pygal SVGs rendered on the server. Nothing is loaded from a CDN.
"""
