"""``python -m tests.cluster build`` and ``python -m tests.cluster up --kubeconfig PATH``.

``up`` starts the cluster (building the binaries first if needed), writes the admin
kubeconfig to PATH, prints ``ready`` on its own line and runs until SIGTERM or SIGINT; then it
stops its processes and removes their data (and PATH). Exit status 2 with a one-line reason
when the toolchain is missing, a port is taken or a process fails to start.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from tests.cluster import ClusterError, Identity, ToolchainError, ensure_built, konfig_cluster


def _identity(text: str) -> Identity:
    name, _, groups = text.partition("=")
    return Identity(name, tuple(g for g in groups.split(",") if g))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build (or find) the binaries; print their folder")
    pin = commands.add_parser("pin", help="move the recipe (tests/cluster/kube/go.mod) to another release")
    pin.add_argument("version", help="a Kubernetes release, vX.Y.Z")
    up = commands.add_parser("up", help="run a cluster until SIGTERM/SIGINT")
    up.add_argument("--kubeconfig", required=True, type=Path, help="where to write the admin kubeconfig")
    up.add_argument("--port", type=int, help="the API server's port on 127.0.0.1 (default: a free one)")
    up.add_argument("--identity", action="append", default=[], metavar="USER[=GROUP,...]",
                    help="a token-file identity; tokens go to KUBECONFIG.tokens.json")
    up.add_argument("--bare", action="store_true",
                    help="no CRDs and no Config Connector stand-in: Kubernetes only")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(ensure_built().directory)
            return 0
        if args.command == "pin":
            from tests.cluster.build import pin

            pin(args.version)
            return 0
        return _up(args)
    except (ToolchainError, ClusterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    cluster = konfig_cluster(port=args.port, identities=[_identity(i) for i in args.identity],
                             crds=not args.bare)
    tokens = args.kubeconfig.with_name(args.kubeconfig.name + ".tokens.json")
    cluster.start()
    try:
        args.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        cluster.write_kubeconfig(args.kubeconfig, token=cluster.admin.token, user=cluster.admin.name)
        if cluster.identities:
            tokens.write_text(json.dumps({n: i.token for n, i in cluster.identities.items()}, indent=2))
        print(f"kube-apiserver {cluster.server}, kubeconfig {args.kubeconfig}", file=sys.stderr)
        print("ready", flush=True)
        while not stop.wait(1.0):
            if cluster.exited():
                print(f"error: {', '.join(cluster.exited())} exited", file=sys.stderr)
                return 1
        return 0
    finally:
        cluster.stop()
        args.kubeconfig.unlink(missing_ok=True)
        tokens.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
