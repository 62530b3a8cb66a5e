"""Console pages (HTMX), one module per page group; thin: they parse input, call services/selectors, render."""
