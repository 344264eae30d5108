"""Server-side apply with strict field validation: a rendered object with a field its kind's
schema does not declare is an error on the real API server, never applied with the field
silently dropped."""

from __future__ import annotations

import copy

import pytest

from konfig.kube.client import KubeClient, KubeError


@pytest.fixture(params=["real", "emulator"])
def server(request):
    """A client of the real server, and of the emulator (which must answer the same)."""
    if request.param == "real":
        cluster = request.getfixturevalue("kube_cluster")
        yield KubeClient.connect(str(cluster.kubeconfig))
        return
    from konfig.kube import crds
    from konfig.kube.kinds import shipped_kcc_crds
    from konfig.sandbox.kube_api import KubeEmulator

    with KubeEmulator() as emulator:
        emulator.install_crds([*shipped_kcc_crds(), *crds.all_crds()])
        yield KubeClient.connect(server=emulator.url)


def test_an_unknown_field_in_a_rendered_object_is_an_error(server, example_state):
    client = server
    try:
        bucket = copy.deepcopy(next(o for o in example_state.kubernetes if o["kind"] == "StorageBucket"))
        namespace = bucket["metadata"]["namespace"]
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        applied = client.apply(bucket)
        assert applied["spec"]["location"] == bucket["spec"]["location"]
        bucket["spec"]["storageClasss"] = "NEARLINE"  # a typo a template could render
        with pytest.raises(KubeError) as refused:
            client.apply(bucket)
        # kube-apiserver fails building the typed patch: a 500 naming the field, which the
        # client must not retry as a server fault.
        assert ".spec.storageClasss: field not declared in schema" in refused.value.message
        assert not refused.value.transient
        live = client.get(client.kinds.of(bucket), namespace, bucket["metadata"]["name"])
        assert "storageClasss" not in live["spec"]
    finally:
        client.close()
