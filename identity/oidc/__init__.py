"""The OpenID Connect provider and single sign-on (issue 4).

One module per specification, as in authlib: discovery and JWKS (``discovery``, ``keys``), the
authorization endpoint (``authorize``, ``interaction`` for the login and consent pages), pushed
authorization requests (``par``), the token endpoint (``token``, ``exchange``), UserInfo
(``userinfo``), introspection and revocation (``introspection``), logout (``logout``), consent
(``consent``), clients and their authentication (``clients``, ``client_auth``), SSO sessions
(``sso``). Every endpoint is natively async (pyjwt + cryptography); authlib is not used server-side.
"""
