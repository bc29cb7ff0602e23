"""The citizen's organisations page (in-process, the demo loaded): the institute's legal
representative 李四 (registered and verified through the API, the institute claimed through it)
invites the demo citizen 张三 from the page; 张三 is told by SMS, sees the invitation, accepts and can
then act for the institute; the representative suspends, reinstates and ends the appointment, and
withdraws invitations. Forms need their CSRF token; a person who does not manage an organisation
sees no management forms, and a forged form is refused by the API."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import httpx
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from identity.checks import mask_resident_id
from integrations.simulators.seed import DEMO_CITIZEN, ENTERPRISES, PEOPLE
from tests.identity.conftest import API, Flows, bearer
from tests.web.conftest import csrf_of, sign_in

Client = AsyncTestClient[Litestar]
ZHANG, LI, WANG = PEOPLE[0], PEOPLE[1], PEOPLE[2]
COMPANY, INSTITUTE = ENTERPRISES[0], ENTERPRISES[1]
LI_PASSWORD = "li si's long passphrase"
PAGE = "/web/organisations"
_ACTION = re.compile(r'action="(/oidc/interaction/[^"/]+)/login"')
assert ZHANG == DEMO_CITIZEN


class Browser:
    """One test client, one cookie jar per person: switching people is switching jars."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._jars: dict[str, httpx.Cookies] = {}
        self._current: str | None = None

    def be(self, who: str) -> Client:
        if self._current is not None:
            self._jars[self._current] = httpx.Cookies(self.client.cookies)
        self.client.cookies = self._jars.get(who, httpx.Cookies())
        self._current = who
        return self.client


class Institute:
    def __init__(self, org_id: str, token: str, browser: Browser, citizen_password: str) -> None:
        self.id = org_id
        self.token = token  # the representative's API session
        self.browser = browser
        self.citizen_password = citizen_password

    async def _as(self, who: str, mobile: str, password: str) -> Client:
        """The person's jar; signed in through the provider's login page when it has no session."""
        client = self.browser.be(who)
        page = await client.get(PAGE)
        if page.url.path != PAGE:
            action = _ACTION.search(page.text)
            assert action, page.text[:2000]
            form = {"csrf": csrf_of(page.text), "method": "password", "mobile": mobile, "password": password}
            page = await client.post(f"{action.group(1)}/login", data=form)
            assert page.url.path == PAGE, page.text[:2000]
        return client

    async def as_li(self) -> Client:
        return await self._as("li", LI.mobile, LI_PASSWORD)

    async def as_zhang(self) -> Client:
        return await self._as("zhang", ZHANG.mobile, self.citizen_password)

    async def agents(self) -> list[dict[str, Any]]:
        """What the API lists for the representative (the page's claims checked at the source)."""
        response = await self.browser.client.get(
            f"{API}/organisations/{self.id}/agents", headers=bearer(self.token)
        )
        assert response.status_code == 200, response.text
        agents: list[dict[str, Any]] = response.json()
        return agents

    async def invite_zhang_by_api(self) -> str:
        response = await self.browser.client.post(
            f"{API}/organisations/{self.id}/agents",
            json={"id_number": ZHANG.id_number, "name": ZHANG.name, "roles": ["filings"]},
            headers=bearer(self.token),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest_asyncio.fixture
async def institute(client: Client, citizen_password: str) -> Institute:
    """李四, verified, with a password, legal representative of the institute he has claimed."""
    flows = Flows(client)
    li = await flows.verified(LI, LI_PASSWORD)
    org = await client.post(
        f"{API}/organisations",
        json={"credit_code": INSTITUTE.credit_code, "name": INSTITUTE.name, "kind": INSTITUTE.kind},
        headers=bearer(li["token"]),
    )
    assert org.status_code == 201, org.text
    return Institute(str(org.json()["id"]), li["token"], Browser(client), citizen_password)


def _invite_form(html: str, **fields: Any) -> dict[str, Any]:
    return {"csrf": csrf_of(html), "id_number": ZHANG.id_number, "name": ZHANG.name, **fields}


def _agent_row(html: str, agent_id: str) -> str | None:
    found = re.search(rf'<tr id="agent-{agent_id}" data-status="(\w+)"', html)
    return found.group(1) if found else None


async def _invitation_texts(client: Client, mobile: str) -> list[str]:
    response = await client.get(f"{API}/dev/sms", params={"mobile": mobile, "limit": 200})
    assert response.status_code == 200, response.text
    return [m["text"] for m in response.json() if "邀请您担任经办人" in m["text"]]


async def test_invite_accept_act_for_suspend_and_end(client: Client, institute: Institute) -> None:
    org = institute.id
    li = await institute.as_li()
    page = await li.get(PAGE)
    assert f'id="manage-{org}"' in page.text and f'action="{PAGE}/{org}/agents"' in page.text
    sent = await li.post(
        f"{PAGE}/{org}/agents",
        data=_invite_form(page.text, roles=["card_admin", "filings"], ends_on=""),
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == PAGE
    page = await li.get(PAGE)
    [invited] = [a for a in await institute.agents() if not a["is_legal_representative"]]
    assert invited["status"] == "invited" and invited["roles"] == ["card_admin", "filings"]
    assert _agent_row(page.text, invited["id"]) == "invited"
    assert mask_resident_id(ZHANG.id_number) in page.text and ZHANG.id_number not in page.text
    assert f'id="withdraw-{invited["id"]}"' in page.text

    # 张三 is told by SMS: one message, naming the institute, no ID number.
    [text] = await _invitation_texts(client, ZHANG.mobile)
    assert INSTITUTE.name in text and ZHANG.id_number not in text and LI.id_number not in text

    zhang = await institute.as_zhang()
    card = await zhang.get("/web/")
    assert 'id="organisations-link"' in card.text and f'value="{org}"' not in card.text
    page = await zhang.get(PAGE)
    assert f'id="invitation-{org}"' in page.text and INSTITUTE.name in page.text
    assert f'id="manage-{org}"' not in page.text  # not his to manage
    accepted = await zhang.post(f"{PAGE}/{org}/invitation/accept", data={"csrf": csrf_of(page.text)})
    assert accepted.status_code == 200 and str(accepted.url).endswith(PAGE)
    assert f'id="invitation-{org}"' not in accepted.text
    assert f'id="membership-{org}"' in accepted.text and "卡务管理、申报办理" in accepted.text
    # Now the institute is under "act for" on the card page, and the switch works.
    card = await zhang.get("/web/")
    assert f'value="{org}"' in card.text
    acting = await zhang.post("/web/act-for", data={"csrf": csrf_of(card.text), "organisation": org})
    assert 'id="acting-banner"' in acting.text and INSTITUTE.name in acting.text
    back = await zhang.post("/web/act-for", data={"csrf": csrf_of(acting.text), "organisation": ""})
    assert 'id="acting-banner"' not in back.text

    li = await institute.as_li()
    page = await li.get(PAGE)
    assert _agent_row(page.text, invited["id"]) == "active"
    suspended = await li.post(
        f"{PAGE}/{org}/agents/{invited['id']}/suspend", data={"csrf": csrf_of(page.text)}
    )
    assert _agent_row(suspended.text, invited["id"]) == "suspended"
    assert f'id="reinstate-{invited["id"]}"' in suspended.text
    zhang = await institute.as_zhang()
    card = await zhang.get("/web/")
    assert f'value="{org}"' not in card.text  # nothing to switch to while suspended

    li = await institute.as_li()
    page = await li.get(PAGE)
    reinstated = await li.post(
        f"{PAGE}/{org}/agents/{invited['id']}/reinstate", data={"csrf": csrf_of(page.text)}
    )
    assert _agent_row(reinstated.text, invited["id"]) == "active"
    ended = await li.post(f"{PAGE}/{org}/agents/{invited['id']}/remove", data={"csrf": csrf_of(page.text)})
    assert _agent_row(ended.text, invited["id"]) is None
    assert [a["status"] for a in await institute.agents()] == ["active"]  # the representative alone

    zhang = await institute.as_zhang()
    page = await zhang.get(PAGE)
    assert f'id="membership-{org}"' not in page.text
    assert f'value="{org}"' not in (await zhang.get("/web/")).text


async def test_decline_and_withdraw(client: Client, institute: Institute) -> None:
    org = institute.id
    agent_id = await institute.invite_zhang_by_api()
    zhang = await institute.as_zhang()
    page = await zhang.get(PAGE + "?lang=en")
    assert "Invitations waiting for your answer" in page.text
    declined = await zhang.post(f"{PAGE}/{org}/invitation/decline", data={"csrf": csrf_of(page.text)})
    assert f"You declined the invitation of {INSTITUTE.name}" in declined.text
    assert f'id="invitation-{org}"' not in declined.text and f'id="membership-{org}"' not in declined.text
    # Answering again: nothing is waiting, said on the message page in the page's language.
    again = await zhang.post(f"{PAGE}/{org}/invitation/accept", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 404
    assert "No invitation from this organisation is waiting" in again.text

    li = await institute.as_li()
    page = await li.get(PAGE)
    assert _agent_row(page.text, agent_id) == "declined"
    withdrawn = await li.post(f"{PAGE}/{org}/agents/{agent_id}/withdraw", data={"csrf": csrf_of(page.text)})
    assert _agent_row(withdrawn.text, agent_id) is None
    # A pending invitation (with a last day chosen) is withdrawn the same way, and the person no
    # longer sees it.
    last = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=200)
    await li.post(
        f"{PAGE}/{org}/agents", data=_invite_form(page.text, roles="payments", ends_on=last.isoformat())
    )
    [second] = [a["id"] for a in await institute.agents() if a["status"] == "invited"]
    page = await li.get(PAGE)
    assert _agent_row(page.text, second) == "invited"
    row = page.text.split(f'id="agent-{second}"', 1)[1].split("</tr>", 1)[0]
    assert f"<td>{last.isoformat()}</td>" in row  # the last day, not the midnight after it
    await li.post(f"{PAGE}/{org}/agents/{second}/withdraw", data={"csrf": csrf_of(page.text)})
    assert [a["status"] for a in await institute.agents()] == ["active"]
    zhang = await institute.as_zhang()
    assert f'id="invitation-{org}"' not in (await zhang.get(PAGE)).text


async def test_forms_without_the_csrf_token_do_nothing(client: Client, institute: Institute) -> None:
    org = institute.id
    outside = await client.get(PAGE, follow_redirects=False)
    assert outside.status_code == 303 and outside.headers["location"].startswith("/web/login?")
    li = await institute.as_li()  # signed in, with a session and its token, which the forms lack
    without = {"id_number": ZHANG.id_number, "name": ZHANG.name, "roles": "filings"}
    for form in (without, {**without, "csrf": "forged"}):
        refused = await li.post(f"{PAGE}/{org}/agents", data=form)
        assert str(refused.url).endswith(PAGE) and "页面已过期" in refused.text
    assert len(await institute.agents()) == 1
    agent_id = await institute.invite_zhang_by_api()
    refused = await li.post(f"{PAGE}/{org}/agents/{agent_id}/withdraw", data={"csrf": "forged"})
    assert _agent_row(refused.text, agent_id) == "invited"

    zhang = await institute.as_zhang()
    refused = await zhang.post(f"{PAGE}/{org}/invitation/accept", data={})
    assert f'id="invitation-{org}"' in refused.text
    assert [a["status"] for a in await institute.agents()] == ["active", "invited"]


async def test_no_management_forms_for_an_agent_and_the_api_refuses_a_forged_one(
    client: Client, institute: Institute
) -> None:
    org = institute.id
    own_agent = await institute.invite_zhang_by_api()
    zhang = await institute.as_zhang()
    page = await zhang.get(PAGE)
    page = await zhang.post(f"{PAGE}/{org}/invitation/accept", data={"csrf": csrf_of(page.text)})
    assert f'id="membership-{org}"' in page.text
    # An agent of the institute, not its manager: no section, no form, no buttons for it...
    assert f'id="manage-{org}"' not in page.text and f"{PAGE}/{org}/agents" not in page.text
    # ...while he manages his own company's agents.
    assert page.text.count('id="manage-') == 1 and f"{COMPANY.name} 的经办人" in page.text

    forged = await zhang.post(
        f"{PAGE}/{org}/agents",
        data={
            "csrf": csrf_of(page.text),
            "id_number": WANG.id_number,
            "name": WANG.name,
            "roles": "payments",
        },
    )
    assert forged.status_code == 403 and "您无权管理该单位的经办人" in forged.text
    representative = next(a for a in await institute.agents() if a["is_legal_representative"])
    for agent_id, action in (
        (representative["id"], "suspend"),
        (own_agent, "remove"),
        (own_agent, "suspend"),
    ):
        forged = await zhang.post(
            f"{PAGE}/{org}/agents/{agent_id}/{action}", data={"csrf": csrf_of(page.text)}
        )
        assert forged.status_code == 403, (action, forged.text[-2000:])
    assert sorted(a["status"] for a in await institute.agents()) == ["active", "active"]
    assert len(await institute.agents()) == 2


def _field_error(html: str, field: str, org: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error-{org}">([^<]*)</p>', html)
    assert found, html[-4000:]
    return found.group(1)


async def test_refusals_next_to_the_field_in_the_page_language(client: Client, institute: Institute) -> None:
    org = institute.id
    li = await institute.as_li()
    page = await li.get(PAGE + "?lang=en")
    wrong_name = await li.post(
        f"{PAGE}/{org}/agents", data=_invite_form(page.text, name="张四", roles="filings")
    )
    assert wrong_name.status_code == 422 and '<html lang="en">' in wrong_name.text
    assert (
        _field_error(wrong_name.text, "id_number", org) == "No verified account has this ID number and name"
    )
    assert ZHANG.id_number not in wrong_name.text and 'value="张四"' in wrong_name.text  # the name stays
    assert 'value="filings" id="role-filings-' in wrong_name.text.replace(" checked", "")

    page = await li.get(PAGE + "?lang=zh-CN")
    no_roles = await li.post(f"{PAGE}/{org}/agents", data=_invite_form(page.text))
    assert no_roles.status_code == 422 and _field_error(no_roles.text, "roles", org) == "请至少选择一个角色"
    past = await li.post(
        f"{PAGE}/{org}/agents", data=_invite_form(page.text, roles="filings", ends_on="2001-01-01")
    )
    assert _field_error(past.text, "ends_on", org) == "截止日期不能早于今天"
    not_a_date = await li.post(
        f"{PAGE}/{org}/agents", data=_invite_form(page.text, roles="filings", ends_on="31/12/2030")
    )
    assert _field_error(not_a_date.text, "ends_on", org) == "请输入有效的日期"
    assert 'value="31/12/2030"' in not_a_date.text  # shown again to be corrected
    bad_id = ZHANG.id_number[:17] + ("0" if ZHANG.id_number[17] != "0" else "1")
    wrong_id = await li.post(
        f"{PAGE}/{org}/agents", data=_invite_form(page.text, id_number=bad_id, roles="filings")
    )
    assert _field_error(wrong_id.text, "id_number", org) == "请输入有效的 18 位居民身份证号"
    assert bad_id not in wrong_id.text
    own = await li.post(
        f"{PAGE}/{org}/agents",
        data=_invite_form(page.text, id_number=LI.id_number, name=LI.name, roles="filings"),
    )
    assert (
        own.status_code == 409
        and _field_error(own.text, "id_number", org) == "法定代表人已拥有全部角色，无需邀请"
    )
    await institute.invite_zhang_by_api()
    twice = await li.post(f"{PAGE}/{org}/agents", data=_invite_form(page.text, roles="filings"))
    assert twice.status_code == 409
    assert _field_error(twice.text, "id_number", org) == "此人已是本单位经办人或已被邀请"
    assert len(await _invitation_texts(client, ZHANG.mobile)) == 1  # the refused ones told nobody


async def test_the_card_page_links_to_the_organisations_page(client: Client, citizen_password: str) -> None:
    card = await sign_in(client, citizen_password)
    assert re.search(r'<a href="/web/organisations" id="organisations-link">我的单位</a>', card.text)
    english = await client.get("/web/?lang=en")
    assert re.search(
        r'<a href="/web/organisations" id="organisations-link">My organisations</a>', english.text
    )
    page = await client.get(PAGE)
    # The demo citizen represents the demo company: its section, himself its only agent.
    assert page.status_code == 200 and "Agents of " + COMPANY.name in page.text
    assert "<td>Card administration, Payments, Filings</td>" in page.text
    assert 'id="no-invitations"' in page.text


async def _zhang_acting_for(institute: Institute) -> tuple[Client, str, str]:
    """张三 invited by API, accepting on the page and acting for the institute: his jar, his agent
    id and the card page acting for it."""
    org = institute.id
    agent_id = await institute.invite_zhang_by_api()
    zhang = await institute.as_zhang()
    page = await zhang.get(PAGE)
    accepted = await zhang.post(f"{PAGE}/{org}/invitation/accept", data={"csrf": csrf_of(page.text)})
    assert accepted.status_code == 200, accepted.text
    card = await zhang.get("/web/")
    acting = await zhang.post("/web/act-for", data={"csrf": csrf_of(card.text), "organisation": org})
    assert 'id="acting-banner"' in acting.text
    return zhang, agent_id, acting.text


async def test_acting_ends_when_the_role_is_suspended(client: Client, institute: Institute) -> None:
    """张三 acts for the institute; 李四 suspends him: the next card page no longer acts for it
    (no banner, a message why), and the organisation token it held is refused by the API."""
    org = institute.id
    zhang, agent_id, _ = await _zhang_acting_for(institute)

    suspended = await client.patch(
        f"{API}/organisations/{org}/agents/{agent_id}",
        json={"status": "suspended"},
        headers=bearer(institute.token),
    )
    assert suspended.status_code == 200, suspended.text
    card = await zhang.get("/web/")
    assert 'id="acting-banner"' not in card.text
    assert "不再代表" in card.text and INSTITUTE.name in card.text
    again = await zhang.get("/web/")  # said once; acting for himself from now on
    assert "不再代表" not in again.text and 'id="acting-banner"' not in again.text


async def test_a_role_added_while_acting_keeps_the_page_working(client: Client, institute: Institute) -> None:
    """Any change of the agent's roles revokes the organisation tokens issued before it; the page
    exchanges once more and goes on acting for the organisation, tiles and all."""
    zhang, agent_id, acting = await _zhang_acting_for(institute)
    assert 'class="tile' in acting
    changed = await client.patch(
        f"{API}/organisations/{institute.id}/agents/{agent_id}",
        json={"roles": ["card_admin", "filings"]},
        headers=bearer(institute.token),
    )
    assert changed.status_code == 200, changed.text
    card = await zhang.get("/web/")
    assert 'id="acting-banner"' in card.text and 'class="tile' in card.text


async def test_an_appointment_past_its_end_ends_acting(client: Client, institute: Institute, db: Any) -> None:
    zhang, agent_id, acting = await _zhang_acting_for(institute)
    assert 'class="tile' in acting
    await db.execute(
        "UPDATE identity.agents SET valid_until = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(agent_id),
    )  # its last day has passed
    card = await zhang.get("/web/")
    assert 'id="acting-banner"' not in card.text and "不再代表" in card.text
    page = await zhang.get(PAGE)
    assert f'id="membership-{institute.id}"' in page.text and "已到期" in page.text
