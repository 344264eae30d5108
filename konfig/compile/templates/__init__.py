"""Resource templates → Config Connector objects, with CEL expressions. Pure: no I/O.

A :class:`~konfig.model.template.ResourceTemplate` holds Config Connector manifests whose string
values may contain ``${...}`` expressions in CEL (https://github.com/google/cel-spec), evaluated
by the ``common-expression-language`` package (``import cel``), as kro does
(https://kro.run/docs/concepts/simple-schema/ , "CEL expressions"):

- a string that is exactly one ``${expr}`` takes the expression's value *and type*
  (``replicas: "${params.replicas}"`` renders an integer, ``"${[...]}"`` a list);
- otherwise every ``${expr}`` is interpolated as text (``"${resource.objectName}-db"``); the
  expression must give a string, number or boolean there;
- ``$${`` writes a literal ``${``;
- a value that renders to ``null`` removes its field (so optional fields can be left out).

Expressions see the roots of :data:`ROOTS` (given by the compiler, see
:func:`render_resource`) and ``params`` (JSON-Schema defaults, overlaid with the matching
``spec.environments`` variants' ``params``, first ``production`` / ``nonproduction``, then the
environment's own name, then with the workload's ``params``). Besides the CEL standard library,
the cel-go style string, list, math, sets and base64 extensions of ``cel.stdlib`` are available,
and ``fitName(name, max)`` and ``shortHash(text)``. Every expression has a cost limit
(:mod:`.limits`).

Modules, one concern each:

- :mod:`.expressions`: ``${...}`` parsing, CEL programs, functions, results as JSON;
- :mod:`.limits`: static and evaluation cost limits;
- :mod:`.tree`: the render tree (compiled values, variant merge patches);
- :mod:`.parameters`: defaults, overlays, schema violations;
- :mod:`.rendering`: templates compiled per environment kind, and rendering;
- :mod:`.checks`: load-time checks and the dry render;
- :mod:`.engine`: :class:`TemplateEngine`, which owns every cache (one per compile).

Every problem is a :class:`~konfig.errors.Problem` at the template's (or the workload's) file,
line and field, raised together in a :class:`~konfig.errors.DefinitionError`.
"""

from __future__ import annotations

from konfig.compile.templates.checks import check_template, sample_context, sample_environments
from konfig.compile.templates.engine import TemplateEngine
from konfig.compile.templates.expressions import (
    ROOTS,
    ExpressionSyntaxError,
    fit_name,
    has_expression,
    short_hash,
    split_expressions,
)
from konfig.compile.templates.parameters import sample_params, schema_defaults
from konfig.compile.templates.rendering import (
    NONPRODUCTION,
    PRODUCTION,
    RenderedResource,
    render_resource,
    variant_keys,
)

__all__ = [
    "NONPRODUCTION",
    "PRODUCTION",
    "ROOTS",
    "ExpressionSyntaxError",
    "RenderedResource",
    "TemplateEngine",
    "check_template",
    "fit_name",
    "has_expression",
    "render_resource",
    "sample_context",
    "sample_environments",
    "sample_params",
    "schema_defaults",
    "short_hash",
    "split_expressions",
    "variant_keys",
]
