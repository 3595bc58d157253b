"""The e-mail sink: one mail thread per incident in a service-desk mailbox, over SMTP.

Threading (RFC 5322 section 3.6.4): every notification has a Message-ID made from the incident,
the event and its sequence, `<incident-123-updated-2@collector.example>`, so a retry after a lost
answer sends the same Message-ID and mail systems drop the copy. Every later notification names
the incident's first one, `<incident-123-opened-1@...>`, in In-Reply-To and References: an
incident's first notification is its opening, enqueued in the same transaction that opened it.
The subject starts with a stable key, `[DAYBREAK acme#123]`, which desk tools that thread by
subject (and people searching a mailbox) use.

smtplib is blocking; it runs in a worker thread (asyncio.to_thread) with the sink's timeout on
every socket operation.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.sinks.base import OutboxMessage, SinkError, read_secret
from collector.sinks.config import EmailSinkConfig

# Fields the body shows in its own layout; any other incident field (added by later issues)
# is listed after them, so the mail never hides part of the ticket.
_LAID_OUT = frozenset({
    "id", "dedup_key", "customer", "customer_name", "customer_timezone", "host", "expectation",
    "subject", "state", "severity", "title", "summary", "expected", "observed", "evidence",
    "evidence_source", "assignment_group", "runbook", "occurrences", "last_occurrence",
    "opened_at", "last_seen_at", "resolved_at", "resolution",
})
_TIME_FIELDS = ("opened_at", "last_seen_at", "resolved_at")


def message_id(incident_id: int, event: str, sequence: int, domain: str) -> str:
    return f"<incident-{incident_id}-{event}-{sequence}@{domain}>"


def thread_root_id(incident_id: int, domain: str) -> str:
    return message_id(incident_id, "opened", 1, domain)


def subject_line(message: OutboxMessage) -> str:
    incident = message.incident
    severity = str(incident.get("severity", "")).upper()
    title = str(incident.get("title", ""))
    host = str(incident.get("host", ""))
    return f"[DAYBREAK {message.incident_key}] {message.event.upper()} {severity}: {title} " \
           f"({host})"


def _zone(incident: dict[str, Any]) -> ZoneInfo:
    try:
        return ZoneInfo(str(incident.get("customer_timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _when(value: Any, zone: ZoneInfo) -> str:
    """`2026-03-02 07:00 CET (06:00 UTC)`: the desk reads the customer's time first."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"


def _block(text: Any) -> str:
    lines = str(text or "").rstrip("\n").splitlines() or ["-"]
    return "\n".join(f"    {line}" for line in lines)


def body_text(message: OutboxMessage) -> str:
    """The plain-text body, laid out the way a service-desk agent reads a ticket."""
    incident = message.incident
    zone = _zone(incident)
    customer_name = incident.get("customer_name") or incident.get("customer", "")
    lines = [
        f"Incident {message.incident_key} {message.event.upper()}",
        "",
        f"Title:        {incident.get('title', '')}",
        f"Customer:     {customer_name} ({incident.get('customer', '')})",
        f"Host:         {incident.get('host', '')}",
        f"Expectation:  {incident.get('expectation', '')} on {incident.get('subject', '')}",
        f"State:        {incident.get('state', '')}",
        f"Severity:     {incident.get('severity', '')}",
        f"Assigned to:  {incident.get('assignment_group', '')}",
        f"Opened:       {_when(incident.get('opened_at'), zone)}",
        f"Last seen:    {_when(incident.get('last_seen_at'), zone)}",
        f"Occurrences:  {incident.get('occurrences', '')}",
    ]
    if incident.get("resolved_at"):
        lines.append(f"Resolved:     {_when(incident.get('resolved_at'), zone)}")
        lines.append(f"Resolution:   {incident.get('resolution', '')}")
    lines += [
        "",
        f"Summary: {incident.get('summary', '')}",
        "",
        "Expected:",
        _block(incident.get("expected")),
        "Observed:",
        _block(incident.get("observed")),
    ]
    if incident.get("evidence"):
        lines += [f"Evidence ({incident.get('evidence_source') or 'no source'}):",
                  _block(incident.get("evidence"))]
    if incident.get("runbook"):
        lines += ["", f"Runbook: {incident['runbook']}"]
    extra = sorted(key for key in incident if key not in _LAID_OUT)
    if extra:
        lines += ["", "More:"]
        lines += [f"  {key}: {incident[key]}" for key in extra]
    lines += ["", f"-- Daybreak, notification {message.sequence} of this incident "
              f"({message.idempotency_key[:16]})", ""]
    return "\n".join(lines)


def build_email(config: EmailSinkConfig, message: OutboxMessage) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = config.from_address
    mail["To"] = ", ".join(config.to)
    mail["Subject"] = subject_line(message)
    # The time of the change, not of the (maybe much later) delivery: the thread sorts right.
    mail["Date"] = format_datetime(message.created_at.astimezone(UTC))
    this_id = message_id(message.incident_id, message.event, message.sequence, config.domain)
    mail["Message-ID"] = this_id
    root = thread_root_id(message.incident_id, config.domain)
    if this_id != root:
        mail["In-Reply-To"] = root
        mail["References"] = root
    # RFC 3834: out-of-office robots must not answer a notification.
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Daybreak-Incident"] = message.incident_key
    mail["X-Daybreak-Event"] = message.event
    mail.set_content(body_text(message))
    return mail


def _classify(exc: smtplib.SMTPException, what: str) -> SinkError:
    """5xx for this message (sender, recipients, content refused) is permanent; a 4xx, an
    authentication failure (a config fix away) and a dropped connection are retried."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(code >= 500 for code in codes)
        return SinkError(f"{what}: recipients refused: {exc.recipients}", permanent=permanent)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return SinkError(f"{what}: {exc.smtp_code} {exc.smtp_error!r}",
                         permanent=exc.smtp_code >= 500)
    return SinkError(f"{what}: {type(exc).__name__}: {exc}")


class EmailSink:
    def __init__(self, config: EmailSinkConfig) -> None:
        self._config = config

    async def send(self, message: OutboxMessage) -> None:
        mail = build_email(self._config, message)
        password = (read_secret(self._config.password_file, "password_file")
                    if self._config.password_file is not None else None)
        await asyncio.to_thread(self._send_blocking, mail, password)

    def _send_blocking(self, mail: EmailMessage, password: str | None) -> None:
        config = self._config
        what = f"email {config.name} via {config.host}:{config.port}"
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
                smtp.ehlo()
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if config.username is not None and password is not None:
                    smtp.login(config.username, password)
                smtp.send_message(mail)
        except smtplib.SMTPException as exc:
            raise _classify(exc, what) from exc
        except OSError as exc:
            raise SinkError(f"{what}: {type(exc).__name__}: {exc}") from exc
