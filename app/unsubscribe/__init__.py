"""The public one-click unsubscribe pages behind the links in marketing mail."""
