"""The suppression list: addresses never mailed again, and its operator API."""
