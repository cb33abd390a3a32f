"""Email jobs. Sending is simulated with a short sleep standing in for the SMTP or API call."""

from __future__ import annotations

import asyncio
import uuid

from pydantic import BaseModel, EmailStr

from core.context import JobContext
from core.idempotency import once
from core.registry import job

SEND_LATENCY_S = 0.05


class EmailSent(BaseModel):
    to: EmailStr
    subject: str
    message_id: str


async def _deliver(to: str, subject: str) -> EmailSent:
    await asyncio.sleep(SEND_LATENCY_S)
    return EmailSent(to=to, subject=subject, message_id=uuid.uuid4().hex)


@job(timeout=30, max_tries=5)
async def send_welcome_email(ctx: JobContext, email: EmailStr, name: str) -> EmailSent:
    """Send the welcome email to a new user."""
    return await _deliver(email, f"Welcome, {name}!")


@job(timeout=30, max_tries=5)
async def send_order_receipt(ctx: JobContext, order_id: int, email: EmailStr, total: float) -> EmailSent:
    """Send the receipt of a placed order, once per order even if the job runs again."""
    return await once(ctx, f"receipt:{order_id}", lambda: _deliver(email, f"Your order #{order_id}: {total:.2f}"))
