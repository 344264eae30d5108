"""The template engine object: owns every cache of a compile (compiled CEL programs, compiled
templates, per-thread CEL contexts). The compile step creates one; nothing is module-global,
so two compiles never see each other's state."""

from __future__ import annotations

import threading
from typing import Any, Mapping

import cel

from konfig.compile.templates.expressions import (
    Program,
    compile_program,
    copy_json,
    new_cel_context,
    reference_problems,
    syntax_detail,
)

_UNSET = object()


class TemplateEngine:
    """Caches for rendering templates: create one per compile (or per validation run) and pass
    it to :func:`~konfig.compile.templates.render_resource` and
    :func:`~konfig.compile.templates.check_template`.

    Thread-safe: CEL contexts are per thread (``cel.Context`` is not thread-safe), the caches
    are guarded by a lock.
    """

    def __init__(self) -> None:
        self._programs: dict[str, Program] = {}
        #: Compiled templates, keyed by (id(template), variant keys); the value keeps the
        #: template alive so the id cannot be reused while cached.
        self.plans: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        from konfig.compile.templates.limits import MAX_COMPILE_COST

        #: Comprehension steps left for this engine's renders (``[steps]``, shared by meters).
        self.budget = [MAX_COMPILE_COST]

    def program(self, source: str) -> Program:
        """The compiled CEL expression ``source`` (cached). Raises ``ValueError`` on a syntax
        error."""
        found = self._programs.get(source)
        if found is None:
            found = compile_program(source)
            with self._lock:
                self._programs[source] = found
        return found

    def expression_problems(self, source: str) -> list[str]:
        """Why ``source`` is not acceptable in a template (syntax, unknown roots or functions,
        limits); ``[]`` if it is."""
        from konfig.compile.templates.limits import static_problems

        static = static_problems(source)
        if static:
            return static
        try:
            program = self.program(source)
        except Exception as error:  # cel raises ValueError; be safe with anything else
            return [f"CEL syntax error in ${{{source}}}: {syntax_detail(str(error))}"]
        return reference_problems(program)

    def context_with(self, variables: Mapping[str, Any]) -> cel.Context:
        """This thread's CEL context, holding the function library and ``variables``.

        Converting variables to CEL values dominates the cost of a render, and consecutive
        renders share most roots (same control plane, domain, environment, often the same
        params), so only the roots that differ from the previous render's (compared by value,
        against a private copy) are converted again.
        """
        local = self._local
        ctx = getattr(local, "ctx", None)
        if ctx is None:
            from konfig.compile.templates.limits import GUARDED_FUNCTIONS

            ctx = new_cel_context(dict(GUARDED_FUNCTIONS))
            local.ctx, local.last = ctx, {}
        last: dict[str, Any] = local.last
        changed = {k: v for k, v in variables.items() if last.get(k, _UNSET) != v}
        if changed:
            ctx.update(changed)
            for key, value in changed.items():
                last[key] = copy_json(value)
        return ctx
