"""Rendering, composing, sending and capturing lifecycle email."""
