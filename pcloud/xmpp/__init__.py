"""XMPP: chat programs (Conversations, Gajim, Dino, Monal…) connect to 5222 (STARTTLS) or 5223
(TLS from the start); every user is user@domain with their pcloud password.

pcloud's own client-to-server implementation on asyncio (Python has no maintained XMPP server
library): slixmpp's stanza classes build and read stanzas and its `tostring` writes them; the
stream parser is expat with XMPP's restrictions (parse.py says why). RFC 6120 (streams, STARTTLS,
SASL PLAIN and SCRAM-SHA-1/-256, resource binding, stream and stanza errors), RFC 6121 (roster
with versioning, presence subscriptions, presence, message routing), and: offline messages
(XEP-0160, with XEP-0203 delay stamps), service discovery (XEP-0030), ping (XEP-0199), software
version (XEP-0092), message carbons (XEP-0280), stream management with resumption (XEP-0198),
message archive with paging (XEP-0313, XEP-0059), direct TLS (XEP-0368).

Where things are: parse.py (bytes → stream events, pure), wire.py (what is written), server.py
(connections, bounds, STARTTLS, restarts), session.py (a stream's state and stanza dispatch),
negotiation.py and sasl.py (features, SASL, bind), router.py (sessions by JID, what is local),
messages.py, presence.py, roster.py with subscription.py (pure state machine), serverinfo.py,
carbons.py, stream_management.py, archive.py; the rosters, offline messages and archives are
kept by pcloud.store.xmpp.

Not supported yet: server-to-server federation (other domains get remote-server-not-found:
router.py is where a remote route would go), multi-user chat (XEP-0045), client state
indication (XEP-0352), blocking (XEP-0191), vCard (XEP-0054), PEP and avatars (XEP-0163,
XEP-0084), HTTP upload (XEP-0363), external services (XEP-0215), entity capabilities (XEP-0115),
SCRAM -PLUS channel binding, SASL2, pre-approved subscriptions, privacy lists.
"""
