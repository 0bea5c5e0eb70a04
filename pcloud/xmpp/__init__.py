"""XMPP: chat programs (Conversations, Gajim, Dino, Monal…) connect to 5222 (STARTTLS) or 5223
(TLS from the start); every user is user@domain with their pcloud password.

pcloud's own client-to-server implementation on asyncio (Python has no maintained XMPP server
library): slixmpp's stanza classes build and read stanzas, wire.py writes them as slixmpp's
`tostring` would, and the stream parser is expat with XMPP's restrictions (parse.py says why).
Supported:
- RFC 6120: streams, STARTTLS, SASL PLAIN and SCRAM-SHA-1/-256 with their -PLUS channel binding
  (announced with XEP-0440), resource binding, stream and stanza errors; direct TLS (XEP-0368).
- RFC 6121: the roster with versioning, presence subscriptions, presence, message routing;
  rosters seeded from the user's CardDAV contacts (`[xmpp] roster_from_contacts`).
- Offline messages (XEP-0160, with XEP-0203 delay stamps), message carbons (XEP-0280), the
  message archive with paging (XEP-0313, XEP-0059) whose ids delivered messages carry
  (XEP-0359), stream management with resumption (XEP-0198), client state indication
  (XEP-0352), blocking (XEP-0191); silent clients pinged and dropped (liveness.py).
- Service discovery (XEP-0030) with entity capabilities (XEP-0115: the server's in the stream
  features; clients' verified and cached), ping (XEP-0199), software version (XEP-0092), private
  XML storage (XEP-0049).
- Personal eventing (XEP-0163 on XEP-0060: publish-options, access models open, presence and
  whitelist, notifications filtered by entity capabilities, the last item at presence), which is
  what OMEMO (XEP-0384) needs; user avatars (XEP-0084) and vCards (XEP-0054, with the XEP-0153
  photo) kept in pcloud's avatar store, so that mail programs see the same picture.
- HTTP file upload into the sender's files (XEP-0363: the server's own domain is the upload
  service; slots signed, used once, PUT and GET on the HTTPS listener under /upload/), and
  external service discovery for STUN/TURN with TURN REST API credentials when configured
  (XEP-0215), so that clients can place calls.

Where things are: parse.py (bytes → stream events, pure), wire.py (what is written), server.py
(connections as asyncio protocols, bounds, STARTTLS, restarts), session.py (a stream's state and
stanza dispatch), negotiation.py and sasl.py (features, SASL, bind), router.py (sessions by JID,
what is local), messages.py, presence.py, roster.py with subscription.py (pure state machine),
contacts.py (address book → roster), serverinfo.py, caps.py, carbons.py, stream_management.py,
archive.py, csi.py, blocking.py, private.py, pep.py, avatars.py, vcard.py, upload.py,
external_services.py, accounts.py (users deleted while signed in), liveness.py (clients gone
silent); the chat state on disk is pcloud.store.xmpp's.

Not supported yet: server-to-server federation (other domains get remote-server-not-found:
router.py is where a remote route would go, and `pcloud dns` publishes `_xmpp-server._tcp` as
"."), multi-user chat (XEP-0045: a component of its own, listed in the server's disco items),
the tls-exporter channel binding (Python's ssl module cannot export keying material), SASL2
and FAST (XEP-0388, XEP-0484), push notifications (XEP-0357), pre-approved subscriptions,
privacy lists (XEP-0016, superseded by blocking).
"""
