"""A blacklist longer than one answer comes in pages (docs/terminal-protocol.md §8, BLACKLIST):
every answer fits one frame, the reader applies a list only when it is complete, and a head that
moves while a reader pages is caught up by the delta after."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec
import pytest

from card.blacklist import current_version
from card.terminal.frame import MAX_FRAME_SIZE
from card.terminal.messages import Blacklist, BlacklistResponse, EncodedBody, Message, Response, seal
from card.terminal.messages.fields import encode_body
from card.terminal.settings import TerminalSettings
from card.terminal.spec import MAX_BLACKLIST_PAGE_ENTRIES, ResultCode, Tag
from mock_terminals.bus import BusReader
from mock_terminals.link import LinkError
from tests.terminal.conftest import Rig

BASE = 8_100_000_000_000_000_000  # 19-digit card numbers, the longest the list holds
R = TypeVar("R", bound=Response)


@dataclass
class Tap:
    """What the reader sent and got over its link: the blacklist exchanges and every answer's size."""

    exchanges: list[tuple[Blacklist, BlacklistResponse]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    # Called with the exchanges so far before each blacklist request: may change the list, or
    # return another request to send instead.
    before: Callable[[Blacklist, int], Awaitable[Blacklist | None]] | None = None


def tap(bus: BusReader) -> Tap:
    seen = Tap()
    link = bus.link
    request, exchange = link.request, link._exchange

    async def spy_exchange(body: Message | EncodedBody, key: bytes | None) -> tuple[bytes, int]:
        raw, sequence = await exchange(body, key)
        seen.sizes.append(len(raw))
        return raw, sequence

    async def spy_request(body: Message | EncodedBody, answer: type[R]) -> R:
        if isinstance(body, Blacklist) and seen.before is not None:
            body = await seen.before(body, len(seen.exchanges)) or body
        result = await request(body, answer)
        if isinstance(body, Blacklist):
            assert isinstance(result, BlacklistResponse)
            seen.exchanges.append((body, result))
        return result

    link._exchange = spy_exchange  # type: ignore[method-assign]
    link.request = spy_request  # type: ignore[method-assign]
    return seen


async def listed(rig: Rig) -> tuple[int, set[str]]:
    """The host's head and its listed card numbers."""
    async with rig.host.pool.acquire() as db:
        head = await current_version(db)
        rows = await db.fetch("SELECT value FROM card.blacklist_entries WHERE kind = 1")
    return head, {str(r["value"]) for r in rows}


def page_size(rig: Rig, entries: int) -> None:
    rig.host.settings = msgspec.structs.replace(rig.host.settings, blacklist_page_entries=entries)


async def test_a_reader_at_version_0_downloads_a_long_list_in_pages(rig: Rig) -> None:
    version = await rig.blacklist(adds=[BASE + 7 * i for i in range(10_000)])
    bus = await rig.bus("BUS-PAGE0", [])
    seen = tap(bus)
    await bus.sync()

    head, expected = await listed(rig)
    assert (bus.blacklist_version, bus.blacklist) == (version, expected) and head == version
    per_page = rig.host.settings.blacklist_page_entries
    *paged, (check, up_to_date) = seen.exchanges  # after a paged list, the delta since its version
    assert check == Blacklist(since_version=version) and up_to_date.next_after is None
    assert (up_to_date.version, up_to_date.added, up_to_date.removed) == (version, (), ())
    pages = [answer for _, answer in paged]
    assert len(pages) == math.ceil(10_000 / per_page) > 1  # 10,000 is 4 full pages: no empty 5th
    assert all(p.result == ResultCode.OK and p.full == 1 and p.version == version for p in pages)
    assert all(len(p.added) <= per_page for p in pages)
    assert [p.next_after is None for p in pages] == [False] * (len(pages) - 1) + [True]
    requests = [request for request, _ in paged]
    assert requests[0] == Blacklist(since_version=0)
    for request, previous in zip(requests[1:], pages, strict=False):
        assert request == Blacklist(since_version=0, list_version=version, after=previous.next_after)
    assert max(seen.sizes) <= MAX_FRAME_SIZE
    assert max(seen.sizes) > 50_000  # a full page is close to the frame limit, not far below it


async def test_a_delta_longer_than_a_page(rig: Rig) -> None:
    old = [BASE + 3 * i for i in range(1_000)]
    await rig.blacklist(adds=old)
    bus = await rig.bus("BUS-PAGED", [])
    await bus.sync()
    start = bus.blacklist_version

    page_size(rig, 1_000)
    version = await rig.blacklist(adds=[BASE + 3 * i + 1 for i in range(4_000)], removes=old[::2])
    seen = tap(bus)
    await bus.sync()

    head, expected = await listed(rig)
    assert (bus.blacklist_version, bus.blacklist) == (version, expected) and head == version
    *paged, (check, _) = seen.exchanges
    assert check == Blacklist(since_version=version)  # after a paged list, the delta since its version
    pages = [answer for _, answer in paged]
    assert len(pages) == 5 and all(p.full == 0 and p.version == version for p in pages)
    assert sum(len(p.added) for p in pages) == 4_000 and sum(len(p.removed) for p in pages) == 500
    assert all(request.since_version == start for request, _ in paged)
    # In card-number order across pages, added and removed together.
    keys = [max(map(int, p.added + p.removed)) for p in pages]
    assert keys == sorted(keys) and [str(k) for k in keys[:-1]] == [p.next_after for p in pages[:-1]]


@pytest.mark.parametrize("from_zero", [True, False], ids=["full list", "delta"])
async def test_the_head_moves_while_a_reader_pages(rig: Rig, from_zero: bool) -> None:
    """After the first page, cards are listed and delisted before and after the reader's place in
    the list: the completed list is taken at the first page's version, and the delta since then,
    asked at once, brings the reader to the head."""
    bus = await rig.bus("BUS-MOVE", [])
    listed_first = [BASE + 10 * i for i in range(3_000)]
    if not from_zero:
        await rig.blacklist(adds=[BASE - 1])
        await bus.sync()
    page_size(rig, 1_000)
    version = await rig.blacklist(adds=listed_first)
    moved: list[int] = []

    async def move(request: Blacklist, sent: int) -> None:
        if sent == 1:  # after the first page: cards in the pages sent and in the ones to come
            # One in, one out of the pages to come: the last page stays one page.
            moved.append(
                await rig.blacklist(
                    adds=[BASE + 5, BASE + 29_995],
                    removes=[listed_first[1], listed_first[2_500]],
                )
            )

    seen = tap(bus)
    seen.before = move
    await bus.sync()

    head, expected = await listed(rig)
    assert moved and head == moved[0] > version
    assert (bus.blacklist_version, bus.blacklist) == (head, expected)
    paged = [a for r, a in seen.exchanges if r.since_version == (0 if from_zero else version - 1)]
    assert len(paged) == 3 and {a.version for a in paged} == {version}  # the list kept its version
    assert seen.exchanges[-1][0] == Blacklist(since_version=version)  # then the delta after it
    assert seen.exchanges[-1][1].next_after is None


async def test_a_refused_page_leaves_the_old_list_and_version(rig: Rig) -> None:
    await rig.blacklist(adds=[BASE + 1, BASE + 2])
    bus = await rig.bus("BUS-HALF", [])
    await bus.sync()
    before = (bus.blacklist_version, set(bus.blacklist))
    page_size(rig, 100)
    await rig.blacklist(adds=[BASE + 10 + i for i in range(250)], removes=[BASE + 1])

    async def wrong_list(request: Blacklist, sent: int) -> Blacklist | None:
        if sent == 2:  # the third page, of a list version this host never issued
            return msgspec.structs.replace(request, list_version=(request.list_version or 0) + 100)
        return None

    seen = tap(bus)
    seen.before = wrong_list
    with pytest.raises(LinkError) as refused:
        await bus.sync()
    assert refused.value.code == ResultCode.BAD_FIELD_VALUE
    assert (bus.blacklist_version, bus.blacklist) == before  # two pages received, none applied
    seen.before = None
    await bus.sync()  # and the next sync starts again and completes
    assert (bus.blacklist_version, bus.blacklist) == (await listed(rig))


async def test_continuation_requests_are_checked(rig: Rig) -> None:
    version = await rig.blacklist(adds=[BASE + i for i in range(5)])
    bus = await rig.bus("BUS-CONT", [])

    async def ask(request: Blacklist) -> BlacklistResponse:
        return await bus.link.request(request, BlacklistResponse)

    # A list that fits one answer: as before paging, no continuation.
    whole = await ask(Blacklist(since_version=0))
    assert (whole.full, len(whole.added), whole.next_after) == (1, 5, None)
    assert Tag.LIST_AFTER not in {tag for tag, _ in encode_body(whole)}
    # Pages by hand, with the key of the previous one; any gateway could answer any of them.
    page_size(rig, 2)
    first = await ask(Blacklist(since_version=0))
    assert (first.added, first.next_after) == ((str(BASE), str(BASE + 1)), str(BASE + 1))
    again = await ask(Blacklist(since_version=0, list_version=version, after=str(BASE + 1)))
    assert again == await ask(Blacklist(since_version=0, list_version=version, after=str(BASE + 1)))
    assert (again.added, again.next_after) == ((str(BASE + 2), str(BASE + 3)), str(BASE + 3))
    last = await ask(Blacklist(since_version=0, list_version=version, after=str(BASE + 3)))
    assert (last.added, last.next_after, last.version) == ((str(BASE + 4),), None, version)
    past_all = await ask(Blacklist(since_version=0, list_version=version, after="9" * 20))
    assert (past_all.result, past_all.added, past_all.next_after) == (ResultCode.OK, (), None)

    half = await ask(Blacklist(since_version=0, list_version=version))
    assert (half.result, half.detail) == (ResultCode.MISSING_FIELD, "after")
    half = await ask(Blacklist(since_version=0, after=str(BASE)))
    assert (half.result, half.detail) == (ResultCode.MISSING_FIELD, "list_version")
    unknown = await ask(Blacklist(since_version=0, list_version=version + 1, after=str(BASE)))
    assert (unknown.result, unknown.detail) == (ResultCode.BAD_FIELD_VALUE, "list_version")


def test_the_largest_page_fits_one_frame() -> None:
    """``MAX_BLACKLIST_PAGE_ENTRIES`` card numbers of 19 digits, with every other field at its
    longest, still fit a 65,535-byte message; the setting cannot go past it."""
    numbers = tuple(str(BASE + i) for i in range(MAX_BLACKLIST_PAGE_ENTRIES))
    page = BlacklistResponse(
        result=0,
        detail="x" * 64,
        version=2**32 - 1,
        full=1,
        added=numbers[: MAX_BLACKLIST_PAGE_ENTRIES // 2],
        removed=numbers[MAX_BLACKLIST_PAGE_ENTRIES // 2 :],
        next_after="9" * 20,
    )
    message = seal(page, terminal_id="X" * 16, sequence=2**32 - 1, time=2**32 - 1, key=bytes(16))
    assert len(message) <= MAX_FRAME_SIZE
    TerminalSettings(blacklist_page_entries=MAX_BLACKLIST_PAGE_ENTRIES)
    with pytest.raises(ValueError, match="blacklist_page_entries"):
        TerminalSettings(blacklist_page_entries=MAX_BLACKLIST_PAGE_ENTRIES + 1)
