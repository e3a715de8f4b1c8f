"""The console: server-rendered pages for the people who run a shop's mail (docs/console.md)."""
