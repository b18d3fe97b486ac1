"""Generators of the versioned reference data files (the administrative maps) from kept packages."""
