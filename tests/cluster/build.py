"""Build (once per machine) and find the test cluster's binaries: kube-apiserver and
kube-controller-manager from the ``k8s.io/kubernetes`` Go module, and etcd from
``go.etcd.io/etcd/server/v3`` at the version that Kubernetes release requires.

The recipe is the wrapper module in ``tests/cluster/kube`` (``go.mod`` pins the Kubernetes
version, and only it; ``go.sum`` records the checksums). ``k8s.io/kubernetes`` cannot be
``go install``-ed: its go.mod replaces the ``k8s.io/*`` staging modules with local paths, so
the wrapper pins each to the published ``v0.Y.Z`` of ``v1.Y.Z``
(https://github.com/kubernetes/kubernetes/blob/master/staging/README.md). etcd's version is
whatever ``k8s.io/kubernetes`` requires (Go's minimal version selection), so it is one that
release is built and tested with.

The binaries go to ``<cache>/konfig/kube-<version>-<recipe hash>/bin`` with ``<cache>`` =
``$KONFIG_CACHE``, else ``$XDG_CACHE_HOME``, else ``~/.cache``: outside the clone, reused by
every later run and clone on the machine. A file lock makes concurrent callers (pytest-xdist
workers, two clones) wait for one build instead of building twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RECIPE = Path(__file__).resolve().parent / "kube"
#: The Go packages built, by binary name.
PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "etcd": "go.etcd.io/etcd/server/v3",
}
_REQUIRE = re.compile(r"^require k8s\.io/kubernetes (v(\d+)\.(\d+)\.(\d+))\s*$", re.MULTILINE)


class ToolchainError(RuntimeError):
    """The binaries are not built and cannot be (no ``go``), or the build failed."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the built binaries and the Kubernetes version they are."""

    version: str
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def complete(self) -> bool:
        return all(os.access(self.path(n), os.X_OK) for n in PACKAGES)


def kubernetes_version(recipe: Path = RECIPE) -> str:
    """``vX.Y.Z`` from the recipe's go.mod (the one place the version is pinned). Raises
    :class:`ToolchainError` if go.mod has no ``require k8s.io/kubernetes vX.Y.Z`` line."""
    match = _REQUIRE.search((recipe / "go.mod").read_text())
    if not match:
        raise ToolchainError(f"{recipe / 'go.mod'}: no 'require k8s.io/kubernetes vX.Y.Z' line")
    return match.group(1)


def pin(version: str, recipe: Path = RECIPE) -> None:
    """Rewrite the recipe's go.mod for Kubernetes ``version`` (``vX.Y.Z``): require it and
    replace each staging module its go.mod names with the published ``v0.Y.Z``. Needs ``go``
    (reads k8s.io/kubernetes's go.mod through the module proxy). Raises
    :class:`ToolchainError`."""
    go = shutil.which("go")
    if go is None:
        raise ToolchainError("`go` is not on PATH")
    found = subprocess.run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                           capture_output=True, text=True, cwd=recipe)
    if found.returncode != 0:
        raise ToolchainError(f"k8s.io/kubernetes@{version}: {found.stdout}{found.stderr}")
    upstream = Path(json.loads(found.stdout)["GoMod"]).read_text()
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", upstream, re.MULTILINE)))
    staged = "v0." + version.split(".", 1)[1]
    go_line = re.search(r"^go (\S+)", upstream, re.MULTILINE).group(1)
    text = (recipe / "go.mod").read_text()
    header = text[:text.index("module ")]
    body = [f"module konfig.test/cluster\n\ngo {go_line}\n", f"require k8s.io/kubernetes {version}\n",
            "replace (", *(f"\t{m} => {m} {staged}" for m in staging), ")\n"]
    (recipe / "go.mod").write_text(header + "\n".join(body))
    (recipe / "go.sum").unlink(missing_ok=True)
    # Resolve the build graph (no compiling): records the requirements and go.sum.
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    listed = subprocess.run([go, "list", "-deps", *PACKAGES.values()], cwd=recipe, env=env,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise ToolchainError(f"go list -deps failed:\n{listed.stderr[-4000:]}")


def cache_root() -> Path:
    base = os.environ.get("KONFIG_CACHE") or os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "konfig"


def _recipe_hash(recipe: Path) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):  # comments aside: they do not change the build
        path = recipe / name
        text = path.read_text() if path.exists() else ""
        digest.update("\n".join(l for l in text.splitlines() if not l.startswith("//")).encode())
    return digest.hexdigest()[:10]


def binaries(recipe: Path = RECIPE) -> Binaries:
    """Where this recipe's binaries are (or will be) built; does not build."""
    version = kubernetes_version(recipe)
    return Binaries(version, cache_root() / f"kube-{version}-{_recipe_hash(recipe)}" / "bin")


def ldflags(version: str) -> str:
    """Strip symbols and debug info (``-s -w``: about a third smaller) and stamp the version
    that ``/version`` and ``kubectl version`` report (the module build cannot read it from git;
    variables of k8s.io/component-base/version, as hack/lib/version.sh sets them)."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamp = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return " ".join(["-s", "-w", *(f"-X k8s.io/component-base/version.{k}={v}" for k, v in stamp.items())])


def ensure_built(recipe: Path = RECIPE, *, log=None) -> Binaries:
    """The binaries, building them first if this machine has not yet (minutes: see the
    README). ``log`` (a callable taking a line) reports progress. Raises
    :class:`ToolchainError` if ``go`` is missing or the build fails (with Go's output)."""
    found = binaries(recipe)
    if found.complete:
        return found
    home = found.directory.parent
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if found.complete:
            return found
        _build(recipe, found, log or (lambda line: print(line, file=sys.stderr, flush=True)))
    return found


def _build(recipe: Path, target: Binaries, log) -> None:
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            "the test cluster needs its binaries built from Go modules, and `go` is not on PATH: "
            f"install Go (the version in {recipe / 'go.mod'} or newer), then run "
            "`python -m tests.cluster build`")
    home = target.directory.parent
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building kube-apiserver, kube-controller-manager and etcd {target.version} into {home} "
        "(once per machine; takes several minutes)")
    with tempfile.TemporaryDirectory(dir=home, prefix="build-") as work:
        for name in ("go.mod", "go.sum"):
            if (recipe / name).exists():
                shutil.copy(recipe / name, Path(work) / name)
        out = Path(work) / "bin"
        env = {**os.environ, "CGO_ENABLED": "0",
               "GOFLAGS": "-trimpath -mod=mod -buildvcs=false"}
        command = [go, "build", f"-ldflags={ldflags(target.version)}", "-o", f"{out}/",
                   *PACKAGES.values()]
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise ToolchainError(f"`{' '.join(command)}` failed in {work}:\n{result.stderr[-4000:]}")
        # go names a binary after the import path's last element, skipping a major version
        # suffix: go.etcd.io/etcd/server/v3 -> server
        built = {"etcd": out / "server"} | {n: out / n for n in PACKAGES if n != "etcd"}
        if target.directory.exists():
            shutil.rmtree(target.directory)
        target.directory.mkdir(parents=True)
        for name, path in built.items():
            path.rename(target.path(name))
    seconds = time.monotonic() - started
    sizes = {n: target.path(n).stat().st_size for n in PACKAGES}
    (home / "BUILD.json").write_text(json.dumps(
        {"version": target.version, "seconds": round(seconds), "bytes": sizes,
         "go": subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip()},
        indent=2) + "\n")
    log(f"built in {seconds:.0f} s: " + ", ".join(f"{n} {s / 2**20:.0f} MiB" for n, s in sizes.items()))
