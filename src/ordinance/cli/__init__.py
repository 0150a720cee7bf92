"""The ``ordinance`` command line."""
