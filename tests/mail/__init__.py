"""Tests for app.mail."""
