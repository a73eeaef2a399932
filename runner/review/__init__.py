"""Reviewing journeys in pull requests: diagrams, semantic diffs, rendered emails, reports.

Everything here reads journeys and simulations; nothing here changes state.
``graph`` builds one neutral picture of a journey that ``mermaid`` and
``dot`` print; ``diff`` compares two journey mappings the way a marketer
reads them; ``renderout`` renders messages exactly as production would;
``report`` and ``markdown`` assemble those parts for humans.
"""
