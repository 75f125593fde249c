"""Data: MIMIC-shaped files, data modules and collation."""
