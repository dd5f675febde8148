"""Send the HTML report by e-mail (SMTP, standard library `smtplib`).

Settings, first found wins: command-line option, environment (`LWA_SMTP_HOST`, `LWA_SMTP_PORT`,
`LWA_SMTP_USER`, `LWA_SMTP_PASSWORD`, `LWA_SMTP_FROM`), the config's `[report]` table (`smtp_host`,
`smtp_port`, `smtp_user`, `email_from`) when lwa_common's Config has one, then localhost:25 without
login. The password comes only from the environment, is never logged and never shown in a repr.

Credentials are sent only over an encrypted channel: implicit TLS on port 465, or STARTTLS when the
server offers it; a plain-text login is allowed only to a loopback server (127.0.0.0/8, ::1,
localhost), so a mistyped host never receives a password in clear.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from lwa_common.errors import LwaError

__all__ = ["SmtpSettings", "smtp_settings", "build_message", "send_message", "is_loopback"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = "lwa-pipe@localhost"
    timeout_s: float = 30.0


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def smtp_settings(cfg: Any = None, env: Mapping[str, str] | None = None, *, host: str | None = None,
                  port: int | None = None, user: str | None = None, sender: str | None = None) -> SmtpSettings:
    """Resolve the SMTP settings (options > environment > config [report] > defaults)."""
    env = os.environ if env is None else env
    section = getattr(cfg, "report", None)

    def pick(option: Any, env_key: str, cfg_key: str, default: Any) -> Any:
        if option not in (None, ""):
            return option
        if env.get(env_key):
            return env[env_key]
        value = getattr(section, cfg_key, None) if section is not None else None
        return value if value not in (None, "") else default

    port_value = pick(port, "LWA_SMTP_PORT", "smtp_port", 25)
    try:
        port_int = int(port_value)
    except (TypeError, ValueError):
        raise LwaError(f"SMTP port must be an integer, got {port_value!r} (LWA_SMTP_PORT?)") from None
    if not 0 < port_int < 65536:
        raise LwaError(f"SMTP port {port_int} is out of range")
    return SmtpSettings(
        host=str(pick(host, "LWA_SMTP_HOST", "smtp_host", "localhost")), port=port_int,
        user=str(pick(user, "LWA_SMTP_USER", "smtp_user", "")), password=env.get("LWA_SMTP_PASSWORD", ""),
        sender=str(pick(sender, "LWA_SMTP_FROM", "email_from", "lwa-pipe@localhost")),
    )


def build_message(html: str, *, subject: str, sender: str, to: Sequence[str], text: str = "",
                  attachments: Sequence[Path] = ()) -> EmailMessage:
    """A multipart message: plain-text summary, the HTML report as body, files attached."""
    if not to:
        raise LwaError("no e-mail recipient given")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg.set_content(text or "The lwa-pipe report is the HTML part of this message.")
    msg.add_alternative(html, subtype="html")
    for path in attachments:
        path = Path(path)
        subtype = "html" if path.suffix == ".html" else "octet-stream"
        maintype = "text" if subtype == "html" else "application"
        if maintype == "text":
            msg.add_attachment(path.read_text(), subtype=subtype, filename=path.name)
        else:
            msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return msg


def send_message(msg: EmailMessage, settings: SmtpSettings) -> None:
    """Deliver `msg` (to its To: recipients) through the SMTP server of `settings`."""
    recipients = [a.strip() for a in str(msg["To"]).split(",") if a.strip()]
    where = f"{settings.host}:{settings.port}"
    log.info("sending e-mail '%s' to %s via %s%s", msg["Subject"], ", ".join(recipients), where,
             f" as {settings.user}" if settings.user else "")
    context = ssl.create_default_context()
    try:
        if settings.port == 465:
            server: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_s,
                                                    context=context)
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s)
        with server:
            server.ehlo()
            encrypted = settings.port == 465
            if not encrypted and server.has_extn("starttls"):
                server.starttls(context=context)
                server.ehlo()
                encrypted = True
            if settings.user:
                if not encrypted and not is_loopback(settings.host):
                    raise LwaError(f"SMTP server {where} offers no STARTTLS: refusing to send the password "
                                   "in clear (use port 465 or a server with STARTTLS)")
                if not settings.password:
                    raise LwaError(f"SMTP user {settings.user} given but LWA_SMTP_PASSWORD is not set")
                server.login(settings.user, settings.password)
            refused = server.send_message(msg, from_addr=settings.sender, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as err:
        raise LwaError(f"SMTP login to {where} as {settings.user} failed (code {err.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as err:
        raise LwaError(f"sending e-mail via {where} failed: {type(err).__name__}: {err}") from None
    if refused:
        log.warning("recipients refused by %s: %s", where, ", ".join(refused))
    log.info("e-mail sent to %s", ", ".join(r for r in recipients if r not in refused))
