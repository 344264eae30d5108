"""A sync that reads the details of some subtrees only (the operator's pass over a few
domains), against the fake GitLab over HTTP."""

from __future__ import annotations

from konfig.gitlab.testing import synthetic_tree


def test_details_are_read_and_repaired_only_under_the_chosen_groups(fake, sync):
    tree = synthetic_tree(platforms=2, domains_per_platform=3, workloads_per_domain=2)
    assert sync(tree).ok
    full = sync(tree, depth="full")
    domains = [g for g in tree.groups if g.kind == "Domain"]
    mine, other = domains[0], domains[1]
    # a link removed by hand in two domains: a scoped pass repairs the one it looks at
    for group in (mine, other):
        for name in fake.saml_links(group.full_path):
            fake.delete_saml_link(group.full_path, name)
    inside = lambda path: path == mine.full_path or path.startswith(mine.full_path + "/")  # noqa: E731
    scoped = sync(tree, depth="shape", deep=inside)
    assert scoped.ok
    assert scoped.reads < full.reads / 3, (scoped.reads, full.reads)
    assert fake.saml_links(mine.full_path) and not fake.saml_links(other.full_path)
    assert sync(tree, depth="full").ok
    assert fake.saml_links(other.full_path)
