"""What ``konfig bootstrap`` wants to exist in GCP before Config Connector does: the desired
state of the control plane's own folder, project, APIs and service account, as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from konfig.compile import naming
from konfig.compile.state import LABEL_CONTROL_PLANE
from konfig.model.controlplane import ControlPlane

#: APIs the control-plane project needs, with why:
#: - container: the GKE cluster running Config Connector and the controller
#:   (https://cloud.google.com/config-connector/docs/how-to/install-manually);
#: - cloudresourcemanager, serviceusage, iam, cloudbilling: the Config Connector kinds the
#:   controller writes (Folder/Project, Service, IAMServiceAccount/IAMPolicyMember, the billing
#:   link of each new project);
#: - iamcredentials, sts: Workload Identity Federation for CI pipelines
#:   (https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines);
#: - artifactregistry: the domains' image repositories.
REQUIRED_SERVICES: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "cloudbilling.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "serviceusage.googleapis.com",
    "sts.googleapis.com",
)

#: Roles of the controller's service account on the control-plane folder: create the platform
#: and domain folders and projects below it and manage their IAM policies. Source:
#: https://cloud.google.com/resource-manager/docs/access-control-folders
FOLDER_ROLES: tuple[str, ...] = (
    "roles/resourcemanager.folderCreator",
    "roles/resourcemanager.folderIamAdmin",
    "roles/resourcemanager.projectCreator",
)

#: Role of the controller's service account on the billing account, to link the projects it
#: creates. Source: https://cloud.google.com/billing/docs/how-to/billing-access
BILLING_ROLES: tuple[str, ...] = ("roles/billing.user",)


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
        )

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
