"""What ``konfig bootstrap`` wants to exist in GCP before Config Connector does: the desired
state of the control plane's own folder, project, APIs and service account, as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from konfig.compile import naming
from konfig.compile.access import CONTROL_PLANE_FOLDER_ROLES
from konfig.compile.context import CONTROL_PLANE_SERVICES
from konfig.compile.state import LABEL_CONTROL_PLANE
from konfig.model.controlplane import ControlPlane

#: APIs of the control-plane project and the controller's roles on the control-plane folder:
#: the compiler's own lists, so that bootstrap and the Config Connector objects agree.
REQUIRED_SERVICES: tuple[str, ...] = CONTROL_PLANE_SERVICES
FOLDER_ROLES: tuple[str, ...] = tuple(sorted(CONTROL_PLANE_FOLDER_ROLES))

#: Roles of the controller's service account on the billing account: link the projects it
#: creates (billing.user) and manage the domains' and platforms' budgets (billing.costsManager).
#: Source: https://cloud.google.com/billing/docs/how-to/billing-access
BILLING_ROLES: tuple[str, ...] = ("roles/billing.costsManager", "roles/billing.user")


def compute_default_service_account(project_number: str) -> str:
    """Email of a project's Compute Engine default service account. Source:
    https://cloud.google.com/compute/docs/access/service-accounts#default_service_account"""
    return f"{project_number}-compute@developer.gserviceaccount.com"


@dataclass(frozen=True)
class BootstrapTarget:
    """The desired state of the control plane's GCP foundation.

    ``parent``: ``organizations/N`` or ``folders/N``; ``billing_account``: the bare ID
    ``012345-6789AB-CDEF01``; ``project_number``: what the definitions say (None when unset),
    compared with the real one.
    """

    control_plane: str
    parent: str
    folder_display_name: str
    project_id: str
    billing_account: str
    service_account_id: str = naming.CONTROL_PLANE_SERVICE_ACCOUNT_ID
    services: tuple[str, ...] = REQUIRED_SERVICES
    folder_roles: tuple[str, ...] = FOLDER_ROLES
    billing_roles: tuple[str, ...] = BILLING_ROLES
    project_number: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: Projects of the domain environments (their default compute account is disabled and
    #: checked by doctor); empty when built from a ControlPlane alone.
    domain_projects: tuple[str, ...] = ()
    #: The control plane's default region: where its GKE cluster runs.
    region: str = ""

    @classmethod
    def from_control_plane(cls, control_plane: ControlPlane) -> "BootstrapTarget":
        """Derive the target from a validated ControlPlane definition."""
        gcp = control_plane.spec.gcp
        project_id = gcp.project_id or naming.control_plane_project_id(
            gcp.project_id_prefix, control_plane.name
        )
        return cls(
            control_plane=control_plane.name,
            parent=gcp.parent,
            folder_display_name=control_plane.spec.display_name or control_plane.name,
            project_id=project_id,
            billing_account=gcp.billing_account,
            project_number=gcp.project_number,
            labels={LABEL_CONTROL_PLANE: control_plane.name},
            region=gcp.default_region,
        )

    @classmethod
    def from_definitions(cls, defs) -> "BootstrapTarget":
        """The target of a whole tree: the control plane's, plus its domain projects."""
        from dataclasses import replace

        from konfig.gcp.default_sa import domain_project_ids

        return replace(cls.from_control_plane(defs.control_plane),
                       domain_projects=tuple(domain_project_ids(defs)))

    @property
    def billing_account_name(self) -> str:
        """``billingAccounts/<ID>``."""
        return f"billingAccounts/{self.billing_account}"

    @property
    def service_account_email(self) -> str:
        return naming.service_account_email(self.service_account_id, self.project_id)

    @property
    def service_account_member(self) -> str:
        """The IAM member string of the controller's service account."""
        return f"serviceAccount:{self.service_account_email}"
