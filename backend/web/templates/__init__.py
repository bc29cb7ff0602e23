"""Jinja2 templates of the web pages (package data)."""
