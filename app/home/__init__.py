"""Where a person lands: `/` and the API reference at `/docs`."""
