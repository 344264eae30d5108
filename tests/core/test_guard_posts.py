"""Production guard posts in the compiled state: CMEK keys and their service agents, budgets
with their owners' notification channels, and PAM entitlements at every level."""

from __future__ import annotations

import pytest

from konfig.compile import compile_definitions
from konfig.compile.budgets import budgets_of
from konfig.errors import DefinitionError
from konfig.kcc_schema import validate_objects
from konfig.load import load_definitions

from .orgs import CONTROL_PLANE, DOMAIN, PLATFORM, write_org


def _compile(tmp_path, **files):
    return compile_definitions(load_definitions(write_org(tmp_path, **files)))


def _kind(state, kind, namespace=None):
    return [o for o in state.kubernetes if o["kind"] == kind
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def _problems(tmp_path, **files):
    with pytest.raises(DefinitionError) as err:
        _compile(tmp_path, **files)
    return [(p.location.file.rsplit("/", 1)[-1], p.location.line, p.location.field, p.message)
            for p in err.value.problems]


# ----------------------------------------------------------------------------- CMEK


def test_cmek_key_ring_and_rotated_key_only_in_production(tmp_path):
    state = _compile(tmp_path)
    assert [o["metadata"]["namespace"] for o in _kind(state, "KMSCryptoKey")] == ["ecommerce-prod"]
    [ring] = _kind(state, "KMSKeyRing")
    [key] = _kind(state, "KMSCryptoKey")
    assert ring["spec"] == {"location": "us-central1", "resourceID": "konfig"}
    assert key["spec"]["rotationPeriod"] == "7776000s"  # 90 days
    assert key["spec"]["keyRingRef"] == {"name": ring["metadata"]["name"]}
    for obj in (ring, key):
        assert obj["metadata"]["annotations"]["cnrm.cloud.google.com/deletion-policy"] == "abandon"
        assert obj["metadata"]["labels"]["konfig-environment"] == "prod"


def test_service_agents_of_services_in_use_may_use_the_key(tmp_path):
    state = _compile(tmp_path)
    agents = {o["spec"]["resourceID"]: o for o in _kind(state, "ServiceIdentity", "ecommerce-prod")
              if o["metadata"]["name"].startswith("agent-")}
    # The control plane's services: Cloud SQL and Pub/Sub have agents; Storage has none there.
    assert sorted(agents) == ["pubsub.googleapis.com", "sqladmin.googleapis.com"]
    grants = [o for o in _kind(state, "IAMPolicyMember", "ecommerce-prod")
              if o["spec"]["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"]
    assert sorted(g["spec"]["memberFrom"]["serviceIdentityRef"]["name"] for g in grants) == sorted(
        a["metadata"]["name"] for a in agents.values())
    assert all(g["spec"]["resourceRef"]["kind"] == "KMSCryptoKey" for g in grants)
    # The environment's Config Connector identity may manage keys on its own project only.
    kcc = [o for o in _kind(state, "IAMPolicyMember", "konfig-system")
           if o["spec"]["role"] == "roles/cloudkms.admin"]
    assert [o["spec"]["resourceRef"]["name"] for o in kcc] == ["acme-ecommerce-prod"]


def test_no_production_environment_means_no_keys(tmp_path):
    cp = CONTROL_PLANE.replace("{name: prod, production: true}", "{name: prod}")
    state = _compile(tmp_path, **{"control-plane.yaml": cp})
    assert not _kind(state, "KMSCryptoKey")
    assert not [o for o in _kind(state, "ServiceIdentity") if o["metadata"]["name"].startswith("agent-")]


# ----------------------------------------------------------------------------- budgets


def test_domain_budget_over_its_projects_notifies_its_owners(tmp_path):
    domain = DOMAIN.replace("  workloads: [checkout]", "    - {group: shop-oncall@acme.com, role: owner}\n"
                            "  workloads: [checkout]\n  budget: {monthly: 2000.5, currency: USD}")
    state = _compile(tmp_path, **{"domain.yaml": domain})
    [budget] = _kind(state, "BillingBudgetsBudget")
    spec = budget["spec"]
    assert spec["budgetFilter"]["projects"] == [
        {"name": "acme-ecommerce-dev"}, {"name": "acme-ecommerce-prod"}, {"name": "acme-ecommerce-stage"}]
    assert spec["amount"]["specifiedAmount"] == {"currencyCode": "USD", "units": 2000, "nanos": 500000000}
    assert sorted((r["spendBasis"], r["thresholdPercent"]) for r in spec["thresholdRules"]) == [
        ("CURRENT_SPEND", 0.5), ("CURRENT_SPEND", 0.9), ("CURRENT_SPEND", 1.0),
        ("FORECASTED_SPEND", 0.5), ("FORECASTED_SPEND", 0.9), ("FORECASTED_SPEND", 1.0)]
    [channel] = _kind(state, "MonitoringNotificationChannel")
    assert channel["spec"]["labels"] == {"email_address": "shop-oncall@acme.com"}
    assert spec["allUpdatesRule"]["monitoringNotificationChannels"] == [{"name": channel["metadata"]["name"]}]
    assert budget["metadata"]["labels"]["konfig-domain"] == "ecommerce"
    assert budgets_of(list(state.kubernetes)) == [{
        "level": "domain", "name": "ecommerce", "amount": "2,000.5 USD", "projects": "3",
        "notify": "shop-oncall@acme.com"}]
    assert validate_objects(state.kubernetes) == []


def test_platform_budget_covers_every_domain_and_falls_back_to_inherited_owners(tmp_path):
    platform = PLATFORM + "  budget: {monthly: 10000, currency: EUR}\n"
    other = DOMAIN.replace("name: ecommerce", "name: payments").replace("workloads: [checkout]", "workloads: []")
    state = _compile(tmp_path, **{"platform.yaml": platform, "payments.yaml": other})
    [budget] = _kind(state, "BillingBudgetsBudget")
    assert len(budget["spec"]["budgetFilter"]["projects"]) == 6
    [channel] = _kind(state, "MonitoringNotificationChannel")  # the platform declares no owner
    assert channel["spec"]["labels"]["email_address"] == "platform-admins@acme.com"


def test_budget_without_currency_or_amount_is_an_error_with_its_line(tmp_path):
    domain = DOMAIN + "  budget: {monthly: 100}\n"
    platform = PLATFORM + "  budget: {monthly: -5, currency: usd}\n"
    found = _problems(tmp_path, **{"domain.yaml": domain, "platform.yaml": platform})
    fields = {(f, line, field) for f, line, field, _ in found}
    assert ("domain.yaml", 9, "spec.budget.currency") in fields
    assert ("platform.yaml", 6, "spec.budget.monthly") in fields
    assert ("platform.yaml", 6, "spec.budget.currency") in fields


def test_more_owner_groups_than_a_budget_can_notify_is_an_error(tmp_path):
    owners = "".join(f"    - {{group: owner{i}@acme.com, role: owner}}\n" for i in range(6))
    domain = DOMAIN.replace("  workloads: [checkout]", owners + "  workloads: [checkout]\n"
                            "  budget: {monthly: 1, currency: USD}")
    [(file, _, field, message)] = _problems(tmp_path, **{"domain.yaml": domain})
    assert (file, field) == ("domain.yaml", "spec.budget") and "at most 5" in message


# ----------------------------------------------------------------------------- PAM


def test_pam_entitlements_at_every_level_with_inherited_owners(tmp_path):
    cp = CONTROL_PLANE + "  breakGlass: {maxDuration: 2h, privilegedAccessManager: true}\n"
    platform = PLATFORM.replace("role: maintainer}", "role: maintainer}, {group: retail-owners@acme.com, role: owner}")
    state = _compile(tmp_path, **{"control-plane.yaml": cp, "platform.yaml": platform})
    entitlements = {o["metadata"]["name"]: o["spec"] for o in _kind(state, "PrivilegedAccessManagerEntitlement")}
    assert sorted(entitlements) == [
        "break-glass-platform-retail", "break-glass-project-acme-acme-cp",
        "break-glass-project-acme-ecommerce-dev", "break-glass-project-acme-ecommerce-prod",
        "break-glass-project-acme-ecommerce-stage"]
    cp_level = entitlements["break-glass-project-acme-acme-cp"]
    assert cp_level["eligibleUsers"] == [{"principals": ["group:platform-admins@acme.com"]}]
    assert entitlements["break-glass-platform-retail"]["folderRef"] == {"name": "platform-retail"}
    assert entitlements["break-glass-project-acme-ecommerce-prod"]["eligibleUsers"] == [
        {"principals": ["group:platform-admins@acme.com", "group:retail-owners@acme.com"]}]
    assert cp_level["maxRequestDuration"] == "7200s"
    assert {r["role"] for r in cp_level["privilegedAccess"]["gcpIAMAccess"]["roleBindings"]} >= {"roles/run.admin"}
    assert validate_objects(state.kubernetes) == []


def test_without_pam_no_entitlement(tmp_path):
    assert not _kind(_compile(tmp_path), "PrivilegedAccessManagerEntitlement")


# ----------------------------------------------------------------------------- uptime


def test_external_workloads_get_an_uptime_check_and_an_alert_to_the_domain_owners(example_state):
    checks = [o for o in example_state.kubernetes if o["kind"] == "MonitoringUptimeCheckConfig"]
    assert {(o["metadata"]["namespace"], o["metadata"]["labels"]["konfig-workload"]) for o in checks} >= {
        ("ecommerce-prod", "checkout"), ("ecommerce-dev", "checkout")}
    [prod] = [o for o in checks if o["metadata"]["name"] == "checkout-uptime"
              and o["metadata"]["namespace"] == "ecommerce-prod"]
    assert prod["spec"]["monitoredResource"] == {
        "type": "uptime_url", "filterLabels": {"host": "shop.acme-retail.example", "project_id": "acme-shop-prod"}}
    assert prod["spec"]["httpCheck"]["path"] == "/checkout" and prod["spec"]["httpCheck"]["useSsl"] is True
    # Only external workloads: platform-visible payments-api has none.
    assert not [o for o in checks if o["metadata"]["labels"]["konfig-domain"] == "payments"]
    [policy] = [o for o in example_state.kubernetes if o["kind"] == "MonitoringAlertPolicy"
                and o["metadata"]["namespace"] == "ecommerce-prod"]
    [channel] = [o for o in example_state.kubernetes if o["kind"] == "MonitoringNotificationChannel"
                 and o["metadata"]["namespace"] == "ecommerce-prod"]
    assert channel["spec"]["labels"] == {"email_address": "ecommerce-oncall@acme-retail.example"}
    assert policy["spec"]["notificationChannels"] == [{"name": channel["metadata"]["name"]}]
    condition = policy["spec"]["conditions"][0]["conditionThreshold"]
    assert "uptime_check/check_passed" in condition["filter"]
    assert condition["aggregations"][0]["groupByFields"][0] == "metric.label.check_id"


def test_uptime_check_uses_the_health_path_under_the_route(tmp_path):
    cp = CONTROL_PLANE + "  ingress: {host: api.acme.com}\n"
    workload = ("apiVersion: konfig.dev/v1alpha1\nkind: Workload\nmetadata: {name: checkout}\nspec:\n"
                "  platform: retail\n  domain: ecommerce\n  ingress: {visibility: external, path: /shop}\n"
                "  container: {healthPath: /healthz}\n")
    state = _compile(tmp_path, **{"control-plane.yaml": cp, "workload.yaml": workload})
    paths = {o["metadata"]["namespace"]: o["spec"]["httpCheck"]["path"]
             for o in _kind(state, "MonitoringUptimeCheckConfig")}
    assert paths == {"ecommerce-dev": "/shop/healthz", "ecommerce-stage": "/shop/healthz",
                     "ecommerce-prod": "/shop/healthz"}
    # Nobody owns the domain or platform: the control plane's owners are alerted.
    channels = {o["spec"]["labels"]["email_address"] for o in _kind(state, "MonitoringNotificationChannel", "ecommerce-dev")}
    assert channels == {"platform-admins@acme.com"}
    assert validate_objects(state.kubernetes) == []


def test_a_platform_budget_without_domains_is_not_a_budget_over_the_whole_billing_account(tmp_path):
    platform = PLATFORM + "  budget: {monthly: 10000, currency: EUR}\n"
    domain = DOMAIN.replace("platform: retail", "platform: other")
    other = "apiVersion: konfig.dev/v1alpha1\nkind: Platform\nmetadata: {name: other}\n"
    state = _compile(tmp_path, **{"platform.yaml": platform, "domain.yaml": domain, "other.yaml": other,
                                  "workload.yaml": None})
    assert not _kind(state, "BillingBudgetsBudget")
    assert "platform retail: no domain yet, so no budget" in state.notes


def test_plan_prints_the_budgets(example_state):
    from rich.console import Console

    from konfig.commands.render import plan_tree

    # The command's console takes the terminal's width when first used (another test may have
    # made it 80 columns): render the plan at a known width instead.
    console = Console(width=200, record=True)
    console.print(plan_tree(example_state))
    output = console.export_text()
    assert "Budgets (monthly; alerts at 50/90/100 % of actual and forecasted spend)" in output
    assert "1,500 EUR" in output and "12,000 EUR" in output
    assert "payments-oncall@acme-retail.example" in output
