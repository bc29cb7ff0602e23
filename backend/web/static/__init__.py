"""CSS and the little JavaScript of the web pages (package data, served under ``/web/static``)."""
