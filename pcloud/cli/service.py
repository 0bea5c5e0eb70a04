"""`pcloud service install`: run pcloud as a systemd service under a dedicated system user.

Safe to run twice: each step checks what is there and says what it did or found.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pcloud.cli import CommandError, Context
from pcloud.store.durable import write_atomically

UNIT_NAME = "pcloud.service"
DEFAULT_DATA = "/var/lib/pcloud"

UNIT_TEMPLATE = """\
[Unit]
Description=pcloud personal cloud server (mail, calendars, contacts, files, chat)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={group}
ExecStart={python} -m pcloud serve --data {data}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
TimeoutStopSec=10
# The standard ports (25, 443, 993, ...) without running as root.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
# Everything is read-only except the data folder.
ProtectSystem=strict
ReadWritePaths={data}
ProtectHome={protect_home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
UMask=0077

[Install]
WantedBy=multi-user.target
"""


def register(group: Any, command: Any) -> None:
    service = group("service", "run pcloud as a system service")
    install = command(service, "install", cmd_service_install, "install the systemd service")
    install.add_argument("--user", default="pcloud", help="system user to run as (default: pcloud)")
    install.add_argument("--domain", help="the main mail domain, for a new data folder")
    install.add_argument(
        "--unit-dir",
        default="/etc/systemd/system",
        type=Path,
        help="where the unit file goes (default: /etc/systemd/system)",
    )


def render_unit(user: pwd.struct_passwd, data: Path) -> str:
    # A Python installed under a home folder must stay visible to the service.
    under_home = sys.prefix.startswith(("/home/", "/root"))
    return UNIT_TEMPLATE.format(
        user=user.pw_name,
        group=user.pw_gid,
        python=sys.executable,
        data=data,
        protect_home="read-only" if under_home else "yes",
    )


def _system_user(context: Context, name: str, data: Path) -> pwd.struct_passwd:
    try:
        user = pwd.getpwnam(name)
        context.say(f"system user {name}: exists")
        return user
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise CommandError(f"no user {name}, and no useradd to create it")
    subprocess.run(
        [useradd, "--system", "--home-dir", str(data), "--no-create-home",
         "--shell", "/usr/sbin/nologin", name],
        check=True,
    )  # fmt: skip
    context.say(f"system user {name}: created")
    return pwd.getpwnam(name)


def cmd_service_install(context: Context, arguments: argparse.Namespace) -> int:
    data = Path(arguments.data or DEFAULT_DATA).absolute()
    if os.geteuid() != 0 and arguments.user != pwd.getpwuid(os.geteuid()).pw_name:
        raise CommandError("installing a service for another user needs root (try sudo)")
    user = _system_user(context, arguments.user, data)

    if sys.prefix.startswith("/root") and user.pw_uid != 0:
        context.say(
            f"warning: Python lives under {sys.prefix}, which user {user.pw_name} cannot read; "
            "install pcloud system-wide (e.g. in /opt/pcloud) for the service"
        )

    existed = data.exists()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(data, user.pw_uid, user.pw_gid)
    context.say(f"data folder {data}: {'exists' if existed else 'created'}")

    # Initialise as the service user, so that the files are theirs and the administrator's
    # password is shown here, once, rather than in the service's log.
    init = [sys.executable, "-m", "pcloud", "init", "--data", str(data)]
    if arguments.domain:
        init += ["--domain", arguments.domain]
    switch_user = user.pw_uid != os.geteuid()
    result = subprocess.run(
        init,
        user=user.pw_uid if switch_user else None,
        group=user.pw_gid if switch_user else None,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise CommandError(f"pcloud init failed: {result.stderr.strip()}")
    context.out.write(result.stdout)

    unit_file = arguments.unit_dir / UNIT_NAME
    unit = render_unit(user, data)
    if unit_file.exists() and unit_file.read_text() == unit:
        context.say(f"unit {unit_file}: unchanged")
    else:
        arguments.unit_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(unit_file, unit.encode(), mode=0o644)
        context.say(f"unit {unit_file}: written")

    systemctl = shutil.which("systemctl")
    if systemctl and Path("/run/systemd/system").is_dir():
        subprocess.run([systemctl, "daemon-reload"], check=True)
        subprocess.run([systemctl, "enable", UNIT_NAME], check=True, capture_output=True)
        context.say(f"systemd: reloaded, {UNIT_NAME} enabled at boot")
        context.say("start it now with: systemctl start pcloud (or: service pcloud start)")
    else:
        context.say("systemd is not running here: the unit takes effect once it does")
    return 0
