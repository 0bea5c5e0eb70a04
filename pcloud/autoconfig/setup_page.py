"""The setup page a signed-in user opens in a browser: how to connect each kind of device, the
settings table for anything else, and (with pcloud's own CA) the certificate to trust.

Plain HTML with a little CSS and no script, built from the same ClientSettings as the
autoconfig documents, so the page and the documents never disagree. Every value that comes from
outside (the address, the display name) goes through html.escape.
"""

from __future__ import annotations

from html import escape

from pcloud.autoconfig.settings import ClientSettings

SECURITY_NAMES = {"tls": "SSL/TLS", "starttls": "STARTTLS"}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
code { background: #f3f3f3; padding: 0 .2rem; } form { display: inline; }
"""


def _settings_table(settings: ClientSettings, address: str) -> str:
    names = {"imap": "Incoming mail (IMAP)", "smtp": "Outgoing mail (SMTP)"}
    rows = [
        f"<tr><td>{names[server.protocol]}</td><td><code>{escape(settings.host)}</code></td>"
        f"<td>{server.port}</td><td>{SECURITY_NAMES[server.security]}</td></tr>"
        for server in settings.mail_servers
    ]
    if settings.https_port is not None:
        rows.append(
            f"<tr><td>Calendars and contacts (CalDAV, CardDAV)</td>"
            f"<td colspan=3><code>{escape(settings.principal_url(address))}</code></td></tr>"
        )
    return (
        "<table><tr><th>service</th><th>server</th><th>port</th><th>security</th></tr>"
        + "".join(rows)
        + "</table>"
        f"<p>User name: <code>{escape(address)}</code> everywhere. Password: your account"
        " password, or better an app password for each device (revocable on its own).</p>"
    )


def _certificate_section(settings: ClientSettings) -> str:
    if not settings.ca_fingerprint:
        return ""
    return f"""
<h2 id="certificate">First: trust this server's certificate</h2>
<p>This server signs its own certificate. Devices accept it once they trust its certificate
authority: download <a href="/ca.pem">ca.pem</a> (or <a href="/ca.crt">ca.crt</a>, the same in
binary form) and import it as below. Where a device shows its SHA-256 fingerprint, it must be
<code>{settings.ca_fingerprint}</code>.</p>
<ul>
<li><b>iPhone, iPad:</b> the profile below includes it. After installing the profile, open
Settings → General → About → Certificate Trust Settings and switch on full trust for it.</li>
<li><b>Mac:</b> the profile includes it; or open ca.pem in Keychain Access, add it to the System
keychain, and set "When using this certificate" to "Always Trust".</li>
<li><b>Android:</b> Settings → Security → Encryption &amp; credentials → Install a certificate →
CA certificate, and pick ca.crt.</li>
<li><b>Windows:</b> open ca.crt → Install Certificate → Local Machine → "Trusted Root
Certification Authorities".</li>
<li><b>Thunderbird:</b> Settings → Privacy &amp; Security → Certificates → Manage Certificates →
Authorities → Import ca.pem, and tick "trust this CA to identify websites" and "… email
users".</li>
<li><b>Linux:</b> copy ca.pem to <code>/usr/local/share/ca-certificates/pcloud.crt</code> and run
<code>sudo update-ca-certificates</code>.</li>
</ul>"""


def page(settings: ClientSettings, address: str, chat_port: int | None = None) -> str:
    dav = escape(settings.dav_url)
    host = escape(settings.host)
    chat = (
        f"<li><b>Conversations</b> (chat): sign in with your address and password; it finds"
        f" <code>{host}</code> port {chat_port} by itself.</li>"
        if chat_port is not None
        else "<li><b>Conversations</b> (chat): chat is not enabled on this server yet.</li>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Set up your devices</title><style>{STYLE}</style></head>
<body>
<h1>Set up your devices</h1>
<p>Signed in as <b>{escape(address)}</b>. Most programs need only your address and password:
they find the rest by themselves. The steps for each kind of device follow, and the full
settings are <a href="#settings">at the end</a>.</p>
{_certificate_section(settings)}
<h2 id="apple">iPhone, iPad and Mac</h2>
<p>One profile sets up Mail, Calendar and Contacts.</p>
<p><form method="get" action="/setup/apple.mobileconfig"><button>Download the profile</button>
</form> (the device asks for your password while installing it), or
<form method="post" action="/setup/apple.mobileconfig"><button>Download it with a new app
password inside</button></form> (nothing to type; the app password is named after the date and
can be revoked on its own).</p>
<p>On iPhone and iPad open the download, then Settings → "Profile Downloaded" → Install. On a
Mac open it, then System Settings → Privacy &amp; Security → Profiles → Install. The profile is
not signed, so the device calls it "unverified": that is expected.</p>

<h2 id="android">Android</h2>
<ul>
<li><b>K-9 Mail, Thunderbird for Android, FairEmail:</b> add an account with your address and
password; the settings are found automatically.</li>
<li><b>Delta Chat:</b> "I already have a login", then your address and password.</li>
<li><b>DAVx5</b> (calendars and contacts): add an account → "Login with URL and user name",
URL <code>{dav}</code>, your address and password.</li>
{chat}
</ul>

<h2 id="thunderbird">Thunderbird</h2>
<p>Account Settings → Account Actions → Add Mail Account: your name, address and password, then
Continue; Thunderbird finds the servers. For calendars and contacts, it offers the ones it finds
after the account is set up; otherwise New Calendar → On the Network, and New Address Book →
Add CardDAV Address Book, each with the location <code>{dav}</code>.</p>

<h2 id="outlook">Outlook</h2>
<p>File → Add Account: your address, then your password; Outlook finds the servers (choose
IMAP if it asks). Outlook has no CalDAV or CardDAV of its own: add-ons such as "CalDav
Synchronizer" connect it to <code>{dav}</code>.</p>

<h2 id="settings">All settings</h2>
{_settings_table(settings, address)}
</body></html>
"""
