"""SMTP: mail from other servers (MX, port 25) and from users' mail programs (submission).

Built on aiosmtpd's protocol; the handlers here only translate to pcloud calls (the directory
resolves recipients, the mail store delivers). RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 4954
(AUTH), RFC 6409 (submission), RFC 8314 (implicit TLS).

Implementation notes:
- A recipient is checked at RCPT: unknown users get 550, other domains 554 (never a relay), a
  full mailbox 452. The message is on disk in every recipient's mailbox before 250 is sent.
- Mail to other servers is queued (store/queue.py) and sent by the worker in outbound.py.
- Mail from other servers gets an Authentication-Results header (SPF, DKIM, DMARC, in
  auth_checks.py); DMARC p=reject refuses it, p=quarantine files it under Junk. Mail leaving
  for other servers is DKIM-signed (signing.py).
- An alias may forward to other servers: the copy is queued with its sender rewritten (SRS,
  srslib), and a bounce to that address goes back to the original sender.
- Local delivery adds Return-Path (RFC 5321 §4.4), and for a calendar invitation (iMIP) an
  X-Calendar-Invitation header; the invitation goes into the recipient's calendar
  (pcloud/store/invitations.py), unless the message was filed under Junk.
- DATA is read in chunks (data.py), never past its end (the next pipelined command stays in
  the stream). Only CRLF "." CRLF ends a message: a lone LF or CR never does (no smuggling).
- Not yet: MTA-STS and DANE for outbound TLS.
- aiosmtpd's own replies to syntax errors carry no enhanced status code, though
  ENHANCEDSTATUSCODES is advertised; pcloud's replies all do.
"""
