"""The identity subcommands: ``sms``, ``audit``, ``operators``, and the OpenID provider's ``keys`` and
``clients`` (their work is in identity/cli.py and identity/oidc/cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from backend.cli._common import Commands, run_on_servers, settings_from
from backend.keyring import Keyring
from backend.settings import Settings

COMMANDS: Commands = {}


def cmd_sms(args: argparse.Namespace) -> int:
    """``citizen sms tail``: what the development SMS gateway recorded (codes for the demo and tests)."""
    from identity.cli import sms_tail

    async def work(_pool: Any, client: Any, _settings: Settings) -> tuple[int, list[str]]:
        return 0, await sms_tail(client, args.n, args.mobile) or ["no messages recorded"]

    return run_on_servers(args, work)


def _sms_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["tail"], help="tail: print the latest messages")
    parser.add_argument("-n", type=int, default=10, help="how many messages (default 10)")
    parser.add_argument("--mobile", help="only messages to this number")


def cmd_audit(args: argparse.Namespace) -> int:
    """``citizen audit verify``: recompute the identity audit chain; exit 1 at the first broken entry.
    ``citizen audit seal``: chain the recorded events not sealed yet."""
    from identity.cli import audit_seal, audit_verify

    async def work(pool: Any, _client: Any, _settings: Settings) -> tuple[int, list[str]]:
        return await (audit_seal(pool) if args.action == "seal" else audit_verify(pool))

    return run_on_servers(args, work)


def _audit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["verify", "seal"],
        help="verify: recompute the hash chain; seal: chain the events recorded but not sealed yet",
    )


def cmd_operators(args: argparse.Namespace) -> int:
    """``citizen operators create``: an operator account (the first one is made this way)."""
    from identity.cli import operators_create

    async def work(pool: Any, _client: Any, settings: Settings) -> tuple[int, list[str]]:
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        return 0, await operators_create(
            pool,
            settings.identity,
            username=args.username,
            display_name=args.name or args.username,
            roles=args.role,
            password=password,
        )

    return run_on_servers(args, work)


def _operators_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create"], help="create: a new operator")
    parser.add_argument("--username", required=True, help="3-64 of a-z 0-9 . _ -")
    parser.add_argument("--name", help="display name (default: the username)")
    parser.add_argument(
        "--role",
        action="append",
        required=True,
        choices=["support", "auditor", "security_admin"],
        help="a role (repeat for several)",
    )
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (default: generate one)"
    )


COMMANDS["sms"] = ("development SMS gateway: 'tail' prints the latest messages", cmd_sms, _sms_args)
COMMANDS["audit"] = (
    "identity audit log: 'verify' recomputes the hash chain, 'seal' chains recorded events",
    cmd_audit,
    _audit_args,
)
COMMANDS["operators"] = (
    "city operators: 'create' makes an operator account",
    cmd_operators,
    _operators_args,
)


def cmd_keys(args: argparse.Namespace) -> int:
    """``citizen keys status|rotate``: the OpenID provider's signing keys (identity/oidc/cli.py)."""
    from identity.oidc import cli as oidc_cli

    keyring = Keyring.load(settings_from(args))

    async def work(pool: Any, _client: Any, settings: Settings) -> tuple[int, list[str]]:
        if args.action == "rotate":
            return 0, await oidc_cli.keys_rotate(pool, keyring, settings, args.alg or [], args.delay)
        return 0, await oidc_cli.keys_status(pool, keyring, settings)

    return run_on_servers(args, work)


def _keys_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "rotate"], help="status: list keys; rotate: new keys")
    parser.add_argument("--alg", action="append", choices=["ES256", "RS256", "EdDSA"], help="default: all")
    parser.add_argument("--delay", type=int, help="seconds the new key is published before it signs")


def cmd_clients(args: argparse.Namespace) -> int:
    """``citizen clients create|list``: OpenID clients (the admin API does the same, audited)."""
    from identity.oidc import cli as oidc_cli

    async def work(pool: Any, _client: Any, settings: Settings) -> tuple[int, list[str]]:
        if args.action == "list":
            return 0, await oidc_cli.clients_list(pool, settings)
        return 0, await oidc_cli.clients_create(pool, settings, client_registration(args))

    return run_on_servers(args, work)


def client_registration(args: argparse.Namespace) -> dict[str, Any]:
    """The registration ``citizen clients create`` sends, from its options."""
    raw: dict[str, Any] = {"name": args.name or "client", "redirect_uris": args.redirect_uri or []}
    if args.client_id:
        raw["client_id"] = args.client_id
    if args.public:
        raw.update(client_type="public", auth_method="none")
    elif args.auth_method:
        raw["auth_method"] = args.auth_method
    if args.scope:
        raw["scopes"] = args.scope
    if args.grant_type:
        raw["grant_types"] = args.grant_type
    if args.web_origin:
        raw["web_origins"] = args.web_origin
    return raw


def _clients_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create", "list"], help="create: register a client; list: all")
    parser.add_argument("--client-id", help="default: generated")
    parser.add_argument("--name", help="shown on the login and consent pages")
    parser.add_argument("--redirect-uri", action="append", help="exact redirect URI (repeat for several)")
    parser.add_argument("--public", action="store_true", help="a public client (PKCE, no secret)")
    parser.add_argument("--auth-method", choices=["client_secret_basic", "client_secret_post"])
    parser.add_argument("--scope", action="append", help="an allowed scope (repeat)")
    parser.add_argument("--grant-type", action="append", help="an allowed grant type (repeat)")
    parser.add_argument(
        "--web-origin",
        action="append",
        help="a browser origin allowed to call token/userinfo/revocation (CORS; repeat); "
        "default: the redirect URIs' origins",
    )


COMMANDS["keys"] = ("OpenID signing keys: 'status', or 'rotate' (publish before sign)", cmd_keys, _keys_args)
COMMANDS["clients"] = (
    "OpenID clients: 'create' (the secret is shown once) or 'list'",
    cmd_clients,
    _clients_args,
)
