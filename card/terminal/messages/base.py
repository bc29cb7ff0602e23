"""The two base classes of message bodies and the result and detail fields every answer starts with."""

from __future__ import annotations

from typing import ClassVar, Final

from card.terminal.messages.fields import Body, text, u16
from card.terminal.spec import MessageType, Tag

__all__ = ["DETAIL", "RESULT", "Message", "Response"]

RESULT: Final = u16("result", Tag.RESULT)
DETAIL: Final = text("detail", Tag.DETAIL, 0, 64, optional=True)


class Message(Body, frozen=True, kw_only=True):
    TYPE: ClassVar[MessageType]


class Response(Message, frozen=True, kw_only=True):
    result: int = 0
    detail: str | None = None
