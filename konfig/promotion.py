"""Release promotion, the pure core: decide whether an image digest may move from one
environment of a domain to the next, and build the objects that record the move.

No I/O: the Kubernetes adapter (:mod:`konfig.kube.promote`) reads the ControlPlane, Domain and
the two Workload objects, calls :func:`plan_promotion`, and applies the :class:`Promotion` it
returns (a merge patch of the target Workload, or the Workload to create) plus an Event.

The rules (spec/definitions.md, "The opinions": one artifact, promoted by digest):

- environments are promoted in the control plane's order (``spec.environments``), restricted
  to the domain's own environments (``Domain.spec.environments``; all when unset), so a domain
  without ``stage`` promotes ``dev`` -> ``prod`` directly, but no domain ever skips one of its
  own environments;
- only what runs is promoted: the source Workload's ``status.image`` (written by the operator),
  and only when the operator reports it Ready for the current generation;
- only digests move (``@sha256:``): a tag can point at different bytes tomorrow.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from konfig.compile import naming
from konfig.compile.state import LABEL_ENVIRONMENT
from konfig.definitions import Definitions
from konfig.model import ControlPlane, Domain

#: Annotations written on the target Workload by every promotion.
PROMOTED_FROM = "konfig.dev/promoted-from"
PROMOTED_BY = "konfig.dev/promoted-by"
PROMOTED_AT = "konfig.dev/promoted-at"
PROMOTED_DIGEST = "konfig.dev/promoted-digest"
#: Written by release promotions (``konfig promote --commit``): the commit and its tag.
PROMOTED_COMMIT = "konfig.dev/promoted-commit"
PROMOTED_RELEASE = "konfig.dev/release"
#: Registry tag under which the default-branch build records the digest it built for a commit
#: (docs/gitops.md, "Release promotion"): ``<image>:git-<40-hex commit SHA>``. The domain's
#: Artifact Registry repository has immutable tags, so the record cannot be moved.
BUILD_TAG_PREFIX = "git-"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

#: Field manager of promotion writes, visible in ``metadata.managedFields``.
FIELD_MANAGER = "konfig-promote"
#: Reason of the Event posted on the target Workload.
EVENT_REASON = "Promoted"
EVENT_ACTION = "Promote"

WORKLOAD_API_VERSION = "konfig.dev/v1alpha1"

#: ``<repository>[:tag]@sha256:<64 hex>``: an image reference pinned by digest.
#: Source: https://github.com/distribution/reference/blob/main/reference.go (digest grammar)
DIGEST_RE = re.compile(r"^(?P<repository>[^@\s]+)@(?P<digest>sha256:[a-f0-9]{64})$")

RefusalCode = Literal[
    "unknown-environment",  # not an environment of the control plane
    "not-in-domain",  # an environment the domain does not have
    "first-environment",  # nothing comes before it: CI deploys there, nothing is promoted
    "skip",  # --from is not the environment right before --to
    "unknown-workload",  # no such Workload (in the source environment, or anywhere)
    "ambiguous-workload",  # several domains have a Workload of that name
    "domain-mismatch",  # the Workload found belongs to another domain
    "not-ready",  # the source is not (yet) running what its spec asks for
    "no-digest",  # the source runs a tag, not a digest
    "never-built",  # the release tag's commit has no build record (never built on main)
    "not-commit-digest",  # the digest asked for is not the one built for the tagged commit
    "not-promoted-yet",  # the previous environment does not run this release yet
    "invalid-workload",  # the commit's workload.yaml is not this workload's valid Workload
]


class PromotionRefused(Exception):
    """A promotion Konfig will not do. ``code`` says which rule (:data:`RefusalCode`),
    ``reason`` says why in a sentence for humans."""

    def __init__(self, code: RefusalCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Promotion:
    """One decided promotion: move ``image`` (``repository@sha256:...``) of ``workload`` from
    ``source_environment`` to ``target_environment`` of ``domain``.

    ``previous_image`` is the target's ``spec.image`` before (None when the target Workload
    does not exist yet: ``create`` is then True and :meth:`new_object` is the object to
    create). ``changed`` is False when the target already asks for this image (nothing to do).
    ``target_resource_version`` guards the patch against a concurrent writer (HTTP 409).
    ``at`` is timezone-aware UTC, whole seconds.
    """

    workload: str
    domain: str
    source_environment: str
    target_environment: str
    image: str
    digest: str
    previous_image: str | None
    production: bool
    actor: str
    at: datetime
    create: bool
    target_resource_version: str | None = None
    source_generation: int | None = None
    new_target: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: Release promotions only: the tag's commit and tag, and the target's spec before.
    commit: str | None = None
    release: str | None = None
    previous_spec: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    previous_commit: str | None = None

    @property
    def source_namespace(self) -> str:
        return naming.namespace_name(self.domain, self.source_environment)

    @property
    def target_namespace(self) -> str:
        return naming.namespace_name(self.domain, self.target_environment)

    @property
    def changed(self) -> bool:
        """Whether the target must be written: a new image or, for a release, a new spec
        (the commit's workload.yaml moves with its digest)."""
        if self.commit is not None and self.new_target is not None:
            from konfig.kube.diff import contains  # pure: the operator's own field comparison

            # The live spec carries the API server's defaults: what matters is that it holds
            # every field of the release (and was written for this commit, so a field the
            # commit dropped is dropped by the apply).
            return (self.create or self.previous_commit != self.commit
                    or not contains(self.previous_spec or {}, self.new_target.get("spec")))
        return self.previous_image != self.image

    def annotations(self) -> dict[str, str]:
        """The ``konfig.dev/promoted-*`` annotations: source environment, actor, RFC 3339 UTC
        time, digest (and, for a release, its commit and tag)."""
        out = {
            PROMOTED_FROM: self.source_environment,
            PROMOTED_BY: self.actor,
            PROMOTED_AT: rfc3339(self.at),
            PROMOTED_DIGEST: self.digest,
        }
        if self.commit:
            out[PROMOTED_COMMIT] = self.commit
        if self.release:
            out[PROMOTED_RELEASE] = self.release
        return out

    def merge_patch(self) -> dict[str, Any]:
        """The JSON merge patch (RFC 7386) of an existing target Workload: ``spec.image`` and
        the annotations, with ``metadata.resourceVersion`` so a concurrent change fails with 409
        instead of being overwritten."""
        metadata: dict[str, Any] = {"annotations": self.annotations()}
        if self.target_resource_version:
            metadata["resourceVersion"] = self.target_resource_version
        return {"metadata": metadata, "spec": {"image": self.image}}

    def new_object(self) -> dict[str, Any]:
        """The Workload to create when the target environment has none yet (``create``): the
        source's spec with the promoted image, its labels (``konfig-environment`` set to the
        target), and the promotion annotations. Raises ``ValueError`` when the target exists."""
        if self.new_target is None:
            raise ValueError("the target Workload exists: patch it (merge_patch) instead")
        return copy.deepcopy(self.new_target)

    def event_note(self) -> str:
        """The Event's human-readable note (at most 1 kB in events.k8s.io/v1)."""
        before = f", replacing {self.previous_image}" if self.previous_image else ""
        return (
            f"{self.actor} promoted {self.digest} from {self.source_environment} to "
            f"{self.target_environment}{before}"
        )[:1024]

    def summary(self) -> str:
        """One line for people: what moves where."""
        verb = "create" if self.create else ("update" if self.changed else "unchanged")
        return (
            f"{self.workload} ({self.domain}): {self.source_environment} -> "
            f"{self.target_environment}, {self.image} [{verb}]"
        )


def rfc3339(moment: datetime) -> str:
    """``2025-03-01T12:00:00Z``: UTC, whole seconds. Raises ``ValueError`` on a naive time
    (ambiguous: which zone?)."""
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def domain_environments(control_plane: ControlPlane, domain: Domain) -> list[str]:
    """The domain's environments in promotion order (the control plane's order)."""
    return Definitions(control_plane=control_plane).domain_environments(domain)


def plan_promotion(
    *,
    control_plane: ControlPlane,
    domain: Domain,
    workload: str,
    to_environment: str,
    from_environment: str | None = None,
    source: dict[str, Any] | None,
    target: dict[str, Any] | None,
    actor: str,
    now: datetime,
) -> Promotion:
    """Decide the promotion of ``workload`` into ``to_environment`` of ``domain``.

    ``source`` and ``target`` are the Workload objects (as the API server returns them) in the
    source and target domain-environment namespaces, None where absent. ``from_environment``
    defaults to the environment right before ``to_environment``; given, it must be exactly
    that one. ``now`` must be timezone-aware (``ValueError`` otherwise).

    Returns the :class:`Promotion` to apply. Raises :class:`PromotionRefused` (see
    :data:`RefusalCode`) when an environment is unknown or not the domain's, when promoting
    would skip an environment or has nothing before it, when the source Workload is missing,
    of another domain, not Ready for its current generation, or runs an image without digest.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    source_env = _source_environment(control_plane, domain, to_environment, from_environment)
    source_ns = naming.namespace_name(domain.name, source_env)
    if source is None:
        raise PromotionRefused(
            "unknown-workload",
            f"there is no Workload {workload!r} in {source_env} (namespace {source_ns}): "
            f"deploy it there first",
        )
    _check_domain(source, domain.name, source_ns)
    if target is not None:
        _check_domain(target, domain.name, naming.namespace_name(domain.name, to_environment))
    _check_running(source, source_ns)
    image, digest = _digest_of(source, source_ns)

    at = now.astimezone(UTC).replace(microsecond=0)
    production = any(e.production for e in control_plane.spec.environments if e.name == to_environment)
    common: dict[str, Any] = {
        "workload": workload,
        "domain": domain.name,
        "source_environment": source_env,
        "target_environment": to_environment,
        "image": image,
        "digest": digest,
        "production": production,
        "actor": actor,
        "at": at,
        "source_generation": source["metadata"].get("generation"),
    }
    if target is not None:
        return Promotion(
            **common,
            previous_image=(target.get("spec") or {}).get("image"),
            create=False,
            target_resource_version=target["metadata"].get("resourceVersion"),
        )
    promotion = Promotion(**common, previous_image=None, create=True)
    return replace(promotion, new_target=_new_target(source, promotion))


def _source_environment(
    control_plane: ControlPlane, domain: Domain, to_env: str, from_env: str | None
) -> str:
    """The environment promoted from; refuses unknown, foreign, first and skipping ones."""
    known = control_plane.environment_names
    ours = domain_environments(control_plane, domain)
    for flag, env in (("--to", to_env), ("--from", from_env)):
        if env is None:
            continue
        if env not in known:
            raise PromotionRefused(
                "unknown-environment",
                f"{flag} {env!r} is not an environment of control plane "
                f"{control_plane.name!r} ({', '.join(known)})",
            )
        if env not in ours:
            raise PromotionRefused(
                "not-in-domain",
                f"{flag} {env!r}: domain {domain.name!r} has no such environment "
                f"(it has {', '.join(ours)})",
            )
    position = ours.index(to_env)
    if position == 0:
        raise PromotionRefused(
            "first-environment",
            f"{to_env!r} is domain {domain.name!r}'s first environment: nothing is promoted "
            f"into it, CI deploys it from the default branch",
        )
    previous = ours[position - 1]
    if from_env is not None and from_env != previous:
        if ours.index(from_env) < position:
            skipped = ", ".join(ours[ours.index(from_env) + 1 : position])
            why = f"would skip {skipped}"
        else:
            why = f"goes backwards (the order is {' -> '.join(ours)})"
        raise PromotionRefused(
            "skip",
            f"promoting from {from_env} to {to_env} {why}: promote from {previous} instead",
        )
    return previous


def _check_domain(obj: dict[str, Any], domain: str, namespace: str) -> None:
    found = (obj.get("spec") or {}).get("domain")
    if found != domain:
        name = obj["metadata"]["name"]
        raise PromotionRefused(
            "domain-mismatch",
            f"Workload {name!r} in {namespace} belongs to domain {found!r}, not {domain!r}",
        )


def _check_running(source: dict[str, Any], namespace: str) -> None:
    """Refuse unless the operator observed the current generation and reports it Ready."""
    meta, status = source["metadata"], source.get("status") or {}
    name, generation = meta["name"], meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed != generation:
        raise PromotionRefused(
            "not-ready",
            f"Workload {name!r} in {namespace} is not yet running its latest spec (generation "
            f"{generation}, the operator observed {observed if observed is not None else 'none'})",
        )
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        words = [ready.get("reason"), ready.get("message")] if ready else []
        detail = " ".join(w for w in words if w)
        raise PromotionRefused(
            "not-ready",
            f"Workload {name!r} in {namespace} is not Ready" + (f": {detail}" if detail else ""),
        )
    cond_generation = ready.get("observedGeneration")
    if cond_generation is not None and generation is not None and cond_generation != generation:
        raise PromotionRefused(
            "not-ready",
            f"Workload {name!r} in {namespace}: its Ready condition is for generation "
            f"{cond_generation}, not the current {generation}",
        )


def _digest_of(source: dict[str, Any], namespace: str) -> tuple[str, str]:
    name = source["metadata"]["name"]
    image = (source.get("status") or {}).get("image")
    if not image:
        raise PromotionRefused(
            "not-ready", f"Workload {name!r} in {namespace} has not reported its image yet"
        )
    match = DIGEST_RE.match(image)
    if match is None:
        raise PromotionRefused(
            "no-digest",
            f"Workload {name!r} in {namespace} runs {image!r}, which has no @sha256: digest: "
            f"only digests are promoted (a tag can move); deploy it by digest first",
        )
    return image, match.group("digest")


def _new_target(source: dict[str, Any], promotion: Promotion) -> dict[str, Any]:
    labels = dict(source["metadata"].get("labels") or {})
    if LABEL_ENVIRONMENT in labels:
        labels[LABEL_ENVIRONMENT] = promotion.target_environment
    spec = copy.deepcopy(source.get("spec") or {})
    spec["image"] = promotion.image
    metadata: dict[str, Any] = {
        "name": promotion.workload,
        "namespace": promotion.target_namespace,
        "annotations": promotion.annotations(),
    }
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": source.get("apiVersion", WORKLOAD_API_VERSION),
        "kind": "Workload",
        "metadata": metadata,
        "spec": spec,
    }


@dataclass(frozen=True)
class Release:
    """What a release tag's pipeline promotes: the tagged ``commit`` (40 hex digits), its
    ``tag``, the image ``repository`` (no tag, no digest), the digest the default-branch build
    recorded for that commit (``recorded``: ``sha256:...``, ``None`` when it was never built),
    the digest asked for (``requested``, optional: it must equal ``recorded``), and that
    commit's ``workload.yaml`` as a document (placeholders filled)."""

    commit: str
    tag: str | None
    repository: str
    recorded: str | None
    workload: dict[str, Any]
    requested: str | None = None

    @property
    def build_tag(self) -> str:
        return f"{BUILD_TAG_PREFIX}{self.commit}"


def plan_release_promotion(
    *,
    control_plane: ControlPlane,
    domain: Domain,
    workload: str,
    to_environment: str,
    release: Release,
    source: dict[str, Any] | None,
    target: dict[str, Any] | None,
    actor: str,
    now: datetime,
) -> Promotion:
    """Decide the promotion of a release (one commit: its built digest and its workload.yaml)
    into ``to_environment``, the environment after ``source``'s.

    Refuses (:class:`PromotionRefused`) what :func:`plan_promotion` refuses for the
    environments, and: a commit that was never built (``never-built``: no
    ``<repository>:git-<commit>`` record), a requested digest that is not the commit's
    (``not-commit-digest``), a commit's Workload that is not this workload's or does not
    validate (``invalid-workload``), and, past the second environment, a previous
    environment that does not run this release's digest for its current generation
    (``not-promoted-yet``: releases move through the environments in order). The first
    environment runs the default branch's latest build, so promoting into the second one
    needs only the build record. The target Workload becomes the commit's Workload with
    ``spec.image`` pinned to the digest. ``now`` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not COMMIT_RE.match(release.commit):
        raise PromotionRefused("never-built",
                               f"{release.commit!r} is not a full commit SHA (40 hex digits)")
    source_env = _source_environment(control_plane, domain, to_environment, None)
    if release.recorded is None:
        raise PromotionRefused(
            "never-built",
            f"commit {release.commit[:12]} was never built on the default branch (no "
            f"{release.repository}:{release.build_tag} in the registry): tag a commit that "
            f"the default-branch pipeline built")
    if release.requested and release.requested != release.recorded:
        raise PromotionRefused(
            "not-commit-digest",
            f"{release.requested} is not the image built for commit {release.commit[:12]} "
            f"({release.recorded}): only the tagged commit's own build is promoted")
    spec = _release_spec(release, workload, domain.name)
    image = f"{release.repository}@{release.recorded}"
    ours = domain_environments(control_plane, domain)
    source_ns = naming.namespace_name(domain.name, source_env)
    if ours.index(source_env) > 0:
        if source is None:
            raise PromotionRefused(
                "not-promoted-yet",
                f"there is no Workload {workload!r} in {source_env}: promote this release "
                f"there first")
        _check_running(source, source_ns)
        running, _ = _digest_of(source, source_ns)
        if running != image:
            raise PromotionRefused(
                "not-promoted-yet",
                f"{source_env} runs {running}, not this release's {image}: promote "
                f"{release.tag or release.commit[:12]} to {source_env} first")
    if target is not None:
        _check_domain(target, domain.name, naming.namespace_name(domain.name, to_environment))
    at = now.astimezone(UTC).replace(microsecond=0)
    production = any(e.production for e in control_plane.spec.environments
                     if e.name == to_environment)
    promotion = Promotion(
        workload=workload, domain=domain.name, source_environment=source_env,
        target_environment=to_environment, image=image, digest=release.recorded,
        previous_image=(target.get("spec") or {}).get("image") if target else None,
        production=production, actor=actor, at=at, create=target is None,
        target_resource_version=target["metadata"].get("resourceVersion") if target else None,
        source_generation=(source or {}).get("metadata", {}).get("generation"),
        commit=release.commit, release=release.tag,
        previous_spec=copy.deepcopy(target.get("spec")) if target else None,
        previous_commit=((target or {}).get("metadata", {}).get("annotations") or {}).get(
            PROMOTED_COMMIT))
    labels = dict(((target or source or {}).get("metadata") or {}).get("labels") or {})
    if LABEL_ENVIRONMENT in labels:
        labels[LABEL_ENVIRONMENT] = to_environment
    metadata: dict[str, Any] = {"name": workload, "namespace": promotion.target_namespace,
                                "annotations": promotion.annotations()}
    if labels:
        metadata["labels"] = labels
    new_target = {"apiVersion": WORKLOAD_API_VERSION, "kind": "Workload", "metadata": metadata,
                  "spec": {**spec, "image": image}}
    return replace(promotion, new_target=new_target)


def _release_spec(release: Release, workload: str, domain: str) -> dict[str, Any]:
    """The commit's Workload spec, validated (``invalid-workload`` otherwise)."""
    from pydantic import ValidationError

    from konfig.model import Workload

    doc = release.workload
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("kind") != "Workload" or name != workload:
        raise PromotionRefused(
            "invalid-workload",
            f"the commit's workload.yaml is not Workload {workload!r} (found "
            f"{(doc or {}).get('kind') if isinstance(doc, dict) else type(doc).__name__} "
            f"{name!r})")
    try:
        model = Workload.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PromotionRefused("invalid-workload",
                               f"the commit's workload.yaml is invalid at {where}: "
                               f"{first['msg']}") from None
    spec = dict(model.to_document().get("spec") or {})
    if spec.get("domain") != domain:
        raise PromotionRefused("invalid-workload",
                               f"the commit's workload.yaml names domain {spec.get('domain')!r}, "
                               f"not {domain!r}")
    spec.pop("image", None)
    return spec


def infer_domain(workload: str, found: list[dict[str, Any]]) -> str:
    """The domain of ``workload`` from every Workload object of that name in the cluster
    (``found``, any namespaces). Raises :class:`PromotionRefused` when there is none
    (``unknown-workload``) or several domains have one (``ambiguous-workload``)."""
    domains = sorted({(w.get("spec") or {}).get("domain") or "" for w in found} - {""})
    if not domains:
        raise PromotionRefused("unknown-workload", f"there is no Workload named {workload!r}")
    if len(domains) > 1:
        raise PromotionRefused(
            "ambiguous-workload",
            f"Workloads named {workload!r} exist in domains {', '.join(domains)}: "
            f"say which with --domain",
        )
    return domains[0]
