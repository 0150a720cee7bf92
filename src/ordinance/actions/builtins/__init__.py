"""The built-in actions of CONTRACT §12, registered on :data:`ordinance.actions.default_registry` on import.

* :mod:`.control` — ``control.noop``, ``control.echo``, ``control.sleep``, ``control.spin``, ``control.fail``
* :mod:`.shell` — ``shell.run``
* :mod:`.fs` — ``fs.write``, ``fs.read``, ``fs.delete``, ``fs.mkdir`` (with §7.1 probes and §7.3 compensation)
* :mod:`.http` — ``http.request``

``execute_plan`` (§5.4) is registered by the engine, not here.

Payload models forbid unknown fields, take JSON types exactly (no coercion; an optional field is
either absent or of its type — an explicit ``null`` is refused unless the field is "any JSON"), so a
bad static payload is INVALID_PAYLOAD at admission (§5.0). Path *shape* is deliberately not part of
the schemas: a ``..``, absolute or symlinked path is the envelope's business (§6.2, POLICY_DENIED),
checked through each action's ``paths`` and again, on descriptors, when the action runs.
"""

from . import control, fs, http, shell

__all__ = ["control", "fs", "http", "shell"]
