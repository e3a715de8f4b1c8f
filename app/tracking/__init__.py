"""Engagement tracking: the open pixel, click redirects, and who (person or machine) made them."""
