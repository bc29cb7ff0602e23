"""An invitation to act for an organisation tells the invited person by SMS, naming the organisation
and nothing else; a refused invitation tells nobody, so the message is no oracle on who holds an
account. An invitation without an end date gets identity's default term."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from identity.audit import seal_all
from identity.core import CHINA
from identity.organisations.agents import default_end
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, LI, WANG, ZHANG, ZHAO, Flows, bearer

COMPANY = ENTERPRISES[0]
ENDS = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90)).isoformat()


async def _messages(client: AsyncTestClient[Litestar], mobile: str) -> list[str]:
    """Every text recorded for ``mobile`` (the development endpoint waits for the outbox first)."""
    response = await client.get(f"{API}/dev/sms", params={"mobile": mobile, "limit": 200})
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json()]


def _invitations(texts: list[str]) -> list[str]:
    return [t for t in texts if "邀请您担任经办人" in t]


async def _company(client: AsyncTestClient[Litestar], flows: Flows) -> tuple[str, dict[str, Any]]:
    boss = await flows.verified(ZHANG)
    org = await client.post(
        f"{API}/organisations",
        json={"credit_code": COMPANY.credit_code, "name": COMPANY.name, "kind": COMPANY.kind},
        headers=bearer(boss["token"]),
    )
    assert org.status_code == 201, org.text
    return str(org.json()["id"]), boss


async def test_the_invited_person_gets_one_sms_naming_the_organisation(
    client: AsyncTestClient[Litestar], flows: Flows, db: Any
) -> None:
    org_id, boss = await _company(client, flows)
    await flows.verified(LI)
    url = f"{API}/organisations/{org_id}/agents"
    body = {"id_number": LI.id_number, "name": LI.name, "roles": ["filings"], "ends_on": ENDS}
    assert _invitations(await _messages(client, LI.mobile)) == []
    invited = await client.post(url, json=body, headers=bearer(boss["token"]))
    assert invited.status_code == 201, invited.text
    [text] = _invitations(await _messages(client, LI.mobile))
    assert COMPANY.name in text and "市民通" in text
    for secret in (LI.id_number, ZHANG.id_number, LI.name, ZHANG.name, COMPANY.credit_code):
        assert secret not in text
    # A second invitation of the same person is refused (409, on the ID number field): no second
    # message.
    again = await client.post(url, json=body, headers=bearer(boss["token"]))
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "id_number"
    assert again.json()["errors"][0]["rule"] == "already_agent"
    assert len(_invitations(await _messages(client, LI.mobile))) == 1
    assert _invitations(await _messages(client, ZHANG.mobile)) == []  # not the inviter
    await seal_all(db)
    details = await db.fetchval(
        "SELECT details FROM identity.audit_log"
        " WHERE action = 'identity.agent.invite' AND outcome = 'success'"
    )
    assert '"notified": true' in str(details)


async def test_a_refused_invitation_sends_nothing_and_answers_alike(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    org_id, boss = await _company(client, flows)
    await flows.verified(LI)
    await flows.register(ZHAO.mobile)  # an account, not verified: not invitable
    url = f"{API}/organisations/{org_id}/agents"

    async def invite(id_number: str, name: str) -> Any:
        body = {"id_number": id_number, "name": name, "roles": ["filings"], "ends_on": ENDS}
        return await client.post(url, json=body, headers=bearer(boss["token"]))

    wrong_name = await invite(LI.id_number, "李五")  # a verified account, another name
    unverified = await invite(ZHAO.id_number, ZHAO.name)
    nobody = await invite(WANG.id_number, WANG.name)  # no account at all
    answers = [
        (r.status_code, r.json()["detail"], r.json()["errors"]) for r in (wrong_name, unverified, nobody)
    ]
    assert answers[0][0] == 422 and answers[0][2][0]["rule"] == "no_matching_account"
    assert answers[0] == answers[1] == answers[2]
    for person in (LI, ZHAO, WANG):
        assert _invitations(await _messages(client, person.mobile)) == []
    # Inviting oneself is refused on the same field, and tells nobody either.
    own = await invite(ZHANG.id_number, ZHANG.name)
    assert own.status_code == 409 and own.json()["errors"][0]["rule"] == "is_representative"
    assert _invitations(await _messages(client, ZHANG.mobile)) == []


async def test_an_invitation_without_an_end_date_gets_the_default_term(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    org_id, boss = await _company(client, flows)
    await flows.verified(LI)
    body = {"id_number": LI.id_number, "name": LI.name, "roles": ["card_admin"]}
    before = dt.datetime.now(CHINA).date()
    invited = await client.post(
        f"{API}/organisations/{org_id}/agents", json=body, headers=bearer(boss["token"])
    )
    after = dt.datetime.now(CHINA).date()  # the two differ only across midnight
    assert invited.status_code == 201, invited.text
    until = dt.datetime.fromisoformat(invited.json()["valid_until"]).astimezone(CHINA)
    assert until.time() == dt.time(0)
    assert until.date() - dt.timedelta(days=1) in {default_end(before), default_end(after)}


def test_the_default_term_is_a_year() -> None:
    assert default_end(dt.date(2025, 3, 10)) == dt.date(2026, 3, 9)
    assert default_end(dt.date(2024, 2, 29)) == dt.date(2025, 2, 28)
    assert default_end(dt.date(2025, 12, 31)) == dt.date(2026, 12, 30)


async def test_invite_withdraw_invite_sends_one_sms_a_day(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    """A representative inviting, withdrawing (or being declined) and inviting again does not text
    the person each time: one invitation SMS per organisation and person a day."""
    org_id, boss = await _company(client, flows)
    li = await flows.verified(LI)
    url = f"{API}/organisations/{org_id}/agents"
    body = {"id_number": LI.id_number, "name": LI.name, "roles": ["filings"], "ends_on": ENDS}
    for round_ in range(4):
        invited = await client.post(url, json=body, headers=bearer(boss["token"]))
        assert invited.status_code == 201, invited.text
        if round_ % 2:
            declined = await client.post(
                f"{url[: -len('/agents')]}/invitation/decline", headers=bearer(li["token"])
            )
            assert declined.status_code == 200, declined.text
        withdrawn = await client.delete(f"{url}/{invited.json()['id']}", headers=bearer(boss["token"]))
        assert withdrawn.status_code == 200, withdrawn.text
    assert len(_invitations(await _messages(client, LI.mobile))) == 1
