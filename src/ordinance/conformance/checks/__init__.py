"""The checks, one module per part of the contract. Importing this package registers all of them."""

from . import canonical, execution, governance, interfaces, journal, operations, outcome, plan, results  # noqa: F401
