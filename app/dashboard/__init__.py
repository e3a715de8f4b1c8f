"""The stats dashboard: `/dashboard`, server-rendered HTML and SVG charts, behind an API key."""
