"""The invitation e-mail: a job written with the invitation, sent by a worker over SMTP.

An invitation goes to a colleague, not a buyer, and is neither test nor live data, so it is
sent through ``CAISSE_SMTP_URL`` whichever mode the inviter is in. Without SMTP configured it is
not sent (logged with ``action=extranet.invite_not_sent``); the inviter still has the link, shown
once. The link is the invitation's secret: in the job row it is sealed under the master key, and
the payload forgets it once the message is out (or given up).
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy.orm import Session

from caisse.errors import InvalidRequest
from caisse.extranet import i18n
from caisse.extranet.invites import Invitation, token_hash
from caisse.jobs.registry import JobContext, handler
from caisse.runtime import Runtime
from caisse.storage import jobs as jobstore
from caisse.storage import models as m

KIND = "extranet_invite_email"
log = logging.getLogger("caisse.extranet")


def link(rt: Runtime, token: str) -> str:
    return f"{rt.settings.public_url}/ui/invite/{token}"


def enqueue(
    session: Session,
    rt: Runtime,
    invitation: Invitation,
    *,
    tenant_name: str,
    inviter: str,
    lang: str,
) -> None:
    """Queue the e-mail in the invitation's transaction (one job per token)."""
    jobstore.enqueue(
        session,
        KIND,
        token_hash(invitation.token),
        {
            "user_id": invitation.user_id,
            "to": invitation.email,
            "link": rt.box.encrypt(link(rt, invitation.token)),
            "tenant": tenant_name,
            "inviter": inviter,
            "lang": lang,
        },
        now=rt.clock.now(),
        max_attempts=8,
    )


def compose(rt: Runtime, payload: dict[str, str]) -> EmailMessage:
    """Plain text in the inviter's language: who invites, to what, the link and its expiry."""
    t = i18n.translator(payload.get("lang", i18n.DEFAULT))
    words = {"tenant": payload["tenant"], "inviter": payload["inviter"]}
    message = EmailMessage()
    message["From"] = rt.settings.mail_from
    message["To"] = payload["to"]
    message["Subject"] = " ".join(t("invite.mail_subject").format(**words).split())
    message["Date"] = formatdate(rt.clock.now().timestamp())
    body = t("invite.mail_body").format(**words, link=rt.box.decrypt(payload["link"]))
    message.set_content(body)
    return message


def _forget_link(rt: Runtime, ctx: JobContext, outcome: str) -> None:
    with rt.db.write() as s:
        job = s.get(m.Job, ctx.job.id)
        if job is not None:
            job.payload = {**{k: v for k, v in job.payload.items() if k != "link"}, "sent": outcome}
        ctx.complete(s)


@handler(KIND)
async def send_invite_email(ctx: JobContext) -> None:
    from caisse.mail.smtp import MailError, parse_smtp_url, send

    rt = ctx.rt
    if "link" not in ctx.payload:
        return
    if rt.settings.smtp_url is None:
        log.warning(
            "invitation e-mail not sent: CAISSE_SMTP_URL is not configured",
            extra={"action": "extranet.invite_not_sent", "user": ctx.payload["user_id"]},
        )
        await asyncio.to_thread(_forget_link, rt, ctx, "not_sent")
        return
    try:
        config = parse_smtp_url(rt.settings.smtp_url.reveal())
        await send(config, compose(rt, ctx.payload))
    except (InvalidRequest, MailError) as exc:
        permanent = not isinstance(exc, MailError) or exc.permanent
        if not permanent and ctx.job.attempts < ctx.job.max_attempts:
            raise
        log.warning(
            "invitation e-mail failed",
            extra={"action": "extranet.invite_failed", "user": ctx.payload["user_id"]},
        )
        await asyncio.to_thread(_forget_link, rt, ctx, "failed")
        return
    await asyncio.to_thread(_forget_link, rt, ctx, "sent")
