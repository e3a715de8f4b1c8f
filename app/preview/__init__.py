"""Previews of a rule's email and test sends, from a webhook body or sample data."""
