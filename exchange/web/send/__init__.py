"""Sending a record from the web pages: journey 2 of the staff web service.

``/send`` chooses the kind; question pages made from the kind's JSON Schema follow
(:mod:`~exchange.web.send.questions`), then files (:mod:`~exchange.web.send.uploads`),
recipients, purpose and reasons (:mod:`~exchange.web.send.journey`), "Check your answers"
and the confirmation (:mod:`~exchange.web.send.check`). Replies, corrections and decisions
not to share start in :mod:`~exchange.web.send.follow_ups`. Between pages the answers and
files are a draft on the server, encrypted with a key only the person's session cookie
gives (:mod:`~exchange.web.send.drafts`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from exchange.http.common import SUPERVISOR
from exchange.web.app import DIGEST_ROUTE, WEB_SERVICE
from exchange.web.send import check, follow_ups, journey
from exchange.web.send.drafts import DraftStore, draft_sweeper
from exchange.web.send.steps import DRAFTS

_DRAFT = "{draft:[0-9a-f]{32}}"


def add_send_routes(app: web.Application) -> None:
    """Add the send pages, and the sweep of drafts whose session has ended."""
    service = app[WEB_SERVICE]
    drafts = DraftStore(service.drafts_store)
    app[DRAFTS] = drafts

    async def sweeping(app: web.Application) -> AsyncIterator[None]:
        async with draft_sweeper(drafts, supervisor=app.get(SUPERVISOR)):
            yield

    app.cleanup_ctx.append(sweeping)
    router = app.router
    router.add_get("/send", journey.choose_kind_page)
    router.add_post("/send", journey.choose_kind)
    router.add_get("/send/not-shared", follow_ups.not_shared_page)
    router.add_post("/send/not-shared", follow_ups.record_not_shared)
    router.add_get("/send/not-shared/recorded", follow_ups.not_shared_recorded)
    router.add_get(f"/send/reply/{DIGEST_ROUTE}", follow_ups.reply_page)
    router.add_post(f"/send/reply/{DIGEST_ROUTE}", follow_ups.start_reply)
    router.add_get(f"/send/correct/{DIGEST_ROUTE}", follow_ups.correct_page)
    router.add_post(f"/send/correct/{DIGEST_ROUTE}", follow_ups.start_correction)
    base = f"/send/{_DRAFT}"
    router.add_get(base + "/questions/{section}", journey.question_page)
    router.add_post(base + "/questions/{section}", journey.answer_question)
    router.add_get(base + "/files", journey.files_page)
    router.add_post(base + "/files", journey.add_file)
    router.add_post(base + "/files/remove", journey.remove_file)
    router.add_post(base + "/files/done", journey.files_done)
    router.add_get(base + "/recipients", journey.recipients_page)
    router.add_post(base + "/recipients", journey.choose_recipients)
    router.add_get(base + "/purpose", journey.purpose_page)
    router.add_post(base + "/purpose", journey.choose_purpose)
    router.add_get(base + "/reason", journey.reason_page)
    router.add_post(base + "/reason", journey.give_reason)
    router.add_get(base + "/check", check.check_page)
    router.add_post(base + "/send", check.send)
    router.add_get(base + "/sent", check.sent_page)
    router.add_post(base + "/cancel", check.cancel)
