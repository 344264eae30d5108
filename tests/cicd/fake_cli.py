"""Stand-ins for gcloud, docker, kubectl and konfig, for running the template's job scripts.

Run as ``python fake_cli.py TOOL ARGS...`` (the test puts one small wrapper per tool on PATH).
Each call is appended to ``$FAKE_STATE/calls.jsonl``. The fakes enforce the preconditions the
real tools have: gcloud and docker commands need a prior ``gcloud auth login`` in the same
``CLOUDSDK_CONFIG``; kubectl and konfig need the kubeconfig ``get-credentials`` writes; a
Workload Identity Federation login needs a readable ID token whose audience matches the provider.
Exit status 3 with a message on stderr when a precondition fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

STATE = Path(os.environ["FAKE_STATE"])
#: https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines
PROVIDER = re.compile(r"projects/[0-9]+/locations/global/workloadIdentityPools/[a-z0-9-]+/providers/[a-z0-9-]+")
SERVICE_ACCOUNT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\.iam\.gserviceaccount\.com")


def record(tool: str, argv: list[str], **extra: object) -> None:
    entry = {"tool": tool, "argv": argv, **extra}
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps(entry) + "\n")


def die(message: str) -> None:
    print(f"fake: {message}", file=sys.stderr)
    sys.exit(3)


def options(argv: list[str]) -> dict[str, str]:
    """``--name=value`` options as a dict (the template always uses the ``=`` form or flags)."""
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            out[name] = value
    return out


def positionals(argv: list[str]) -> list[str]:
    return [a for a in argv if not a.startswith("-")]


def gcloud_config() -> Path:
    return Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")


def require_login() -> dict:
    account = gcloud_config() / "active-credential.json"
    if not account.is_file():
        die("gcloud: no active credentials; run gcloud auth login")
    return json.loads(account.read_text())


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def gcloud(argv: list[str]) -> None:
    opts, words = options(argv), positionals(argv)
    if words[:3] == ["iam", "workload-identity-pools", "create-cred-config"]:
        audience = words[3] if len(words) > 3 else ""
        if not PROVIDER.fullmatch(audience):
            die(f"not a workload identity provider: {audience!r}")
        if not SERVICE_ACCOUNT.fullmatch(opts.get("service-account", "")):
            die(f"not a service account email: {opts.get('service-account')!r}")
        token_file = Path(opts["credential-source-file"])
        if not token_file.is_file():
            die(f"credential source {token_file} not found")
        aud = jwt_claims(token_file.read_text())["aud"]
        if aud != f"https://iam.googleapis.com/{audience}":
            die(f"ID token audience {aud!r} does not match provider {audience!r}")
        # The shape gcloud writes: https://google.aip.dev/auth/4117
        config = {
            "type": "external_account",
            "audience": f"//iam.googleapis.com/{audience}",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/"
            f"projects/-/serviceAccounts/{opts['service-account']}:generateAccessToken",
            "credential_source": {"file": str(token_file)},
        }
        Path(opts["output-file"]).write_text(json.dumps(config))
        record("gcloud", argv, token_file=str(token_file))
    elif words[:2] == ["auth", "login"]:
        credential = json.loads(Path(opts["cred-file"]).read_text())
        if credential.get("type") != "external_account":
            die(f"unsupported credential type {credential.get('type')!r}")
        gcloud_config().mkdir(parents=True, exist_ok=True)
        (gcloud_config() / "active-credential.json").write_text(json.dumps(credential))
        record("gcloud", argv, credential=credential)
    elif words[:2] == ["auth", "print-access-token"]:
        require_login()
        print(os.environ.get("FAKE_ACCESS_TOKEN", "ya29.fake-access-token"))
        record("gcloud", argv)
    elif words[:2] == ["auth", "configure-docker"]:
        require_login()
        record("gcloud", argv)
    elif words[:4] == ["artifacts", "docker", "images", "describe"]:
        require_login()
        pushed = json.loads((STATE / "registry.json").read_text())
        if words[4] not in pushed:
            die(f"image {words[4]} not found")
        if opts.get("format") != "value(image_summary.digest)":
            die(f"unexpected --format {opts.get('format')!r}")
        print(pushed[words[4]])
        record("gcloud", argv)
    elif words[:3] == ["container", "clusters", "get-credentials"]:
        credential = require_login()
        kubeconfig = Path(os.environ["KUBECONFIG"])
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        source = os.environ.get("FAKE_KUBECONFIG_SOURCE")  # a real cluster (the emulator)
        kubeconfig.write_text(Path(source).read_text() if source else
                              json.dumps({"cluster": words[3], "as": credential["audience"]}))
        record("gcloud", argv)
    else:
        die(f"gcloud {' '.join(argv)}: not faked")


def docker(argv: list[str]) -> None:
    require_login()
    words = positionals(argv)
    if words[0] == "build":
        if not Path("Dockerfile").is_file():
            die("no Dockerfile in the build context")
        record("docker", argv)
    elif words[0] == "push":
        registry = STATE / "registry.json"
        pushed = json.loads(registry.read_text()) if registry.exists() else {}
        digest = "sha256:" + hashlib.sha256(words[1].encode()).hexdigest()
        pushed[words[1]] = digest
        registry.write_text(json.dumps(pushed))
        print(f"latest: digest: {digest} size: 1234")
        record("docker", argv)
    else:
        die(f"docker {' '.join(argv)}: not faked")


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def kubectl(argv: list[str]) -> None:
    if not Path(os.environ.get("KUBECONFIG", "/nonexistent")).is_file():
        die("kubectl: no kubeconfig; run gcloud container clusters get-credentials")
    opts, words = options(argv), positionals(argv)
    yaml = YAML(typ="safe", pure=True)
    if words[0] == "patch" and "local" in opts:
        if opts.get("type") != "merge" or opts.get("output") != "yaml":
            die("patch: expected --type=merge --output=yaml")
        document = yaml.load(Path(opts["filename"]).read_text())
        yaml.dump(merge_patch(document, json.loads(opts["patch"])), sys.stdout)
        record("kubectl", argv)
    elif words[0] == "apply":
        manifest = yaml.load(Path(opts["filename"]).read_text())
        if opts.get("output") != "jsonpath={.metadata.name} {.metadata.generation}":
            die(f"apply: unexpected --output {opts.get('output')!r}")
        print(f"{manifest['metadata']['name']} 7", end="")
        record("kubectl", argv, manifest=manifest)
    elif words[0] == "wait":
        record("kubectl", argv)
    else:
        die(f"kubectl {' '.join(argv)}: not faked")


def konfig(argv: list[str]) -> None:
    if argv[:1] != ["validate"]:  # validate is offline; the other commands use the cluster
        if not Path(os.environ.get("KUBECONFIG", "/nonexistent")).is_file():
            die("konfig: no kubeconfig")
        require_login()
    record("konfig", argv)
    if os.environ.get("FAKE_REAL_KONFIG"):  # past the preconditions, the real CLI does the work
        root = str(Path(__file__).resolve().parents[2])
        os.execv(sys.executable, [sys.executable, "-c",
                                  f"import sys; sys.path.insert(0, {root!r}); from cli import main;"
                                  " sys.argv = ['konfig', *sys.argv[1:]]; main()", *argv])


def main() -> None:
    tool, argv = sys.argv[1], sys.argv[2:]
    {"gcloud": gcloud, "docker": docker, "kubectl": kubectl, "konfig": konfig}[tool](argv)


if __name__ == "__main__":
    main()
