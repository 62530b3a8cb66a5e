"""Configuration as code: the hub's configuration exported to and applied from one YAML file (hubfile.py), the
attributes each record exports (schema.py), and the form-backed saves the commands share with it (saves.py)."""
