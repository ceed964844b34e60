"""The human web site: jinja2 templates, handlers, static files."""
