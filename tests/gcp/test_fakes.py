"""The fakes answer the real clients the way GCP does, including its refusals."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import iam_admin_v1, resourcemanager_v3, service_usage_v1

from .conftest import ORG


def test_folder_create_is_an_operation_and_display_names_are_unique(fakes, clients):
    operation = clients.folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=ORG, display_name="acme")
    )
    assert not operation.done()  # the fake answers done only after polls
    assert fakes.rm.folders() == []
    folder = operation.result(polling=clients.polling)
    assert folder.name.startswith("folders/") and folder.state == folder.State.ACTIVE

    # FAILED_PRECONDITION travels as HTTP 400, which the REST client raises as BadRequest.
    with pytest.raises(api_exceptions.BadRequest, match="already exists"):
        clients.folders.create_folder(
            folder=resourcemanager_v3.Folder(parent=ORG, display_name="acme")
        )


def test_unknown_project_is_403_like_gcp(clients):
    with pytest.raises(api_exceptions.Forbidden):
        clients.projects.get_project(name="projects/no-such-project")


def test_stale_etag_is_rejected_with_409(fakes, clients):
    folder = fakes.rm.add_folder(ORG, "acme")
    policy = clients.folders.get_iam_policy(resource=folder)
    fakes.rm.add_binding(folder, "roles/viewer", "group:x@acme.com")  # someone else writes
    policy.bindings.add(role="roles/browser", members=["user:y@acme.com"])

    with pytest.raises(api_exceptions.Conflict):
        clients.folders.set_iam_policy(request={"resource": folder, "policy": policy})


def test_service_usage_limits_and_billing_precondition(fakes, clients):
    folder = fakes.rm.add_folder(ORG, "acme")
    number = fakes.rm.add_project("acme-proj-1", folder)
    parent = f"projects/{number}"
    with pytest.raises(api_exceptions.BadRequest):
        clients.service_usage.batch_enable_services(
            request=service_usage_v1.BatchEnableServicesRequest(
                parent=parent, service_ids=[f"s{i}.googleapis.com" for i in range(21)]
            )
        )
    with pytest.raises(api_exceptions.BadRequest, match="Billing"):
        clients.service_usage.batch_enable_services(
            request=service_usage_v1.BatchEnableServicesRequest(
                parent=parent, service_ids=["container.googleapis.com"]
            )
        )


def test_enum_encoding_follows_the_request(fakes):
    fakes.rm.add_folder(ORG, "acme")
    url = f"{fakes.rm.endpoint}/v3/folders?parent={ORG}"
    with urllib.request.urlopen(url + "&%24alt=json%3Benum-encoding%3Dint") as response:
        assert json.load(response)["folders"][0]["state"] == 1
    with urllib.request.urlopen(url) as response:
        assert json.load(response)["folders"][0]["state"] == "ACTIVE"


def test_errors_use_the_google_json_error_body(fakes):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{fakes.rm.endpoint}/v3/projects/nope-nope")
    body = json.load(caught.value)
    assert body["error"]["code"] == 403 and body["error"]["status"] == "PERMISSION_DENIED"


def test_iam_fake_speaks_grpc_with_the_client_types(fakes, clients):
    with pytest.raises(api_exceptions.InvalidArgument):
        clients.iam.create_service_account(
            request=iam_admin_v1.CreateServiceAccountRequest(
                name="projects/p-123456", account_id="x"
            )
        )
    created = clients.iam.create_service_account(
        request=iam_admin_v1.CreateServiceAccountRequest(
            name="projects/p-123456",
            account_id="robot-one",
            service_account=iam_admin_v1.ServiceAccount(display_name="Robot"),
        )
    )
    assert created.email == "robot-one@p-123456.iam.gserviceaccount.com"
    with pytest.raises(api_exceptions.AlreadyExists):
        clients.iam.create_service_account(
            request=iam_admin_v1.CreateServiceAccountRequest(
                name="projects/p-123456", account_id="robot-one"
            )
        )
    clients.iam.disable_service_account(
        request={"name": f"projects/-/serviceAccounts/{created.email}"}
    )
    assert clients.iam.get_service_account(name=created.name).disabled
    with pytest.raises(api_exceptions.NotFound):
        clients.iam.get_service_account(
            name="projects/-/serviceAccounts/ghost@p-123456.iam.gserviceaccount.com"
        )


def test_iam_fault_injection(fakes, clients):
    fakes.iam.fail_next("GetServiceAccount", grpc.StatusCode.PERMISSION_DENIED, "nope")
    with pytest.raises(api_exceptions.PermissionDenied, match="nope"):
        clients.iam.get_service_account(name="projects/-/serviceAccounts/a@b.c")
