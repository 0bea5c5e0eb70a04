"""SSH (RFC 4251-4254) through asyncssh: the pcloud command tree as a shell.

Implementation notes:
- `server.py` adapts asyncssh's server class to pcloud: public-key authentication only, against
  the keys the directory holds for the user (`pcloud user ssh-key add`); passwords and
  keyboard-interactive are never offered (RFC 4252 §5.2: the failure reply lists "publickey"
  alone). Login names are user addresses; a bare name means that name in the main domain, as for
  every protocol (`Directory.login_name`). A connection counts as one attempt in the directory's
  login throttle until it signs in; a locked-out address or login is refused every key.
- `shell.py` runs pcloud commands for the signed-in user (`pcloud.cli.run` with the user as the
  context's principal, so `pcloud.cli.authorize` decides what they may do): `ssh host COMMAND`
  runs one and exits with its status; a session with a terminal gets a prompt with asyncssh's
  line editor (editing, history), Tab completion and `help`.
- `sftp.py` serves SFTP and SCP over the user's tree in the file store.
- No port, agent or X11 forwarding.
"""
