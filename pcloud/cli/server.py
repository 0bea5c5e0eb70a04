"""`pcloud init`, `pcloud serve`, `pcloud status` and `pcloud config`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from pcloud import __version__, config, logs
from pcloud.cli import Access, CommandError, Context, data_dir_of
from pcloud.config import ConfigError
from pcloud.listeners import PORT_MAPS
from pcloud.services import Endpoint, FirstStart, load_config, open_directory, open_services
from pcloud.supervisor import (
    DataFolderLock,
    StartError,
    endpoint_table,
    running_endpoints,
    running_pid,
    serve_until_stopped,
)
from pcloud.tls import certificate_file, read_certificate


def register(commands: Any, command: Any) -> None:
    init = command(
        commands, "init", cmd_init, "create a data folder without serving", access=Access.LOCAL
    )
    init.add_argument("--domain", help="the main mail domain (default: this machine's host name)")

    serve = command(
        commands,
        "serve",
        cmd_serve,
        "run the server (creating the data folder)",
        access=Access.LOCAL,
    )
    serve.add_argument("--domain", help="the main mail domain, for a new data folder")
    serve.add_argument(
        "--ports",
        choices=("auto", *PORT_MAPS),
        help="port map: standard, high (unprivileged), ephemeral (chosen by the kernel); "
        "default: server.ports in pcloud.toml",
    )

    status = command(commands, "status", cmd_status, "is the server running, and where")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")

    check = command(commands, "config", cmd_config, "check pcloud.toml, or print its reference")
    check.add_argument("--reference", action="store_true", help="print the option reference")


def _print_first_start(context: Context, first_start: FirstStart | None) -> None:
    if first_start:
        context.say(f"Administrator: {first_start.admin_address}")
        context.say(f"Password:      {first_start.admin_password}   (shown only this once)")


def cmd_init(context: Context, arguments: argparse.Namespace) -> int:
    data_dir = data_dir_of(arguments)
    services, first_start = open_services(data_dir, domain=arguments.domain)
    services.close()
    context.say(f"Data folder {data_dir} is ready for {services.config.server.domain}.")
    _print_first_start(context, first_start)
    return 0


def cmd_serve(context: Context, arguments: argparse.Namespace) -> int:
    data_dir = data_dir_of(arguments)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        lock = DataFolderLock(data_dir)
    except StartError as error:
        raise CommandError(str(error)) from None
    logs.configure("info")
    try:
        services, first_start = open_services(data_dir, domain=arguments.domain)
        logs.configure(services.config.log.level)
        _print_first_start(context, first_start)
        port_map = arguments.ports or services.config.server.ports

        def announce(endpoints: list[Endpoint]) -> None:
            context.say(
                f"pcloud {__version__} serving {services.config.server.domain} from {data_dir}"
            )
            context.say(endpoint_table(endpoints))
            context.say(f"Clients that should trust this server import {services.tls.ca_file}")
            context.say("ready")
            context.out.flush()

        try:
            asyncio.run(serve_until_stopped(services, port_map, on_ready=announce))
        except StartError as error:
            raise CommandError(str(error)) from None
        finally:
            services.close()
    finally:
        lock.release()
    return 0


def status_report(data_dir: Path) -> dict[str, Any]:
    settings = load_config(data_dir)
    pid = running_pid(data_dir)
    report: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid,
        "data": str(data_dir),
        "domain": settings.server.domain,
        "endpoints": [vars(e) for e in running_endpoints(data_dir)] if pid else [],
    }
    served = certificate_file(data_dir / "tls", settings.tls)
    if served.exists():
        info = read_certificate(served)
        report["certificate"] = {
            "file": str(info.path),
            "names": list(info.names),
            "not_after": info.not_after.isoformat(),
            "days_left": info.days_left,
        }
    directory = open_directory(data_dir, settings)
    try:
        report["counts"] = directory.counts()
    finally:
        directory.close()
    return report


def cmd_status(context: Context, arguments: argparse.Namespace) -> int:
    report = status_report(data_dir_of(arguments))
    if arguments.json:
        context.say(json.dumps(report, indent=2))
        return 0
    if report["running"]:
        context.say(f"pcloud is running (pid {report['pid']}) on {report['data']}")
        context.say(endpoint_table([Endpoint(**e) for e in report["endpoints"]]))
    else:
        context.say(f"pcloud is not running on {report['data']}")
    certificate = report.get("certificate")
    if certificate:
        context.say(
            f"certificate {certificate['file']} valid until {certificate['not_after'][:10]} "
            f"({certificate['days_left']} days) for {', '.join(certificate['names'])}"
        )
    counts = report["counts"]
    context.say(
        f"{counts['domains']} domains, {counts['users']} users, {counts['aliases']} aliases"
    )
    return 0


def cmd_config(context: Context, arguments: argparse.Namespace) -> int:
    if arguments.reference:
        context.say(config.render_reference())
        return 0
    path = data_dir_of(arguments) / config.CONFIG_FILE
    try:
        config.load(path)
    except ConfigError as error:
        raise CommandError(str(error)) from None
    context.say(f"{path} is valid")
    return 0
