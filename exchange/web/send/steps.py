"""What every send page shares: the person, their draft, and the order of the pages.

A draft is the signed-in session's own (:mod:`~exchange.web.send.drafts`): it is found by
its id in the URL among the session's drafts and opened with the key the session's cookie
gives, so another person's draft id opens nothing (404). The pages a draft goes through
depend on what it is: a new record asks for its recipients, purpose and reasons; a reply
goes to the sender of the item it answers; a correction goes to everyone who received the
original, under its purpose, and asks only why it is corrected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from exchange.auth.session import Session
from exchange.model import User
from exchange.service.errors import NotFoundError
from exchange.service.node_service import NodeService
from exchange.web.accounts import SESSION, SESSION_COOKIE
from exchange.web.app import web_service
from exchange.web.send.drafts import Draft, DraftStore
from exchange.web.send.questions import Form

DRAFTS: Final = web.AppKey("send_drafts", DraftStore)
#: The query that brings a person back to "Check your answers" after a change.
RETURN_TO_CHECK: Final = "return=check"


@dataclass(frozen=True)
class Person:
    """The signed-in person sending: their user, session, cookie token and drafts."""

    user: User
    session: Session
    token: str
    drafts: DraftStore
    service: NodeService

    @property
    def owner(self) -> bytes:
        """The session id's hash, which names the session's drafts in the store."""
        return self.session.id_hash

    async def load(self, draft_id: str) -> Draft:
        """Return the session's draft ``draft_id`` or refuse as not found."""
        draft = await self.drafts.load(self.owner, self.token, draft_id)
        if draft is None:
            raise NotFoundError("no such draft in this session")
        return draft

    async def save(self, draft: Draft) -> None:
        """Keep the draft's state."""
        await self.drafts.save(self.owner, self.token, draft)


def person(request: web.Request) -> Person:
    """Return the signed-in person of the request (the session middleware found them)."""
    session = request[SESSION]
    token = request.cookies.get(SESSION_COOKIE, "")
    return Person(session.user, session, token, request.app[DRAFTS], web_service(request))


async def draft_of(request: web.Request) -> tuple[Person, Draft]:
    """Return the person and the draft the URL names (404 if not theirs)."""
    who = person(request)
    return who, await who.load(request.match_info["draft"])


def unsent(draft: Draft) -> None:
    """Send a person who comes back to a sent draft to its confirmation."""
    if draft.sent is not None:
        raise web.HTTPSeeOther(f"/send/{draft.id}/sent")


def steps(draft: Draft, form: Form) -> list[str]:
    """Return the draft's pages in order: ``q/<section>``, then files, choices, check."""
    pages = [f"questions/{s.path}" for s in form.sections]
    if form.manifest is not None:
        pages.append("files")
    if draft.mode == "new":
        pages.append("recipients")
    if draft.mode != "correct":
        pages.append("purpose")
    pages += ["reason", "check"]
    return pages


def url(draft: Draft, step: str) -> str:
    """Return the path of one of the draft's pages."""
    return f"/send/{draft.id}/{step}"


def next_url(request: web.Request, draft: Draft, form: Form, step: str) -> str:
    """Return where a page goes on: back to "Check your answers" after a change, or on."""
    if request.query_string == RETURN_TO_CHECK:
        return url(draft, "check")
    pages = steps(draft, form)
    return url(draft, pages[pages.index(step) + 1])


def back_url(request: web.Request, draft: Draft, form: Form, step: str) -> str:
    """Return the page before ``step`` (or "Check your answers" after a change)."""
    if request.query_string == RETURN_TO_CHECK:
        return url(draft, "check")
    pages = steps(draft, form)
    index = pages.index(step)
    if index == 0:
        return "/send" if draft.mode == "new" else f"/send/{draft.mode}/{draft.target}"
    return url(draft, pages[index - 1])


def action_suffix(request: web.Request) -> str:
    """Return the query a page's form keeps (coming from "Check your answers")."""
    return "?" + RETURN_TO_CHECK if request.query_string == RETURN_TO_CHECK else ""


def seen(draft: Draft, step: str) -> None:
    """Note that the person has answered ``step``."""
    if step not in draft.seen:
        draft.seen.append(step)
