"""The citizen app's card API: a person at L2 or above acting for themselves, on their own card."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from card.api.models import DeviceActivationRequest, DocumentKeys, QrParameters
from card.api.services import CardServices
from card.applications import HolderDetails
from card.devices.service import Activation
from card.errors import CardForbidden
from card.lifecycle.views import CardView
from identity.auth import Principal, requires_loa, requires_person

__all__ = ["CitizenCardController", "DemoPhoneController", "DocumentKeysController", "QrParametersController"]

Req = Request[Any, Any, Any]
_GUARDS = [requires_person, requires_loa(2)]


def _own(principal: Principal) -> uuid.UUID:
    if principal.acting_for is not None:
        raise CardForbidden("switch back to acting for yourself to manage your own card")
    return principal.account_id


class CitizenCardController(Controller):
    path = "/api/v1/cards"
    tags = ["card"]  # noqa: RUF012
    guards = _GUARDS

    @post("", operation_id="ApplyForCard", status_code=HTTP_201_CREATED)
    async def apply(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        """Apply for the citizen card (one per person; needs L2). 409 ``card-exists`` if you have one."""
        holder = HolderDetails(person_id=_own(principal), loa=principal.loa)
        return await card.cards.issue(holder, card.actor(principal, request))

    @get("/me", operation_id="GetMyCard")
    async def mine(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        """Your card (issued now, automatically, if you never had one: you are at L2 or above)."""
        holder = HolderDetails(person_id=_own(principal), loa=principal.loa)
        return await card.cards.card_for_holder(holder, card.actor(principal, request))

    @post("/me/applications/refresh", operation_id="RefreshMyCardApplications", status_code=HTTP_200_OK)
    async def refresh_applications(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        """Look up the pending social security and health applications again at their upstreams."""
        card_id = await card.cards.card_id_for_holder(_own(principal))
        return await card.cards.refresh_applications(card_id, card.actor(principal, request))

    @post("/me/devices", operation_id="ActivateCardOnDevice", status_code=HTTP_201_CREATED)
    async def activate(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        data: JSONBody[DeviceActivationRequest],
    ) -> Activation:
        """Bind the card to this phone's P-256 key; any previously bound phone is revoked and blacklisted."""
        card_id = await card.cards.card_id_for_holder(_own(principal))
        return await card.devices.activate(
            card_id, data.device_public_key, card.actor(principal, request), label=data.label
        )

    async def _act(self, action: str, request: Req, principal: Principal, card: CardServices) -> CardView:
        card_id = await card.cards.card_id_for_holder(_own(principal))
        actor = card.actor(principal, request)
        operations = {
            "freeze": card.cards.freeze,
            "unfreeze": card.cards.unfreeze,
            "report_loss": card.cards.report_loss,
            "reissue": card.cards.reissue,
            "request_physical": card.cards.request_physical,
        }
        return await operations[action](card_id, actor)

    @post("/me/freeze", operation_id="FreezeMyCard", status_code=HTTP_200_OK)
    async def freeze(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        return await self._act("freeze", request, principal, card)

    @post("/me/unfreeze", operation_id="UnfreezeMyCard", status_code=HTTP_200_OK)
    async def unfreeze(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        """Lift your own freeze. 403 ``card-frozen-by-operator`` if the card service froze the card."""
        return await self._act("unfreeze", request, principal, card)

    @post("/me/loss", operation_id="ReportMyCardLost", status_code=HTTP_200_OK)
    async def report_loss(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        """Report the card lost: blacklisted at once, the phone unbound. Idempotent."""
        return await self._act("report_loss", request, principal, card)

    @post("/me/reissue", operation_id="ReissueMyCard", status_code=HTTP_201_CREATED)
    async def reissue(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        """A new card number; the old purse's balance follows after the settlement window."""
        return await self._act("reissue", request, principal, card)

    @post("/me/close", operation_id="CloseMyCard", status_code=HTTP_200_OK)
    async def close(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
    ) -> CardView:
        """Close the card. Once the settlement window for offline taps has passed (``refund_due_at``)
        its e-purse balance, less the taps uploaded meanwhile, goes back to the channels it was paid
        through; ``refund.unrefunded`` is then what the card desk pays out (cash loads, refused
        refunds)."""
        card_id = await card.cards.card_id_for_holder(_own(principal))
        actor = card.actor(principal, request)
        return await card.cards.close(card_id, actor)

    @post("/me/physical-requests", operation_id="RequestPhysicalCard", status_code=HTTP_200_OK)
    async def request_physical(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> CardView:
        return await self._act("request_physical", request, principal, card)


class QrParametersController(Controller):
    path = "/api/v1/cards/qr-parameters"
    tags = ["card"]  # noqa: RUF012

    @get("", operation_id="GetQrParameters")
    async def qr_parameters(self, card: NamedDependency[CardServices]) -> QrParameters:
        """Public: the platform keys, issuer id and QR validity an app or reader needs offline."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        keys = await card.keys.qr_public_keys()
        return QrParameters(
            issuer_id=card.settings.issuer_code,
            qr_validity_seconds=card.settings.qr_validity_seconds,
            platform_keys={
                str(k): v.public_bytes(Encoding.X962, PublicFormat.CompressedPoint) for k, v in keys.items()
            },
        )


class DocumentKeysController(Controller):
    path = "/api/v1/cards/document-keys"
    tags = ["card"]  # noqa: RUF012

    @get("", operation_id="GetDocumentKeys")
    async def document_keys(self, card: NamedDependency[CardServices]) -> DocumentKeys:
        """Public: the document-signing keys a card bureau verifies personalisation files with
        (every version still published; a file names its ``key_id``)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        keys = await card.keys.document_public_keys()
        return DocumentKeys(
            algorithm="ES256",
            document_keys={
                str(k): v.public_bytes(Encoding.X962, PublicFormat.CompressedPoint) for k, v in keys.items()
            },
        )


class DemoPhoneController(Controller):
    """Development only: the demo page's simulated phone (the server holds its key)."""

    path = "/api/v1/cards/me/demo-phone"
    tags = ["card-demo"]  # noqa: RUF012
    guards = _GUARDS

    @post("", operation_id="ActivateDemoPhone", status_code=HTTP_201_CREATED)
    async def activate(
        self, request: Req, principal: NamedDependency[Principal], card: NamedDependency[CardServices]
    ) -> Activation:
        card_id = await card.cards.card_id_for_holder(_own(principal))
        return await card.devices.demo_activate(card_id, card.actor(principal, request))

    @get("/qr", operation_id="GetDemoPhoneQr")
    async def qr(
        self,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        kind: FromQuery[Literal["svg", "png", "text"]] = "svg",
    ) -> Response[bytes]:
        """The current ride QR of the demo phone, rendered by segno."""
        card_id = await card.cards.card_id_for_holder(_own(principal))
        body = await card.devices.demo_qr(card_id, kind=kind)
        media = {"svg": "image/svg+xml", "png": "image/png", "text": "text/plain; charset=utf-8"}[kind]
        return Response(body, media_type=media, headers={"Cache-Control": "no-store"})
